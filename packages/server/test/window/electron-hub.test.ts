// The Electron main-process hub of the window relay, against an in-process
// stand-in for Electron's IPC (support/electron-stand-in.ts): relay messages
// from one window's renderer reach the named window's renderer on the `relay`
// channel, a window cannot speak under another window's name, and a window
// that goes away is announced to the others and no longer reachable.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createElectronRelayHub, type RelayDrop } from '../../../client/src/window/electron-main.ts';
import { createIpcRendererRelay } from '../../../client/src/window/ipc-renderer-relay.ts';
import type { RelayChannel, RelayMessage } from '../../../client/src/window/relay.ts';
import { FakeBrowserWindow, FakeIpcMain, settle } from './support/electron-stand-in.ts';

/** A main process with the hub and three windows, each with a renderer-side relay that records what it receives. */
function app() {
  const ipcMain = new FakeIpcMain();
  const drops: RelayDrop[] = [];
  const hub = createElectronRelayHub({ ipcMain, onDrop: (d) => drops.push(d) });
  const windows: Record<string, { win: FakeBrowserWindow; relay: RelayChannel; got: RelayMessage[] }> = {};
  for (const name of ['main', 'mini', 'other']) {
    const win = new FakeBrowserWindow(ipcMain);
    const relay = createIpcRendererRelay(win.webContents.ipcRenderer);
    const got: RelayMessage[] = [];
    relay.onMessage((m) => got.push(m));
    windows[name] = { win, relay, got };
  }
  const w = (name: string) => windows[name]!;
  return { ipcMain, hub, drops, w };
}

test('forwards [sender, receiver, msgType, json] to the named window only, on the relay channel', async () => {
  const { ipcMain, hub, drops, w } = app();
  hub.initChannel();
  hub.initChannel(); // idempotent
  assert.equal(ipcMain.listenerCount('relay'), 1);
  hub.addClient({ name: 'main', window: w('main').win });
  hub.addClient({ name: 'mini', window: w('mini').win });
  hub.addClient({ name: 'other', window: w('other').win });
  assert.deepEqual(hub.clients(), ['main', 'mini', 'other']);

  const offer: RelayMessage = ['main', 'mini', 'offer', JSON.stringify({ inst: 'i1', sdp: 'v=0\r\n' })];
  w('main').relay.send(offer);
  w('mini').relay.send(['mini', 'main', 'answer', '{"sdp":"v=0"}']);
  await settle();
  assert.deepEqual(w('mini').got, [offer]);
  assert.deepEqual(w('main').got, [['mini', 'main', 'answer', '{"sdp":"v=0"}']]);
  assert.deepEqual(w('other').got, []);
  assert.deepEqual(drops, []);

  // Order is kept per sender.
  for (let i = 0; i < 20; i++) w('main').relay.send(['main', 'other', 'candidate', JSON.stringify({ n: i })]);
  await settle();
  assert.deepEqual(
    w('other').got.map((m) => JSON.parse(m[3]).n),
    Array.from({ length: 20 }, (_, i) => i),
  );
});

test('a window cannot send under another name, from an iframe, or unregistered', async () => {
  const { hub, drops, w } = app();
  hub.initChannel();
  hub.addClient({ name: 'main', window: w('main').win });
  hub.addClient({ name: 'mini', window: w('mini').win });

  // "main" claims to be "mini" to talk to "main"... and to "other" names.
  w('main').relay.send(['mini', 'main', 'offer', '{}']);
  // Straight on ipcRenderer, bypassing the relay helper.
  w('main').win.webContents.ipcRenderer.send('relay', ['mini', 'mini', 'end', '{}']);
  // A sub-frame of a registered window.
  createIpcRendererRelay(w('mini').win.webContents.subFrameIpcRenderer()).send(['mini', 'main', 'offer', '{}']);
  // A window the hub does not know.
  w('other').relay.send(['other', 'main', 'hello', '{}']);
  // Not the wire format.
  const raw = w('main').win.webContents.ipcRenderer;
  raw.send('relay', ['main', 'mini', 'offer']);
  raw.send('relay', ['main', 'mini', 'offer', { sdp: 'x' }]);
  raw.send('relay', 'main mini offer {}');
  raw.send('relay', ['main', 'mini', 'offer', 'x'.repeat(300 * 1024)]);
  // To nobody.
  w('main').relay.send(['main', 'nobody', 'hello', '{}']);
  await settle();

  assert.deepEqual(w('main').got, []);
  assert.deepEqual(w('mini').got, []);
  assert.deepEqual(
    drops.map((d) => [d.reason, d.from ?? null]),
    [
      ['spoofed-sender', 'main'],
      ['spoofed-sender', 'main'],
      ['subframe', 'mini'],
      ['unregistered-sender', null],
      ['bad-message', 'main'],
      ['bad-message', 'main'],
      ['bad-message', 'main'],
      ['bad-message', 'main'],
      ['unknown-receiver', 'main'],
    ],
  );
  assert.deepEqual(drops[0]!.message, ['mini', 'main', 'offer', '{}']);
});

test('a closed window is announced with `end`, forgotten, and never sent to', async () => {
  const { hub, drops, w } = app();
  hub.initChannel();
  hub.addClient({ name: 'main', window: w('main').win });
  hub.addClient({ name: 'mini', window: w('mini').win });
  hub.addClient({ name: 'other', window: w('other').win });

  w('mini').win.close();
  assert.throws(() => w('mini').win.webContents, /destroyed/);
  assert.deepEqual(hub.clients(), ['main', 'other']);
  await settle();
  assert.deepEqual(w('main').got, [['mini', 'main', 'end', '{"reason":"gone"}']]);
  assert.deepEqual(w('other').got, [['mini', 'other', 'end', '{"reason":"gone"}']]);

  w('main').relay.send(['main', 'mini', 'candidate', '{}']);
  await settle();
  assert.deepEqual(
    drops.map((d) => d.reason),
    ['unknown-receiver'],
  );

  // A crashed renderer: the others hear `end` (its page will start afresh), the name stays registered.
  w('other').win.webContents.crash();
  await settle();
  assert.deepEqual(w('main').got.at(-1), ['other', 'main', 'end', '{"reason":"crashed"}']);
  assert.deepEqual(hub.clients(), ['main', 'other']);

  // A WebContents destroyed while its BrowserWindow is still referenced (e.g. destroy() on the contents).
  w('other').win.webContents.destroy();
  assert.deepEqual(hub.clients(), ['main']);
  await settle();
  assert.deepEqual(w('main').got.at(-1), ['other', 'main', 'end', '{"reason":"gone"}']);
});

test('names: one window per name, one name per window, removeClient and dispose', async () => {
  const { ipcMain, hub, drops, w } = app();
  hub.addClient({ name: 'main', window: w('main').win });
  assert.throws(() => hub.addClient({ name: 'alias', window: w('main').win }), { name: 'WindowRelayError', code: 'name-taken' });
  assert.throws(() => hub.addClient({ name: '', window: w('mini').win }), { code: 'bad-argument' });
  assert.throws(() => hub.addClient({ name: 'x', window: {} as never }), { code: 'bad-argument' });

  // Messages before initChannel are not relayed (nobody listens yet).
  hub.addClient({ name: 'mini', window: w('mini').win });
  w('main').relay.send(['main', 'mini', 'hello', '{}']);
  await settle();
  assert.deepEqual(w('mini').got, []);

  hub.initChannel();
  // Re-adding a name moves it to the new window: "mini" is now the third window.
  hub.addClient({ name: 'mini', window: w('other').win });
  w('main').relay.send(['main', 'mini', 'hello', '{}']);
  await settle();
  assert.deepEqual(w('mini').got, []);
  assert.deepEqual(w('other').got, [['main', 'mini', 'hello', '{}']]);
  // The old "mini" window is no longer registered: it cannot send.
  w('mini').relay.send(['mini', 'main', 'hello', '{}']);
  await settle();
  assert.equal(drops.at(-1)?.reason, 'unregistered-sender');

  // removeClient: forgotten, silently; closing it later announces nothing.
  hub.removeClient('mini');
  w('other').win.close();
  await settle();
  assert.deepEqual(w('main').got, []);

  hub.dispose();
  assert.equal(ipcMain.listenerCount('relay'), 0);
  assert.deepEqual(hub.clients(), []);
  assert.equal(w('main').win.webContents.listenerCount('destroyed'), 0);
  assert.equal(w('main').win.listenerCount('closed'), 0);
});

test('the renderer relay stops listening when closed', async () => {
  const { hub, w } = app();
  hub.initChannel();
  hub.addClient({ name: 'main', window: w('main').win });
  hub.addClient({ name: 'mini', window: w('mini').win });
  const ipcRenderer = w('mini').win.webContents.ipcRenderer;
  assert.equal(ipcRenderer.listenerCount('relay'), 1);
  w('mini').relay.close?.();
  assert.equal(ipcRenderer.listenerCount('relay'), 0);
  w('mini').relay.send(['mini', 'main', 'hello', '{}']);
  w('main').relay.send(['main', 'mini', 'hello', '{}']);
  await settle();
  assert.deepEqual(w('main').got, []);
  assert.deepEqual(w('mini').got, []);
});
