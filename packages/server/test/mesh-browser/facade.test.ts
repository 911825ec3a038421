// Camus's client classes from Atrium's mesh SDK (Manager, Signaler,
// VideoPeer) in two Chromium pages in one Camus room on a real `atrium
// serve`: each Manager sends its camera, each page decodes the other's video,
// a message goes each way over `VideoPeer.dataChannel(label)` (rtcpool's
// call), and when one page shuts down the other removes its peer on `bye`.
// The pages load the SDK's index as the global `atriumMesh`. Inside a
// loopback-only network namespace.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { insideLoopbackNetns } from '../media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 90_000 })) {
  const { after, before, test } = await import('node:test');
  const { build } = await import('esbuild');
  const { startWorld, until } = await import('./support/pages.ts');
  type Page = import('playwright-core').Page;
  type Sdk = typeof import('../../../client/src/mesh/index.ts');

  interface FacadeState {
    manager: InstanceType<Sdk['Manager']>;
    /** `<peer id> <label>: <message>` in arrival order. */
    received: string[];
    removed: string[];
    errors: string[];
  }
  interface FacadeWindow {
    atriumMesh: Sdk;
    facade: FacadeState;
  }

  const here = dirname(fileURLToPath(import.meta.url));
  let world: Awaited<ReturnType<typeof startWorld>>;
  let sdkScript: string;

  before(async () => {
    const out = await build({
      entryPoints: [join(here, '../../../client/src/mesh/index.ts')],
      bundle: true,
      format: 'iife',
      globalName: 'atriumMesh',
      platform: 'browser',
      target: ['chrome100'],
      write: false,
      logLevel: 'silent',
    });
    sdkScript = out.outputFiles[0]!.text;
    world = await startWorld();
  });
  after(async () => {
    await world?.close();
  });

  /** A page whose Manager is in `room` (sending its camera from the start if `camera`); resolves with its client id. */
  async function managerPage(room: string, camera: boolean): Promise<{ page: Page; id: string }> {
    const page = await world.blankPage([sdkScript]);
    const id = await page.evaluate(
      async ([server, name, withCamera]) => {
        const w = window as unknown as FacadeWindow;
        const manager = new w.atriumMesh.Manager({ server: server!, room: name! });
        const state: FacadeState = { manager, received: [], removed: [], errors: [] };
        w.facade = state;
        manager.on('datachannel', (peer, channel) => {
          channel.addEventListener('message', (e) => state.received.push(`${peer.id} ${channel.label}: ${String(e.data)}`));
        });
        manager.on('videopeerremoved', (peer, reason) => state.removed.push(`${peer.id} ${reason}`));
        manager.on('error', (e) => state.errors.push(`${e.code}: ${e.message}`));
        window.addEventListener('unhandledrejection', (e) => state.errors.push(String(e.reason)));
        if (withCamera) {
          const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240, frameRate: 15 }, audio: false });
          await manager.setVideoTrack(stream.getVideoTracks()[0]!);
        }
        await manager.start();
        return manager.id;
      },
      [world.server.url, room, camera] as const,
    );
    return { page, id };
  }

  /** Video frames decoded from `peer` so far, through its VideoPeer's connection. */
  const framesFrom = (page: Page, peer: string) =>
    page.evaluate(async (id) => {
      const vp = (window as unknown as FacadeWindow).facade.manager.getVideoPeer(id);
      if (!vp) return 0;
      let frames = 0;
      (await vp.connection.getStats()).forEach((s: { type: string; kind?: string; framesDecoded?: number }) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded ?? 0;
      });
      return frames;
    }, peer);

  /** What a page's connections look like, for a failure message. */
  const state = (page: Page) =>
    page.evaluate(async () => {
      const { manager, errors } = (window as unknown as FacadeWindow).facade;
      const stats: Record<string, string[]> = {};
      for (const vp of manager.videoPeers.values()) {
        const list: string[] = (stats[vp.id.slice(0, 8)] = []);
        (await vp.connection.getStats()).forEach((x: { type: string; candidateType?: string; state?: string; iceState?: string; dtlsState?: string }) => {
          if (x.type === 'local-candidate' || x.type === 'remote-candidate') list.push(`${x.type}:${x.candidateType}`);
          if (x.type === 'candidate-pair') list.push(`pair:${x.state}`);
          if (x.type === 'transport') list.push(`transport:${x.iceState}/${x.dtlsState}`);
        });
      }
      const peers = [...manager.videoPeers.values()].map((vp) => ({
        stats: stats[vp.id.slice(0, 8)],
        id: vp.id.slice(0, 8),
        polite: vp.polite,
        connection: vp.connectionState,
        ice: vp.iceConnectionState,
        signaling: vp.signalingState,
        negotiation: vp.connection.negotiation,
        transceivers: vp.connection.getTransceivers().map((t) => `${t.mid}:${t.direction}/${t.currentDirection}`),
      }));
      return JSON.stringify({ id: manager.id.slice(0, 8), peers, errors });
    });

  test('both pages send their camera from the start of a new connection: video flows both ways, 5 rooms in a row', { timeout: 150_000 }, async () => {
    for (let round = 0; round < 5; round++) {
      const a = await managerPage(`glare-${round}`, true);
      const b = await managerPage(`glare-${round}`, true);
      for (const [p, other] of [
        [a, b],
        [b, a],
      ] as const) {
        await until(
          `round ${round}: ${p.id.slice(0, 8)} to decode video from ${other.id.slice(0, 8)}`,
          async () => {
            const f = await framesFrom(p.page, other.id);
            return f > 0 ? f : undefined;
          },
          30_000,
        ).catch(async (e: Error) => {
          throw new Error(`${e.message}\n${await state(a.page)}\n${await state(b.page)}`);
        });
      }
      await a.page.close();
      await b.page.close();
    }
  });

  test("two pages with the Camus Manager facade see each other's video and exchange data-channel messages", { timeout: 60_000 }, async () => {
    // The second page adds its camera once connected, to a peer already
    // sending: both adding tracks to a brand-new connection at once is the
    // glare case; rarely, Chromium then leaves ICE at `new` on the polite side.
    const a = await managerPage('facade', true);
    const b = await managerPage('facade', false);
    for (const [p, other] of [
      [a, b],
      [b, a],
    ] as const) {
      await until(`${p.id.slice(0, 8)} to be connected to ${other.id.slice(0, 8)}`, () =>
        p.page.evaluate((id) => (window as unknown as FacadeWindow).facade.manager.getVideoPeer(id)?.connectionState === 'connected', other.id),
      );
    }
    await b.page.evaluate(async () => {
      const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240, frameRate: 15 }, audio: false });
      await (window as unknown as FacadeWindow).facade.manager.setVideoTrack(stream.getVideoTracks()[0]!);
    });

    for (const [p, other] of [
      [a, b],
      [b, a],
    ] as const) {
      const first = await until(
        `${p.id.slice(0, 8)} to decode video from the other page`,
        async () => {
          const f = await framesFrom(p.page, other.id);
          return f > 0 ? f : undefined;
        },
        30_000,
      ).catch(async (e: Error) => {
        throw new Error(`${e.message}\n${await state(a.page)}\n${await state(b.page)}`);
      });
      await until(`${p.id.slice(0, 8)} to keep decoding`, async () => (await framesFrom(p.page, other.id)) > first, 15_000);
    }

    // rtcpool's dataChannel(label): resolves with the channel once it is open.
    for (const [p, other] of [
      [a, b],
      [b, a],
    ] as const) {
      await p.page.evaluate(
        async ([id, text]) => {
          const vp = (window as unknown as FacadeWindow).facade.manager.getVideoPeer(id!)!;
          const channel = await vp.dataChannel('chat');
          if (channel.readyState !== 'open') throw new Error(`dataChannel resolved with a ${channel.readyState} channel`);
          channel.send(text!);
        },
        [other.id, `hello from ${p.id}`] as const,
      );
    }
    for (const [p, other] of [
      [a, b],
      [b, a],
    ] as const) {
      const got = await until(
        `${p.id.slice(0, 8)} to receive the other's message`,
        async () => {
          const r = await p.page.evaluate(() => (window as unknown as FacadeWindow).facade.received);
          return r.length > 0 ? r : undefined;
        },
        15_000,
      );
      assert.deepEqual(got, [`${other.id} chat: hello from ${other.id}`]);
    }

    // One page shuts down: the other removes its peer on Camus's bye.
    await a.page.evaluate(() => (window as unknown as FacadeWindow).facade.manager.shutdown());
    const removed = await until(
      'the other page to remove the peer that shut down',
      async () => {
        const r = await b.page.evaluate(() => (window as unknown as FacadeWindow).facade.removed);
        return r.length > 0 ? r : undefined;
      },
      15_000,
    );
    assert.deepEqual(removed, [`${a.id} bye`]);

    for (const p of [a, b]) {
      const errors = await p.page.evaluate(() => (window as unknown as FacadeWindow).facade.errors);
      const log = ((p.page as Page & { meshLog?: string[] }).meshLog ?? []).filter((l) => !/Failed to load resource: .* 404/.test(l));
      assert.deepEqual([...errors, ...log], [], `problems at ${p.id.slice(0, 8)}`);
    }
  });
}
