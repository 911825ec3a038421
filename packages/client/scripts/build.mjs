#!/usr/bin/env node
// Builds the SDK into one ES module a page can import without a bundler:
// dist/atrium-client.js (with its source map). `buildClient({ write: false })`
// returns the code instead, for tests that serve it to a browser.
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
export const ENTRY = join(here, '..', 'src', 'index.ts');
export const OUTFILE = join(here, '..', 'dist', 'atrium-client.js');

/**
 * The shared schemas import zod as `import { z } from 'zod'`, a namespace
 * object esbuild cannot tree-shake, so all of zod's locales (~260 kB) would
 * ride along. Read as `import * as z from 'zod/v4'` (the same module), only
 * what the schemas use is bundled.
 * @type {import('esbuild').Plugin}
 */
const shakableZod = {
  name: 'shakable-zod',
  setup(b) {
    b.onLoad({ filter: /[\\/]packages[\\/]protocol[\\/]src[\\/].*\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      return { contents: source.replace(/^import \{ z \} from 'zod';$/m, "import * as z from 'zod/v4';"), loader: 'ts' };
    });
  },
};

/** @param {{ write?: boolean, minify?: boolean }} [options] */
export async function buildClient(options = {}) {
  const write = options.write ?? true;
  const result = await build({
    entryPoints: [ENTRY],
    outfile: OUTFILE,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022', 'chrome100', 'firefox100', 'safari16'],
    sourcemap: write ? 'linked' : false,
    minify: options.minify ?? false,
    legalComments: 'none',
    write,
    logLevel: 'silent',
    plugins: [shakableZod],
    banner: { js: '// @atrium/client: browser SDK for Galène protocol v2 servers (built by packages/client/scripts/build.mjs)' },
  });
  if (write) return OUTFILE;
  const js = result.outputFiles.find((f) => f.path.endsWith('.js'));
  if (!js) throw new Error('esbuild produced no JavaScript output');
  return js.text;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const minify = process.argv.includes('--minify');
  const out = await buildClient({ minify });
  console.log(`built ${out}`);
}
