// The mesh tests every protocol passes, with Atrium's mesh SDK in Chromium
// pages against a real server: video between every pair, data channels in
// order (and after an ICE restart), glare fifty times over, and peers that
// leave or drop cleaned up at the others. Each protocol's test file calls
// `meshSuite(protocol)`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { PeerNegotiation } from './harness.ts';
import { type MeshPeer, type MeshWorld, type Protocol, seesExactly, startWorld, until } from './pages.ts';

const short = (id: string) => id.slice(0, 8);

export function meshSuite(protocol: Protocol): void {
  let world: MeshWorld;

  before(async () => {
    world = await startWorld();
  });
  after(async () => {
    await world?.close();
  });

  async function peers(room: string, n: number): Promise<MeshPeer[]> {
    const out: MeshPeer[] = [];
    for (let i = 0; i < n; i++) out.push(await world.peer(protocol, room));
    for (const p of out)
      await seesExactly(
        p,
        out.filter((o) => o !== p),
      );
    return out;
  }

  async function noProblems(ps: MeshPeer[]): Promise<void> {
    for (const p of ps)
      assert.deepEqual(
        (await p.problems()).filter((l) => !benign(l)),
        [],
        `problems reported by ${short(p.id)}`,
      );
  }

  async function closeAll(ps: MeshPeer[]): Promise<void> {
    for (const p of ps) if (!p.page.isClosed()) await p.page.context().close();
  }

  /** Chromium asks every page for /favicon.ico, which the server does not have. */
  const benign = (line: string) => /Failed to load resource: .* 404/.test(line);

  test(`${protocol}: video flows between every pair of three peers`, { timeout: 90_000 }, async () => {
    const ps = await peers(`video-${protocol}`, 3);
    await Promise.all(ps.map((p) => p.call('publishCamera')));
    for (const p of ps) {
      const others = ps.filter((o) => o !== p).map((o) => o.id);
      const first = await until(
        `${short(p.id)} to decode frames from every other peer`,
        async () => {
          const f = await p.call('framesDecoded');
          return others.every((o) => (f[o] ?? 0) > 0) ? f : undefined;
        },
        45_000,
      );
      await until(
        `${short(p.id)} to keep decoding frames from every other peer`,
        async () => {
          const f = await p.call('framesDecoded');
          return others.every((o) => (f[o] ?? 0) > (first[o] ?? 0));
        },
        30_000,
      );
    }
    await noProblems(ps);
    await closeAll(ps);
  });

  test(`${protocol}: 200 numbered data-channel messages arrive in order between every pair of three peers, and after an ICE restart`, { timeout: 90_000 }, async () => {
    const ps = await peers(`data-${protocol}`, 3);
    const count = 200;
    await Promise.all(ps.map((p) => p.call('openChannels', 'numbers', count)));
    const expected = Array.from({ length: count }, (_, i) => String(i));
    for (const p of ps) {
      const others = ps.filter((o) => o !== p).map((o) => o.id);
      const got = await until(
        `${short(p.id)} to receive ${count} messages from each peer`,
        async () => {
          const r = await p.call('received', 'numbers');
          return others.every((o) => (r[o]?.length ?? 0) >= count) ? r : undefined;
        },
        45_000,
      );
      for (const o of others) assert.deepEqual(got[o], expected, `messages from ${short(o)} at ${short(p.id)}`);
    }

    // An ICE restart (what the SDK does by itself when ICE fails) renegotiates
    // new credentials without disturbing the connections.
    const [first] = ps as [MeshPeer];
    const before = await first.call('restartIce');
    await until(
      `${short(first.id)} to use new ICE credentials with every peer`,
      async () => {
        const now = await first.call('iceUfrags');
        const n = await first.call('negotiation');
        return (
          Object.keys(before).length === 2 &&
          Object.entries(before).every(([id, u]) => now[id] !== undefined && now[id] !== u && n[id]?.signalingState === 'stable' && n[id]?.connectionState === 'connected')
        );
      },
      30_000,
    );
    await first.call('openChannels', 'after-restart', 20);
    for (const p of ps.slice(1)) {
      const got = await until(`${short(p.id)} to receive messages after the restart`, async () => ((await p.call('received', 'after-restart'))[first.id]?.length === 20 ? true : undefined));
      assert.ok(got);
    }
    await noProblems(ps);
    await closeAll(ps);
  });

  test(`${protocol}: glare — both peers add a track at the same instant, 50 times in a row, and every negotiation completes`, { timeout: 110_000 }, async () => {
    const [a, b] = await peers(`glare-${protocol}`, 2);
    const rounds = 50;
    let last: { a: PeerNegotiation; b: PeerNegotiation } | undefined;
    for (let k = 1; k <= rounds; k++) {
      // Both pages add a track when the clock reaches the same instant.
      const at = Date.now() + 150;
      await Promise.all([a!.call('addAudioAt', at), b!.call('addAudioAt', at)]);
      let seen: unknown;
      const settled = await until(
        `round ${k}: both sides stable with ${k} tracks sent and received`,
        async () => {
          const na = (await a!.call('negotiation'))[b!.id];
          const nb = (await b!.call('negotiation'))[a!.id];
          seen = { a: na, b: nb };
          if (!na || !nb) return undefined;
          const done = (n: typeof na) => n.signalingState === 'stable' && n.sending === k && n.receiving === k && n.trackEvents === k;
          return done(na) && done(nb) ? { a: na, b: nb } : undefined;
        },
        30_000,
        50,
      ).catch(async (e: Error) => {
        const problems = [...(await a!.problems()), ...(await b!.problems())];
        throw new Error(`${e.message}\nlast seen: ${JSON.stringify(seen)}\nproblems: ${JSON.stringify(problems)}`);
      });
      // Each side sees the same transceivers (one m-line per track pair or per track).
      assert.equal(settled.a.transceivers, settled.b.transceivers, `round ${k}: transceivers on both sides`);
      assert.ok(settled.a.transceivers >= k && settled.a.transceivers <= 2 * k, `round ${k}: ${settled.a.transceivers} transceivers`);
      last = settled;
    }
    const { a: na, b: nb } = last!;
    assert.notEqual(na.polite, nb.polite, 'exactly one side is polite');
    console.log(
      `# ${protocol} glare: ${rounds} rounds, ${na.transceivers} transceivers; ` +
        `a (${na.polite ? 'polite' : 'impolite'}) ${na.offersSent} offers, ${na.collisions} collisions, ${na.rollbacks} rollbacks, ${na.ignoredOffers} ignored, ${na.lateTrackEvents} late track events; ` +
        `b (${nb.polite ? 'polite' : 'impolite'}) ${nb.offersSent} offers, ${nb.collisions} collisions, ${nb.rollbacks} rollbacks, ${nb.ignoredOffers} ignored, ${nb.lateTrackEvents} late track events`,
    );
    await noProblems([a!, b!]);
    await closeAll([a!, b!]);
  });

  test(`${protocol}: a peer that leaves and a peer whose page is closed are cleaned up at the others (four peers)`, { timeout: 90_000 }, async () => {
    const ps = await peers(`leave-${protocol}`, 4);
    const [a, b, leaver, dropper] = ps as [MeshPeer, MeshPeer, MeshPeer, MeshPeer];
    // Connect every pair for real first: a data channel each way.
    await Promise.all(ps.map((p) => p.call('openChannels', 'hello', 1)));
    for (const p of ps) {
      await until(
        `${short(p.id)} connected to all three others`,
        async () => {
          const s = Object.values(await p.call('connectionStates'));
          return s.length === 3 && s.every((x) => x === 'connected');
        },
        45_000,
      );
    }

    const rosterOf = async (p: MeshPeer) => (protocol === 'camus' ? ((await p.call('roster')) ?? []) : null);

    // A clean leave.
    await leaver.call('leave');
    for (const p of [a, b, dropper]) {
      await seesExactly(
        p,
        ps.filter((o) => o !== p && o !== leaver),
      );
      const closed = (await p.call('closed')).filter((c) => c.id === leaver.id);
      assert.equal(closed.length, 1, `${short(p.id)} closed its connection to the leaver once`);
      // Camus says bye to each peer before leaving the room; RTCPool's server says rtc:close.
      assert.equal(closed[0]!.reason, protocol === 'camus' ? 'bye' : 'left');
      if (protocol === 'camus') await until('the roster without the leaver', async () => !(await rosterOf(p))!.includes(leaver.id));
    }

    // A drop: the page goes away without a word.
    await dropper.page.context().close();
    for (const p of [a, b]) {
      await seesExactly(
        p,
        [a, b].filter((o) => o !== p),
        45_000,
      );
      const closed = (await p.call('closed')).filter((c) => c.id === dropper.id);
      assert.deepEqual(
        closed.map((c) => c.reason),
        ['left'],
        `${short(p.id)} closed its connection to the dropped peer`,
      );
      if (protocol === 'camus') await until('the roster without the dropped peer', async () => !(await rosterOf(p))!.includes(dropper.id));
    }
    // The two who stayed are still connected to each other.
    assert.deepEqual(Object.values(await a.call('connectionStates')), ['connected']);
    assert.deepEqual(Object.values(await b.call('connectionStates')), ['connected']);
    await noProblems([a, b]);
    await closeAll(ps);
  });
}
