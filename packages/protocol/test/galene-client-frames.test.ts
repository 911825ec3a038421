// Replays every row of FRAME_TABLE (the frames Galène's current web client
// sends, galene-client-frames.ts) over real WebSockets against a real
// `atrium serve` process, and checks what the sender and another member get.
// Streams are real: node-datachannel peers publish VP8 and count the packets
// the server forwards. Each connection also does for its streams what
// protocol.js does (answer the server's offers, trickle ICE) with the
// table's frame builders. Runs inside a loopback-only network namespace.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from '../../server/test/media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 240_000 })) {
  const { FRAME_TABLE, GROUP, RECEIVE_MENU, USERS, galeneClient } = await import('./galene-client-frames.ts');
  type Row = import('./galene-client-frames.ts').Row;
  type RowContext = import('./galene-client-frames.ts').RowContext;
  type Expected = import('./galene-client-frames.ts').Expected;
  type Sent = import('./galene-client-frames.ts').Sent;
  const { GaleneTestClient } = await import('../../server/test/support/galene-client.ts');
  type Client = import('../../server/test/support/galene-client.ts').GaleneTestClient;
  type Frame = import('../../server/test/support/galene-client.ts').Frame;
  const { startServer } = await import('../../server/test/support/server-process.ts');
  const { Publisher, Subscriber, cleanupPeers } = await import('./support/media-peers.ts');

  const ADMIN = { user: 'admin', password: 'adminpw' };
  let server: Awaited<ReturnType<typeof startServer>>;

  before(async () => {
    server = await startServer({
      config: { writableGroups: true, users: { [ADMIN.user]: { password: ADMIN.password, permissions: 'admin' } } },
      groups: {
        [GROUP]: {
          'allow-recording': true,
          users: { op: { password: USERS.op.password, permissions: 'op' }, bob: { password: USERS.bob.password, permissions: 'present' } },
          'wildcard-user': { password: { type: 'wildcard' }, permissions: ['message'] },
        },
        [`${GROUP}/sub`]: { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } },
      },
      args: ['--media-address', '127.0.0.1'],
    });
  });
  after(async () => {
    await server?.stop();
    cleanupPeers();
  });

  // -------------------------------------------------------------- matching

  function matches(actual: unknown, expected: unknown): boolean {
    if (expected instanceof RegExp) return typeof actual === 'string' && expected.test(actual);
    if (typeof expected === 'function') return (expected as (v: unknown) => boolean)(actual);
    if (Array.isArray(expected)) return Array.isArray(actual) && expected.every((e) => actual.some((a) => matches(a, e)));
    if (typeof expected === 'object' && expected !== null) {
      if (typeof actual !== 'object' || actual === null) return false;
      return Object.entries(expected).every(([k, v]) => matches((actual as Record<string, unknown>)[k], v));
    }
    return actual === expected;
  }

  const show = (e: Expected) => JSON.stringify(e, (_k, v) => (v instanceof RegExp ? String(v) : typeof v === 'function' ? '(predicate)' : v));

  /** Waits for each expected frame in order, among the frames `c` received since `from`. */
  async function expectInOrder(c: Client, from: number, expected: Expected[], who: string): Promise<void> {
    let i = from;
    for (const e of expected) {
      const deadline = Date.now() + 8000;
      for (;;) {
        const at = c.received.slice(i).findIndex((f) => matches(f, e));
        if (at >= 0) {
          i += at + 1;
          break;
        }
        if (Date.now() > deadline) {
          const got = c.received
            .slice(from)
            .map((f) => JSON.stringify(f).slice(0, 300))
            .join('\n    ');
          assert.fail(`${who} did not get ${show(e)}; got:\n    ${got}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  // ----------------------------------------------------- a member, as protocol.js

  /** A test connection plus what protocol.js does for its streams, with real peers. */
  class Member {
    readonly ups = new Map<string, InstanceType<typeof Publisher>>();
    readonly downs = new Map<string, InstanceType<typeof Subscriber>>();
    /** A publisher whose offer is ready but not sent; claimed by the first offer frame carrying its SDP. */
    pending: { pub: InstanceType<typeof Publisher>; sdp: string } | undefined;
    username: string | null = null;

    constructor(readonly c: Client) {
      const onFrame = (f: Frame) => this.frame(f);
      // Follow every frame, those already in and those to come.
      let seen = 0;
      const poll = setInterval(() => {
        while (seen < c.received.length) onFrame(c.received[seen++]!);
        if (c.isClosed) clearInterval(poll);
      }, 5);
      this.stop = () => clearInterval(poll);
    }
    stop: () => void;

    get sc() {
      return { id: this.c.id, username: this.username };
    }

    send(frames: Sent[]): void {
      for (const f of frames) {
        if (f.type === 'offer' && this.pending && f.sdp === this.pending.sdp) {
          this.ups.set(String(f.id), this.pending.pub);
          this.pending = undefined;
        }
        this.c.send(f);
      }
    }

    /** A publisher with its offer ready (c.sdp). */
    async prepareOffer(name: string): Promise<string> {
      const pub = new Publisher(name);
      const sdp = await pub.offer();
      this.pending = { pub, sdp };
      return sdp;
    }

    private frame(f: Frame): void {
      try {
        if (f.type === 'joined' && (f.kind === 'join' || f.kind === 'change')) this.username = f.username ?? null;
        if (f.type === 'ping') this.c.send(galeneClient.pong());
        if (f.type === 'answer') {
          const pub = this.ups.get(f.id);
          if (!pub) return;
          try {
            pub.setAnswer(f.sdp);
          } catch {
            /* a renegotiation of the same description */
          }
          // flushLocalIceCandidates, after the offer; then media.
          for (const cand of pub.candidates) this.c.send(galeneClient.ice(f.id, cand));
          pub.startMedia();
        }
        if (f.type === 'ice') (this.ups.get(f.id) ?? this.downs.get(f.id))?.addRemoteCandidate(f.candidate);
        if (f.type === 'offer') void this.gotOffer(f);
        if (f.type === 'close') {
          this.downs.get(f.id)?.close();
          this.downs.delete(f.id);
        }
      } catch (e) {
        this.errors.push(String(e));
      }
    }
    readonly errors: string[] = [];

    /** protocol.js gotOffer: answer, then the local candidates. */
    private async gotOffer(f: Frame): Promise<void> {
      let sub = this.downs.get(f.id);
      const fresh = !sub;
      if (!sub) {
        sub = new Subscriber(`${this.c.id}-${f.id}`);
        this.downs.set(f.id, sub);
      }
      let answer: string;
      try {
        answer = await sub.answer(f.sdp);
      } catch (e) {
        if (fresh) this.errors.push(`answer for ${f.id}: ${String(e)}`);
        return;
      }
      this.c.send(galeneClient.answer(f.id, answer));
      if (fresh) {
        const first = await sub.firstCandidate();
        this.c.send(galeneClient.ice(f.id, first));
        for (const cand of sub.candidates.slice(1)) this.c.send(galeneClient.ice(f.id, cand));
      }
    }

    /** Packets received on the down-stream `id` once they have come and keep coming. */
    async flowing(id: string, what: string): Promise<void> {
      const deadline = Date.now() + 20_000;
      let first: number | undefined;
      for (;;) {
        const n = this.downs.get(id)?.packets ?? 0;
        if (first === undefined && n > 0) first = n;
        else if (first !== undefined && n > first) return;
        if (Date.now() > deadline) assert.fail(`${what}: no RTP arrives on down-stream ${id} (${n} packets; errors: ${this.errors.join('; ') || 'none'})`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    close(): void {
      this.stop();
      for (const p of [...this.ups.values(), ...this.downs.values()]) p.close();
      this.pending?.pub.close();
      this.c.close();
    }
  }

  async function connect(handshake = true): Promise<Member> {
    return new Member(await GaleneTestClient.connect(server.wsUrl, { handshake }));
  }

  /** Joins as Galène's client does: join, then request what the Receive menu says. */
  async function joinAs(m: Member, role: 'op' | 'bob' | 'guest'): Promise<void> {
    const [name, pw] = role === 'op' ? ['op', USERS.op.password] : role === 'bob' ? ['bob', USERS.bob.password] : ['gus', 'anything'];
    m.send([galeneClient.join(GROUP, name, { password: pw })]);
    const j = await m.c.next((f) => f.type === 'joined' && f.kind !== 'change', 5000, `joined for ${name}`);
    assert.equal(j.kind, 'join', `${name} could not join: ${JSON.stringify(j)}`);
    m.username = j.username ?? null;
    m.send([galeneClient.request(RECEIVE_MENU.everything!)]);
  }

  async function adminToken(): Promise<string> {
    const r = await fetch(`${server.url}/galene-api/v0/.groups/${GROUP}/.tokens/`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ permissions: ['present', 'message'], expires: new Date(Date.now() + 86400e3).toISOString() }),
    });
    assert.equal(r.status, 201, await r.text());
    return decodeURIComponent(r.headers.get('location')!);
  }

  async function joinWithToken(token: string, username: string): Promise<Frame> {
    const m = await connect();
    try {
      m.send([galeneClient.join(GROUP, username, { token })]);
      return await m.c.next((f) => f.type === 'joined', 5000, 'joined');
    } finally {
      m.close();
    }
  }

  // ------------------------------------------------------------------ rows

  const seenRows = new Set<string>();
  for (const row of FRAME_TABLE) {
    assert.ok(!seenRows.has(row.action), `two rows for "${row.action}"`);
    seenRows.add(row.action);
    test(`${row.action}  [${row.code}]`, async () => {
      await replay(row);
    });
  }

  async function replay(row: Row): Promise<void> {
    const setup = row.setup;
    const other = await connect();
    const me = await connect(setup !== 'raw');
    try {
      await joinAs(other, 'bob');
      if (setup !== 'raw' && setup !== 'none' && row.joined !== false) await joinAs(me, row.as === 'guest' ? 'guest' : row.as);
      const c: RowContext = { me: me.sc, other: other.sc, stream: undefined, token: undefined, chatId: undefined, sdp: undefined };

      if (setup === 'offer') c.sdp = await me.prepareOffer('me-up');
      if (setup === 'publishing') {
        const sdp = await me.prepareOffer('me-cam0');
        me.send([galeneClient.offer(me.sc, { id: 'cam0', label: 'camera', sdp, replace: null })]);
        await other.flowing('cam0', 'setup: the published camera at the other member');
        c.stream = { id: 'cam0', sdp, candidate: undefined };
        c.sdp = await me.prepareOffer('me-cam-next');
      }
      if (setup === 'receiving') {
        const sdp = await other.prepareOffer('other-cam');
        other.send([galeneClient.offer(other.sc, { id: 'ocam', label: 'camera', sdp, replace: null })]);
        await me.flowing('ocam', "setup: the other member's camera at me");
        c.stream = { id: 'ocam', sdp, candidate: undefined };
      }
      if (setup === 'token') {
        const token = await adminToken();
        c.token = { token, link: `${server.url}/group/${GROUP}/?token=${token}` };
      }
      if (setup === 'chat') {
        const mark = me.c.received.length;
        other.send([galeneClient.chat(other.sc, '', '', 'delete me')]);
        await expectInOrder(me.c, mark, [{ type: 'chat', value: 'delete me' }], 'me');
        c.chatId = me.c.received.slice(mark).find((f) => f.type === 'chat' && f.value === 'delete me')!.id;
        assert.ok(c.chatId, 'a public chat message has an id');
      }
      c.me = me.sc;
      c.other = other.sc;

      const myMark = me.c.received.length;
      const otherMark = other.c.received.length;
      const frames = row.frames(c);
      me.send(frames);
      if (row.closes === 'me') me.c.close();

      if (row.reply) await expectInOrder(me.c, myMark, row.reply(c), 'the sender');
      if (row.others) await expectInOrder(other.c, otherMark, row.others(c), 'the other member');
      if (row.closes === 'other') await other.c.closed;

      switch (row.after) {
        case 'media-flows':
          await other.flowing(String(frames.find((f) => f.type === 'offer')!.id), 'the new stream at the other member');
          break;
        case 'media-flows-again':
          await (setup === 'receiving' ? me : other).flowing(c.stream!.id, 'the stream after the row');
          break;
        case 'old-stream-gone': {
          await other.flowing(String(frames[0]!.id), 'the replacing stream');
          assert.equal(other.downs.has(c.stream!.id), false, 'the replaced stream is closed at the other member');
          break;
        }
        case 'token-refused': {
          const j = await joinWithToken(c.token!.token, 'tina');
          assert.equal(j.kind, 'fail', `a revoked token still admits: ${JSON.stringify(j)}`);
          assert.match(String(j.value), /expired/);
          break;
        }
        case 'token-admits': {
          const j = await joinWithToken(c.token!.token, 'tina');
          assert.equal(j.kind, 'join', JSON.stringify(j));
          break;
        }
        case 'others-see-delete':
          await expectInOrder(other.c, otherMark, [{ type: 'user', kind: 'delete', id: me.c.id }], 'the other member');
          break;
      }

      // Negative checks after a round trip: everything sent has been handled.
      if (!me.c.isClosed) await me.c.roundTrip();
      if (!other.c.isClosed) await other.c.roundTrip();
      for (const e of row.notToOthers?.(c) ?? []) {
        assert.ok(!other.c.received.slice(otherMark).some((f) => matches(f, e)), `the other member got ${show(e)}`);
      }
      for (const e of row.notToMe?.(c) ?? []) {
        assert.ok(!me.c.received.slice(myMark).some((f) => matches(f, e)), `the sender got ${show(e)}`);
      }
      // Galène's client sent it; so nothing was refused as malformed, and every server frame is well formed.
      const malformed = me.c.received.slice(myMark).filter((f) => f.type === 'usermessage' && f.kind === 'error' && (f.error === 'bad-message' || f.error === 'unknown-type'));
      assert.deepEqual(malformed, [], "a frame of Galène's client was refused as malformed");
      assert.deepEqual([...me.c.violations, ...other.c.violations], [], 'frames that break the protocol');
      assert.deepEqual([...me.errors, ...other.errors], [], 'media errors');
    } finally {
      me.close();
      other.close();
    }
  }
}
