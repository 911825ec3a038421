// Bundles what the browser pages run, on the fly with esbuild's JS API
// (nothing built is kept): the test harness over Atrium's mesh SDK
// (packages/client/src/mesh) with socket.io-client, and the npm package
// rtcpool@3.0.2 exactly as published, as the global `rtcpool`.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

async function bundle(entry: string, globalName?: string): Promise<string> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'iife',
    ...(globalName ? { globalName } : {}),
    platform: 'browser',
    target: ['chrome100'],
    write: false,
    logLevel: 'silent',
  });
  const js = result.outputFiles[0];
  if (!js) throw new Error(`esbuild produced nothing for ${entry}`);
  return js.text;
}

let harness: Promise<string> | undefined;
let npm: Promise<string> | undefined;

/** The page harness (`window.mesh`), with the mesh SDK and socket.io-client. */
export function harnessScript(): Promise<string> {
  harness ??= bundle(join(here, 'harness.ts'));
  return harness;
}

/** rtcpool@3.0.2 from node_modules, unchanged, as `window.rtcpool`, and socket.io-client as `window.io`. */
export function npmRtcpoolScript(): Promise<string> {
  npm ??= (async () => {
    const rtcpool = await bundle(require.resolve('rtcpool'), 'rtcpool');
    const sio = await bundle(join(here, 'socket-io-global.ts'));
    return `${rtcpool}\n${sio}`;
  })();
  return npm;
}
