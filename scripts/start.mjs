#!/usr/bin/env node
// `npm start -- [options]`: builds the web app when its dist is missing or
// older than its sources, then runs `atrium serve` (or another atrium
// command, which needs no web app). The server also runs when the build
// fails; it then serves a page saying how to build the app.
const args = process.argv.slice(2);
const command = args[0] && !args[0].startsWith('-') ? args[0] : 'serve';

if (command === 'serve') {
  try {
    const { ensureWebApp } = await import('../packages/web/build.mjs');
    await ensureWebApp();
  } catch (e) {
    console.error(
      `atrium: could not build the web app (${e instanceof Error ? e.message : String(e)}).\n` +
        '        The server starts anyway, without it; run "npm install" then "npm run build -w @atrium/web" to get it.',
    );
  }
}
await import('../packages/server/bin/atrium.mjs');
