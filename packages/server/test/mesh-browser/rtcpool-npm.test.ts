// The npm package rtcpool@3.0.2, unchanged (bundled from node_modules as
// published), in a Chromium page, in one pool on Atrium with two pages using
// Atrium's mesh SDK — one over the raw WebSocket, one over socket.io — while
// the npm client uses the raw WebSocket. Video flows and data channels carry
// numbered messages in order between the npm client and each SDK peer both
// ways, a description set by the back end reaches both kinds of client, and
// leaving is seen on both sides. Inside a loopback-only network namespace.
import assert from 'node:assert/strict';
import { insideLoopbackNetns } from '../media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 150_000 })) {
  const { after, before, test } = await import('node:test');
  const { startWorld, seesExactly, until } = await import('./support/pages.ts');
  const { npmRtcpoolScript } = await import('./support/bundle.ts');
  const { hashPassword } = await import('../../src/groups/index.ts');
  type Page = import('playwright-core').Page;

  /** The slice of rtcpool 3.0.2's API the page uses, as it is documented. */
  interface NpmManagedConnection extends EventTarget {
    readonly id: string;
    readonly description: unknown;
    addTrack(track: MediaStreamTrack, ...streams: MediaStream[]): RTCRtpSender;
    dataChannel(label: string, options?: RTCDataChannelInit): Promise<RTCDataChannel>;
  }
  interface NpmPool {
    readonly id: string | null;
    readonly events: EventTarget;
    readonly connections: NpmManagedConnection[];
    readonly _raw_connections: RTCPeerConnection[];
    join(pool: string): void;
    close(): void;
    getConnection(id: string): NpmManagedConnection | null;
  }
  interface NpmState {
    pool: NpmPool;
    received: Record<string, string[]>;
    closed: string[];
    errors: string[];
  }
  interface NpmWindow {
    rtcpool: {
      Pool: new (config: RTCConfiguration, signaller: unknown) => NpmPool;
      signalling: { websocket: new (ws: WebSocket) => unknown; socket: { io: new (socket: unknown) => unknown } };
    };
    npm: NpmState;
  }

  const short = (id: string) => id.slice(0, 8);
  let world: Awaited<ReturnType<typeof startWorld>>;

  before(async () => {
    world = await startWorld({ config: { users: { root: { password: await hashPassword('rootpw'), permissions: 'admin' } } } });
  });
  after(async () => {
    await world?.close();
  });

  /** The npm client, as its README shows it: a Pool over a signalling channel, media added on `peer`. */
  async function npmPeer(pool: string): Promise<{ page: Page; id: string }> {
    const page = await world.blankPage([await npmRtcpoolScript()]);
    const id = await page.evaluate(
      async ([server, name]) => {
        const w = window as unknown as NpmWindow;
        const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240, frameRate: 15 }, audio: false });
        const track = stream.getVideoTracks()[0]!;
        const signaller = new w.rtcpool.signalling.websocket(new WebSocket(`${server!.replace(/^http/, 'ws')}/pool/ws`));
        const pool = new w.rtcpool.Pool({ iceServers: [] }, signaller);
        const state: NpmState = { pool, received: {}, closed: [], errors: [] };
        w.npm = state;
        pool.events.addEventListener('peer', (e) => {
          const conn = (e as CustomEvent<{ connection: NpmManagedConnection }>).detail.connection;
          conn.addTrack(track, stream);
          conn.addEventListener('datachannel', (ev) => {
            const log: string[] = (state.received[conn.id] = []);
            (ev as RTCDataChannelEvent).channel.addEventListener('message', (m) => log.push(String(m.data)));
          });
        });
        pool.events.addEventListener('close', (e) => {
          const conn = (e as CustomEvent<NpmManagedConnection | null>).detail;
          if (conn) state.closed.push(conn.id);
        });
        window.addEventListener('unhandledrejection', (e) => state.errors.push(String(e.reason)));
        const joined = new Promise((resolve) => pool.events.addEventListener('join', resolve, { once: true }));
        pool.join(name!);
        await joined;
        return pool.id!;
      },
      [world.server.url, pool] as const,
    );
    return { page, id };
  }

  const npmFrames = (page: Page) =>
    page.evaluate(async () => {
      const { pool } = (window as unknown as NpmWindow).npm;
      const out: Record<string, number> = {};
      const raws = pool._raw_connections;
      for (const [i, conn] of pool.connections.entries()) {
        let frames = 0;
        (await raws[i]!.getStats()).forEach((s: { type: string; kind?: string; framesDecoded?: number }) => {
          if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded ?? 0;
        });
        out[conn.id] = frames;
      }
      return out;
    });

  test("rtcpool@3.0.2 in a page and Atrium's mesh SDK (WebSocket and socket.io) share a pool: video, data channels, descriptions, leaving", { timeout: 140_000 }, async () => {
    const pool = 'npm-mix';
    // Join order sets the roles: the npm client is polite towards s1 and impolite towards s2.
    const s1 = await world.peer('rtcpool-ws', pool);
    await s1.call('publishCamera');
    const npm = await npmPeer(pool);
    const s2 = await world.peer('rtcpool-sio', pool);
    await s2.call('publishCamera');
    const sdk = [s1, s2];
    for (const s of sdk) await seesExactly(s, [...sdk.filter((o) => o !== s), npm.id]);

    // Video: every page decodes frames from both others, and keeps decoding.
    const everyone = [npm.id, s1.id, s2.id];
    const framesOf = (id: string) => (id === npm.id ? npmFrames(npm.page) : sdk.find((s) => s.id === id)!.call('framesDecoded'));
    for (const id of everyone) {
      const others = everyone.filter((o) => o !== id);
      const first = await until(
        `${short(id)} to decode frames from ${others.map(short).join(' and ')}`,
        async () => {
          const f = await framesOf(id);
          return others.every((o) => (f[o] ?? 0) > 0) ? f : undefined;
        },
        60_000,
      );
      await until(`${short(id)} to keep decoding`, async () => {
        const f = await framesOf(id);
        return others.every((o) => (f[o] ?? 0) > (first[o] ?? 0));
      });
    }

    // Data channels both ways, 200 numbered messages each, in order.
    const count = 200;
    const expected = Array.from({ length: count }, (_, i) => String(i));
    await npm.page.evaluate(async (n) => {
      const { pool } = (window as unknown as NpmWindow).npm;
      await Promise.all(
        pool.connections.map(async (conn) => {
          const channel = await conn.dataChannel('from-npm');
          for (let i = 0; i < n; i++) channel.send(String(i));
        }),
      );
    }, count);
    await Promise.all(sdk.map((s) => s.call('openChannels', 'from-sdk', count)));
    for (const s of sdk) {
      const got = await until(`${short(s.id)} to get ${count} messages from the npm client`, async () => {
        const r = await s.call('received', 'from-npm');
        return (r[npm.id]?.length ?? 0) >= count ? r[npm.id] : undefined;
      });
      assert.deepEqual(got, expected);
    }
    const atNpm = await until(`the npm client to get ${count} messages from each SDK peer`, async () => {
      const r = await npm.page.evaluate(() => (window as unknown as NpmWindow).npm.received);
      return sdk.every((s) => (r[s.id]?.length ?? 0) >= count) ? r : undefined;
    });
    for (const s of sdk) assert.deepEqual(atNpm[s.id], expected, `messages from ${short(s.id)} at the npm client`);

    // A description set by the back end reaches both kinds of client.
    const put = await fetch(`${world.server.url}/galene-api/v0/.groups/${pool}/.clients/${s2.id}/.description`, {
      method: 'PUT',
      headers: { authorization: `Basic ${Buffer.from('root:rootpw').toString('base64')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Sam' }),
    });
    assert.equal(put.status, 204);
    await until('the SDK peer to see the description', async () => JSON.stringify(await s1.call('description', s2.id)) === '{"name":"Sam"}');
    await until('the npm client to see the description', async () =>
      npm.page.evaluate((id) => JSON.stringify((window as unknown as NpmWindow).npm.pool.getConnection(id)?.description) === '{"name":"Sam"}', s2.id),
    );

    // The npm client leaves: the SDK peers close their connections to it.
    await npm.page.evaluate(() => (window as unknown as NpmWindow).npm.pool.close());
    for (const s of sdk) {
      await seesExactly(
        s,
        sdk.filter((o) => o !== s),
      );
      assert.deepEqual(
        (await s.call('closed')).filter((c) => c.id === npm.id).map((c) => c.reason),
        ['left'],
      );
    }

    // And the other way: a second npm client sees an SDK peer leave.
    const npm2 = await npmPeer(pool);
    await until('the second npm client to know both SDK peers', async () => npm2.page.evaluate(() => (window as unknown as NpmWindow).npm.pool.connections.length === 2));
    await s1.call('leave');
    await until('the second npm client to close its connection to the peer that left', async () =>
      npm2.page.evaluate((id) => {
        const { pool, closed } = (window as unknown as NpmWindow).npm;
        return closed.includes(id) && pool.getConnection(id) === null;
      }, s1.id),
    );
    for (const p of [npm.page, npm2.page]) {
      assert.deepEqual(await p.evaluate(() => (window as unknown as NpmWindow).npm.errors), []);
    }
    for (const s of sdk)
      assert.deepEqual(
        (await s.problems()).filter((l) => !/Failed to load resource: .* 404/.test(l)),
        [],
      );
  });
}
