// TURN through a real coturn (Debian's turnserver, started with
// deploy/coturn/turnserver.conf as shipped), inside a loopback-only network
// namespace. Atrium is started with --turn/--turn-secret and hands its
// clients TURN REST credentials; two Chromium pages of the SDK force
// iceTransportPolicy "relay", so every packet goes through coturn: video
// flows, and the selected candidates are relays. A forged credential, and a
// correctly signed one that has expired, get no relay from coturn at all.
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from '../media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 120_000 })) {
  const { startServer } = await import('../support/server-process.ts');
  const { call, launchChromium, openHarness, until } = await import('../client/support/browser.ts');
  const { REPO, requireBinary, spawnService, waitForPort } = await import('./support/services.ts');
  type Page = import('playwright-core').Page;
  type DownInfo = import('../client/support/harness.ts').DownInfo;

  const SECRET = randomBytes(24).toString('base64url');
  const TURN = 'turn:127.0.0.1:3478';
  let coturn: ReturnType<typeof spawnService>;
  let server: Awaited<ReturnType<typeof startServer>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;

  before(async () => {
    requireBinary('/usr/bin/turnserver', 'coturn');
    // The shipped file, plus what depends on the host: the secret, the addresses, and Atrium's media address as the one
    // loopback peer allowed (this Atrium runs on the TURN server's host, on 127.0.0.1).
    coturn = spawnService('/usr/bin/turnserver', [
      '-c',
      join(REPO, 'deploy', 'coturn', 'turnserver.conf'),
      `--static-auth-secret=${SECRET}`,
      '--realm=atrium.test',
      '--listening-ip=127.0.0.1',
      '--relay-ip=127.0.0.1',
      '--allow-loopback-peers',
      '--allowed-peer-ip=127.0.0.1',
      '--pidfile=',
      '--userdb=/tmp/atrium-turn-test.sqlite',
    ]);
    await waitForPort('127.0.0.1', 3478, 'turnserver', coturn);
    server = await startServer({
      groups: { relay: { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } } },
      args: ['--media-address', '127.0.0.1', '--turn', TURN, '--turn-secret', SECRET],
    });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await coturn?.stop();
  });

  /** An SDK page in the group, relaying everything through TURN. */
  async function relayOnly(name: string): Promise<Page> {
    const { page } = await openHarness(browser, server.url, 'relay');
    const joined = (await call(page, 'connect', server.wsUrl, 'relay', name, 'x')) as unknown[];
    assert.equal(joined[0], 'join');
    const config = await page.evaluate(() => {
      const sc = (window as unknown as { h: { sc: { rtcConfiguration: RTCConfiguration | null } } }).h.sc;
      sc.rtcConfiguration = { ...sc.rtcConfiguration, iceTransportPolicy: 'relay' };
      return sc.rtcConfiguration;
    });
    const turn = (config.iceServers ?? []).find((s) => String(s.urls).includes(TURN));
    assert.ok(turn?.username && turn.credential, `Atrium gave TURN REST credentials: ${JSON.stringify(config)}`);
    assert.match(String(turn.username), /^\d+:/, 'username "<expiry>:<user>"');
    return page;
  }

  /** Types of the local and remote candidates of a page's selected pairs. */
  const selectedTypes = (page: Page) =>
    page.evaluate(async () => {
      const sc = (window as unknown as { h: { sc: { up: Record<string, { pc: RTCPeerConnection }>; down: Record<string, { pc: RTCPeerConnection }> } } }).h.sc;
      const out: string[] = [];
      for (const s of [...Object.values(sc.up), ...Object.values(sc.down)]) {
        const stats = await s.pc.getStats();
        const byId = new Map<string, Record<string, unknown>>();
        stats.forEach((r: Record<string, unknown>) => {
          byId.set(r.id as string, r);
        });
        stats.forEach((r: Record<string, unknown>) => {
          if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') out.push(String(byId.get(r.localCandidateId as string)?.candidateType));
        });
      }
      return out;
    });

  test('relay-only clients with Atrium’s TURN REST credentials: coturn relays, video flows', async () => {
    const a = await relayOnly('presenter');
    const b = await relayOnly('viewer');
    await call(b, 'request', { '': ['audio', 'video'] });
    await call(a, 'publish', { label: 'camera' });
    const first = await until('video decoded through the relay', async () => ((await call(b, 'downStats')) as DownInfo[]).find((d) => !d.closed && (d.framesDecoded ?? 0) > 0), 60_000);
    await until('more frames', async () => ((await call(b, 'downStats')) as DownInfo[]).some((d) => d.id === first.id && (d.framesDecoded ?? 0) > (first.framesDecoded ?? 0)));
    for (const p of [a, b]) {
      const types = await until('a selected candidate pair', async () => {
        const t = await selectedTypes(p);
        return t.length > 0 && t;
      });
      assert.deepEqual([...new Set(types)], ['relay'], 'every selected local candidate is a relay');
    }
  });

  /** Relay candidates Chromium gathers with this TURN server entry. */
  async function relayCandidates(page: Page, server: RTCIceServer): Promise<number> {
    return page.evaluate(
      async (ice) => {
        const pc = new RTCPeerConnection({ iceServers: [ice], iceTransportPolicy: 'relay' });
        pc.createDataChannel('probe');
        let relays = 0;
        const done = new Promise<void>((resolve) => {
          pc.onicecandidate = (e) => {
            if (e.candidate === null) resolve();
            else if (e.candidate.type === 'relay') relays++;
          };
          setTimeout(resolve, 10_000);
        });
        await pc.setLocalDescription(await pc.createOffer());
        await done;
        pc.close();
        return relays;
      },
      server as RTCIceServer & Record<string, unknown>,
    );
  }

  test('a forged or an expired credential gets no relay; a fresh one from the same secret does', async () => {
    const page = await relayOnly('prober');
    const user = `${Math.floor(Date.now() / 1000) + 3600}:prober`;
    const sign = (u: string) => createHmac('sha1', SECRET).update(u).digest('base64');
    assert.ok((await relayCandidates(page, { urls: TURN, username: user, credential: sign(user) })) > 0, 'the control: a valid credential gets a relay');
    assert.equal(await relayCandidates(page, { urls: TURN, username: user, credential: createHmac('sha1', 'not-the-secret').update(user).digest('base64') }), 0, 'forged');
    const expired = `${Math.floor(Date.now() / 1000) - 60}:prober`;
    assert.equal(await relayCandidates(page, { urls: TURN, username: expired, credential: sign(expired) }), 0, 'expired');
  });
}
