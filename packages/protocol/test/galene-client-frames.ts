// The frames the current Galène web client (jech/galene, static/protocol.js
// and static/galene.js, Galène 1.1 + the 1.2 changes) sends, for every
// action a user can take in it: read off its code, written here as data.
// `galeneClient` builds each frame the way protocol.js does — the same
// fields, with `undefined` left out and `null` kept, as JSON.stringify does —
// and FRAME_TABLE lists every action (login, publishing, replacing,
// renegotiating, every slash command, the menus, file transfer) with the
// frames it sends and what its sender and the other members must get back.
// galene-client-frames.test.ts replays each row over real WebSockets against
// a real `atrium serve`.

/** What a row knows of the connection that sends (protocol.js's ServerConnection). */
export interface Sc {
  id: string;
  /** What the server said our username is (`joined.username`); null before joining. */
  username: string | null;
}

/** A frame as the client hands it to JSON.stringify. */
export type Sent = Record<string, unknown> & { type: string };

/** The functions of protocol.js that send, with their exact fields. */
export const galeneClient = {
  // ServerConnection.connect: socket.onopen
  handshake: (sc: Sc): Sent => ({ type: 'handshake', version: ['2'], id: sc.id }),
  // socket.onmessage, case 'ping'
  pong: (): Sent => ({ type: 'pong' }),
  // the ping timer, after 15 s of silence
  ping: (): Sent => ({ type: 'ping' }),
  // ServerConnection.join: username only when not null (galene.js probes token logins with username null)
  join: (group: string, username: string | null, credentials: { password: string } | { token: string }): Sent => {
    const m: Sent = { type: 'join', kind: 'join', group };
    if (username !== null) m.username = username;
    if ('password' in credentials) m.password = credentials.password;
    else m.token = credentials.token;
    return m;
  },
  // ServerConnection.leave
  leave: (group: string): Sent => ({ type: 'join', kind: 'leave', group }),
  // ServerConnection.request, with galene.js's mapRequest
  request: (what: Record<string, string[]>): Sent => ({ type: 'request', request: what }),
  // Stream.negotiate: kind '' the first time, 'renegotiate' after; replace is the stream's replace field (null unless replacing)
  offer: (sc: Sc, s: { id: string; label: string; sdp: string; replace: string | null; renegotiate?: boolean }): Sent => ({
    type: 'offer',
    source: sc.id,
    username: sc.username,
    kind: s.renegotiate ? 'renegotiate' : '',
    id: s.id,
    replace: s.replace,
    label: s.label,
    sdp: s.sdp,
  }),
  // ServerConnection.gotOffer, after createAnswer
  answer: (id: string, sdp: string): Sent => ({ type: 'answer', id, sdp }),
  // Stream.gotLocalIce / flushLocalIceCandidates: the RTCIceCandidate object (its toJSON)
  ice: (id: string, candidate: unknown): Sent => ({ type: 'ice', id, candidate }),
  // Stream.restartIce on a down-stream, and oniceconnectionstatechange 'failed'
  renegotiate: (id: string): Sent => ({ type: 'renegotiate', id }),
  // Stream.request: null goes back to the default (galene.js reconsiderDownRate)
  requestStream: (id: string, request: string[] | null): Sent => ({ type: 'requestStream', id, request }),
  // Stream.close on an up-stream (not when replaced)
  close: (id: string): Sent => ({ type: 'close', id }),
  // Stream.abort on a down-stream, and gotOffer for a duplicate id
  abort: (id: string): Sent => ({ type: 'abort', id }),
  // ServerConnection.chat
  chat: (sc: Sc, kind: string, dest: string, value: string): Sent => ({ type: 'chat', source: sc.id, dest, username: sc.username, kind, value }),
  // ServerConnection.userAction (value undefined: the menus)
  userAction: (sc: Sc, kind: string, dest: string, value?: unknown): Sent => ({ type: 'useraction', source: sc.id, dest, username: sc.username, kind, value }),
  // ServerConnection.userMessage
  userMessage: (sc: Sc, kind: string, dest: string | null, value?: unknown, noecho?: boolean): Sent => ({ type: 'usermessage', source: sc.id, dest, username: sc.username, kind, value, noecho }),
  // ServerConnection.groupAction
  groupAction: (sc: Sc, kind: string, value?: unknown): Sent => ({ type: 'groupaction', source: sc.id, kind, username: sc.username, value }),
};

/** galene.js's mapRequest, for each choice of the "Receive" menu. */
export const RECEIVE_MENU: Record<string, Record<string, string[]>> = {
  nothing: { '': [] },
  audio: { '': ['audio'] },
  screenshare: { screenshare: ['audio', 'video'], '': ['audio'] },
  'everything-low': { '': ['audio', 'video-low'] },
  everything: { '': ['audio', 'video'] },
};

/** galene.js's units, for /invite and /reinvite expirations. */
export const UNITS = { s: 1000, min: 60e3, h: 3600e3, d: 86400e3, mon: 31 * 86400e3, yr: 365 * 86400e3 };

/** The users of the table's group: an operator, a presenter, and the wildcard user. */
export const GROUP = 'frames';
export const USERS = { op: { password: 'oppw' }, bob: { password: 'bobpw' } } as const;

/** Who does what in a row (each row gets fresh connections). */
export interface RowContext {
  /** The sender (`as`), joined. */
  me: Sc;
  /** Another member, bob, joined, who requested everything. */
  other: Sc;
  /** A stream the row's setup made: `me` publishes it (setup 'publishing'), or `other` does and `me` receives it ('receiving'). */
  stream: { id: string; sdp: string; candidate: unknown } | undefined;
  /** An invitation the setup made ('token'): its token and a link as galene.js shows it. */
  token: { token: string; link: string } | undefined;
  /** The id of the last public chat message `other` sent (setup 'chat'). */
  chatId: string | undefined;
  /** A fresh SDP offer for `me` to publish with (setups 'publishing' and 'offer'). */
  sdp: string | undefined;
}

export type Role = 'op' | 'bob' | 'guest';

/**
 * A frame the server must send: every field given must match — a RegExp
 * matches a string, a function is a predicate, an object or an array
 * matches a superset (each element of an expected array matches some element).
 */
export type Expected = Record<string, unknown>;

export interface Row {
  /** What the user does in Galène's client. */
  action: string;
  /** Where in static/ the frames come from. */
  code: string;
  /** Who does it. */
  as: Role;
  /** What must exist before the row's frames go out. */
  /**
   * What must exist before the row's frames go out: by default `me` and
   * `other` have joined. 'raw': `me` is connected, no handshake yet; 'none':
   * handshaken, in no group; 'offer': `me` has an SDP offer ready (c.sdp);
   * 'publishing': `me` publishes a camera that `other` receives (and has a
   * fresh offer in c.sdp); 'receiving': `other` publishes, `me` receives;
   * 'token': an invitation exists; 'chat': `other` has sent a chat message.
   */
  setup?: 'raw' | 'none' | 'publishing' | 'receiving' | 'token' | 'chat' | 'offer';
  /** false: `me` has not joined (only handshaken), whatever the setup. */
  joined?: false;
  frames: (c: RowContext) => Sent[];
  /** Frames the sender must receive, in order (other frames may come between). */
  reply?: (c: RowContext) => Expected[];
  /** Frames `other` must receive, in order. */
  others?: (c: RowContext) => Expected[];
  /** Frames `other` must not receive (checked after a round trip). */
  notToOthers?: (c: RowContext) => Expected[];
  /** Frames the sender must not receive (checked after a round trip). */
  notToMe?: (c: RowContext) => Expected[];
  /** The socket must be closed by the server (kick) / by the client (leave). */
  closes?: 'other' | 'me';
  /** Anything more to check, in words; done by the runner for the named check. */
  after?: 'media-flows' | 'media-flows-again' | 'token-refused' | 'token-admits' | 'others-see-delete' | 'old-stream-gone';
}

export const FRAME_TABLE: Row[] = [
  // ------------------------------------------------------------------ session
  {
    action: 'open the group page: connect (handshake)',
    code: 'protocol.js ServerConnection.connect → socket.onopen',
    as: 'guest',
    setup: 'raw',
    frames: (c) => [galeneClient.handshake(c.me)],
    reply: () => [{ type: 'handshake', version: ['2'] }],
  },
  {
    action: 'log in with a username and password (login form)',
    code: 'galene.js join() → protocol.js ServerConnection.join(group, username, password)',
    as: 'guest',
    setup: 'none',
    frames: () => [galeneClient.join(GROUP, 'bob', { password: USERS.bob.password })],
    reply: () => [
      { type: 'joined', kind: 'join', group: GROUP, username: 'bob', permissions: ['present', 'message'], status: { name: GROUP, canChangePassword: true } },
      { type: 'user', kind: 'add', username: 'bob' },
    ],
    others: () => [{ type: 'user', kind: 'add', username: 'bob' }],
  },
  {
    action: 'log in with a wrong password',
    code: 'galene.js join()',
    as: 'guest',
    setup: 'none',
    frames: () => [galeneClient.join(GROUP, 'op', { password: 'wrong' })],
    reply: () => [{ type: 'joined', kind: 'fail', group: GROUP, error: 'not-authorised' }],
  },
  {
    action: 'open an invitation link that names nobody: the client probes with username null',
    code: 'galene.js join() with token, probingState "probing"',
    as: 'guest',
    setup: 'token',
    joined: false,
    frames: (c) => [galeneClient.join(GROUP, null, { token: c.token!.token })],
    reply: () => [{ type: 'joined', kind: 'fail', group: GROUP, error: 'need-username' }],
  },
  {
    action: 'then give a username for that invitation',
    code: 'galene.js join() with token, probingState "need-username"',
    as: 'guest',
    setup: 'token',
    joined: false,
    frames: (c) => [galeneClient.join(GROUP, 'dora', { token: c.token!.token })],
    reply: () => [{ type: 'joined', kind: 'join', group: GROUP, username: 'dora', permissions: ['present', 'message'] }],
    others: () => [{ type: 'user', kind: 'add', username: 'dora' }],
  },
  {
    action: 'choose what to receive (Receive menu: each of nothing, audio, screenshare, everything-low, everything)',
    code: 'galene.js requestselect.onchange → mapRequest → ServerConnection.request',
    as: 'bob',
    frames: () => Object.values(RECEIVE_MENU).map((r) => galeneClient.request(r)),
    reply: () => [],
  },
  {
    action: "answer the server's ping; ping it after 15 s of silence",
    code: 'protocol.js socket.onmessage case ping; the pingHandler timer',
    as: 'bob',
    frames: () => [galeneClient.pong(), galeneClient.ping()],
    reply: () => [{ type: 'pong' }],
  },
  {
    action: 'leave the group (ServerConnection.leave)',
    code: 'protocol.js ServerConnection.leave',
    as: 'bob',
    frames: () => [galeneClient.leave(GROUP)],
    reply: () => [{ type: 'joined', kind: 'leave', group: GROUP }],
    others: (c) => [{ type: 'user', kind: 'delete', id: c.me.id }],
  },
  {
    action: '/leave (and the Disconnect button): the client closes its socket',
    code: 'galene.js commands.leave → serverConnection.close()',
    as: 'bob',
    frames: () => [],
    closes: 'me',
    after: 'others-see-delete',
  },

  // --------------------------------------------------------------------- chat
  {
    action: 'type a chat message',
    code: "galene.js handleInput → serverConnection.chat('', '', message)",
    as: 'bob',
    frames: (c) => [galeneClient.chat(c.me, '', '', 'hello everyone')],
    reply: (c) => [{ type: 'chat', source: c.me.id, username: 'bob', privileged: false, value: 'hello everyone' }],
    others: (c) => [{ type: 'chat', source: c.me.id, username: 'bob', value: 'hello everyone' }],
  },
  {
    action: '/me waves',
    code: "galene.js handleInput: cmd 'me' → chat('me', '', rest)",
    as: 'bob',
    frames: (c) => [galeneClient.chat(c.me, 'me', '', 'waves')],
    reply: () => [{ type: 'chat', kind: 'me', value: 'waves' }],
    others: () => [{ type: 'chat', kind: 'me', value: 'waves' }],
  },
  {
    action: '/msg bob psst (a private message)',
    code: "galene.js commands.msg → serverConnection.chat('', id, p[1])",
    as: 'op',
    frames: (c) => [galeneClient.chat(c.me, '', c.other.id, 'psst')],
    others: (c) => [{ type: 'chat', source: c.me.id, dest: c.other.id, privileged: true, value: 'psst' }],
  },
  {
    action: '/raise and the user menu\'s "Raise hand"',
    code: "galene.js commands.raise → userAction('setdata', sc.id, {raisehand: true})",
    as: 'bob',
    frames: (c) => [galeneClient.userAction(c.me, 'setdata', c.me.id, { raisehand: true })],
    reply: (c) => [{ type: 'user', kind: 'change', id: c.me.id, data: { raisehand: true } }],
    others: (c) => [{ type: 'user', kind: 'change', id: c.me.id, data: { raisehand: true } }],
  },
  {
    action: '/unraise and "Unraise hand" (a null value deletes the key)',
    code: "galene.js commands.unraise → userAction('setdata', sc.id, {raisehand: null})",
    as: 'bob',
    frames: (c) => [galeneClient.userAction(c.me, 'setdata', c.me.id, { raisehand: true }), galeneClient.userAction(c.me, 'setdata', c.me.id, { raisehand: null })],
    others: (c) => [
      { type: 'user', kind: 'change', id: c.me.id, data: { raisehand: true } },
      { type: 'user', kind: 'change', id: c.me.id, data: {} },
    ],
  },

  // ------------------------------------------------------------ op: the group
  {
    action: '/clear',
    code: "galene.js commands.clear → groupAction('clearchat')",
    as: 'op',
    frames: (c) => [galeneClient.groupAction(c.me, 'clearchat')],
    reply: () => [{ type: 'usermessage', kind: 'clearchat', privileged: true }],
    others: () => [{ type: 'usermessage', kind: 'clearchat', privileged: true }],
  },
  {
    action: 'chat menu (double click): "Delete message"',
    code: "galene.js chatMessageMenu → groupAction('clearchat', {id, userId})",
    as: 'op',
    setup: 'chat',
    frames: (c) => [galeneClient.groupAction(c.me, 'clearchat', { id: c.chatId, userId: c.other.id })],
    reply: (c) => [{ type: 'usermessage', kind: 'clearchat', privileged: true, value: { id: c.chatId, userId: c.other.id } }],
    others: (c) => [{ type: 'usermessage', kind: 'clearchat', privileged: true, value: { id: c.chatId, userId: c.other.id } }],
  },
  {
    action: 'chat menu: "Delete all from bob"',
    code: "galene.js chatMessageMenu → groupAction('clearchat', {userId})",
    as: 'op',
    setup: 'chat',
    frames: (c) => [galeneClient.groupAction(c.me, 'clearchat', { userId: c.other.id })],
    others: (c) => [{ type: 'usermessage', kind: 'clearchat', value: { userId: c.other.id } }],
  },
  {
    action: '/lock meeting in progress',
    code: "galene.js commands.lock → groupAction('lock', r)",
    as: 'op',
    frames: (c) => [galeneClient.groupAction(c.me, 'lock', 'meeting in progress')],
    reply: () => [{ type: 'joined', kind: 'change', status: { locked: true } }],
    others: () => [{ type: 'joined', kind: 'change', status: { locked: true } }],
  },
  {
    action: '/unlock',
    code: "galene.js commands.unlock → groupAction('unlock')",
    as: 'op',
    frames: (c) => [galeneClient.groupAction(c.me, 'lock', ''), galeneClient.groupAction(c.me, 'unlock')],
    others: () => [
      { type: 'joined', kind: 'change', status: { locked: true } },
      { type: 'joined', kind: 'change', status: (st: { locked?: boolean }) => !st.locked },
    ],
  },
  {
    action: '/record (recording is not available yet: a clear refusal)',
    code: "galene.js commands.record → groupAction('record')",
    as: 'op',
    frames: (c) => [galeneClient.groupAction(c.me, 'record')],
    reply: () => [{ type: 'usermessage', kind: 'error', error: 'not-supported', privileged: true }],
  },
  {
    action: '/unrecord (the same refusal)',
    code: "galene.js commands.unrecord → groupAction('unrecord')",
    as: 'op',
    frames: (c) => [galeneClient.groupAction(c.me, 'unrecord')],
    reply: () => [{ type: 'usermessage', kind: 'error', error: 'not-supported' }],
  },
  {
    action: '/subgroups',
    code: "galene.js commands.subgroups → groupAction('subgroups')",
    as: 'op',
    frames: (c) => [galeneClient.groupAction(c.me, 'subgroups')],
    reply: (c) => [{ type: 'chat', username: 'Server', dest: c.me.id, value: `${GROUP}/sub (0 clients)\n` }],
  },

  // ------------------------------------------------------------- invitations
  {
    action: '/invite (the defaults: one day, my present and message)',
    code: "galene.js commands.invite → makeToken → groupAction('maketoken', {group, expires: units.d, permissions})",
    as: 'op',
    frames: (c) => [galeneClient.groupAction(c.me, 'maketoken', { group: GROUP, expires: UNITS.d, permissions: ['present', 'message'] })],
    reply: () => [{ type: 'usermessage', kind: 'token', privileged: true, value: { group: GROUP, permissions: ['present', 'message'], issuedBy: 'op' } }],
  },
  {
    action: '/invite carol 2h',
    code: 'galene.js commands.invite with parseExpiration("2h")',
    as: 'op',
    frames: (c) => [galeneClient.groupAction(c.me, 'maketoken', { group: GROUP, username: 'carol', expires: 2 * UNITS.h, permissions: ['present', 'message'] })],
    reply: () => [{ type: 'usermessage', kind: 'token', value: { group: GROUP, username: 'carol' } }],
  },
  {
    action: '/invite carol 2030-01-01 (a date: JSON.stringify writes it as an ISO string)',
    code: 'galene.js commands.invite with parseExpiration returning a Date',
    as: 'op',
    frames: (c) => [galeneClient.groupAction(c.me, 'maketoken', JSON.parse(JSON.stringify({ group: GROUP, username: 'carol', expires: new Date('2030-01-01'), permissions: ['present', 'message'] })))],
    reply: () => [{ type: 'usermessage', kind: 'token', value: { username: 'carol', expires: '2030-01-01T00:00:00.000Z' } }],
  },
  {
    action: 'user menu "Invite user": the dialog with username, not-before and expires',
    code: "galene.js invite-dialog onclose → makeToken({username, 'not-before', expires})",
    as: 'op',
    frames: (c) => [
      galeneClient.groupAction(
        c.me,
        'maketoken',
        JSON.parse(JSON.stringify({ group: GROUP, username: 'eve', expires: new Date(Date.now() + 2 * UNITS.d), 'not-before': new Date(Date.now() + UNITS.h), permissions: ['present', 'message'] })),
      ),
    ],
    reply: () => [{ type: 'usermessage', kind: 'token', value: { username: 'eve', 'not-before': /^\d{4}-/ } }],
  },
  {
    action: '/invite by someone without the token permission',
    code: 'galene.js makeTokenPredicate (the server checks too)',
    as: 'bob',
    frames: (c) => [galeneClient.groupAction(c.me, 'maketoken', { group: GROUP, expires: UNITS.d, permissions: ['present', 'message'] })],
    reply: () => [{ type: 'usermessage', kind: 'token', error: 'not-permitted', privileged: true }],
  },
  {
    action: '/reinvite LINK 3d',
    code: "galene.js commands.reinvite → parseToken(link) → groupAction('edittoken', {token, expires})",
    as: 'op',
    setup: 'token',
    frames: (c) => [galeneClient.groupAction(c.me, 'edittoken', { token: c.token!.token, expires: 3 * UNITS.d })],
    reply: (c) => [{ type: 'usermessage', kind: 'token', privileged: true, value: { token: c.token!.token, group: GROUP } }],
    after: 'token-admits',
  },
  {
    action: '/revoke LINK',
    code: "galene.js commands.revoke → groupAction('edittoken', {token, expires: -units.s})",
    as: 'op',
    setup: 'token',
    frames: (c) => [galeneClient.groupAction(c.me, 'edittoken', { token: c.token!.token, expires: -UNITS.s })],
    reply: (c) => [{ type: 'usermessage', kind: 'token', value: { token: c.token!.token } }],
    after: 'token-refused',
  },
  {
    action: '/listtokens',
    code: "galene.js commands.listtokens → groupAction('listtokens')",
    as: 'op',
    setup: 'token',
    frames: (c) => [galeneClient.groupAction(c.me, 'listtokens')],
    reply: (c) => [{ type: 'usermessage', kind: 'tokenlist', privileged: true, value: [{ token: c.token!.token, group: GROUP }] }],
  },

  // ------------------------------------------------------------- op: users
  {
    action: '/kick bob too noisy',
    code: "galene.js commands.kick → userCommand → userAction('kick', id, p[1])",
    as: 'op',
    frames: (c) => [galeneClient.userAction(c.me, 'kick', c.other.id, 'too noisy')],
    others: (c) => [{ type: 'usermessage', kind: 'kicked', source: c.me.id, privileged: true, value: 'too noisy' }],
    closes: 'other',
  },
  {
    action: 'user menu "Kick out" (no value)',
    code: "galene.js userMenu → userAction('kick', id)",
    as: 'op',
    frames: (c) => [galeneClient.userAction(c.me, 'kick', c.other.id)],
    others: () => [{ type: 'usermessage', kind: 'kicked', privileged: true }],
    closes: 'other',
  },
  {
    action: '/identify bob (and the menus\' "Identify")',
    code: "galene.js commands.identify → userAction('identify', id, p[1])",
    as: 'op',
    frames: (c) => [galeneClient.userAction(c.me, 'identify', c.other.id, '')],
    reply: (c) => [{ type: 'usermessage', kind: 'userinfo', privileged: true, value: { id: c.other.id, username: 'bob', address: /^127\.0\.0\.1(:\d+)?$/ } }],
    others: () => [{ type: 'usermessage', kind: 'warning', privileged: true, value: 'Your IP address has been communicated to user op.' }],
  },
  ...(['op', 'unop', 'present', 'unpresent', 'shutup', 'unshutup'] as const).map(
    (kind): Row => ({
      action: `/${kind} bob`,
      code: `galene.js commands.${kind} → userCommand → userAction('${kind}', id, '')`,
      as: 'op',
      frames: (c) => {
        // To take something away, bob must have it first; to give it back, bob must lack it.
        const undo: Record<string, string> = { unop: 'op', unshutup: 'shutup', present: 'unpresent' };
        const before = undo[kind] ? [galeneClient.userAction(c.me, undo[kind], c.other.id, '')] : [];
        return [...before, galeneClient.userAction(c.me, kind, c.other.id, '')];
      },
      others: (c) => {
        const perms: Record<string, (p: string[]) => boolean> = {
          op: (p) => p.includes('op'),
          unop: (p) => !p.includes('op'),
          present: (p) => p.includes('present'),
          unpresent: (p) => !p.includes('present'),
          shutup: (p) => !p.includes('message'),
          unshutup: (p) => p.includes('message'),
        };
        const check = perms[kind]!;
        return [
          { type: 'joined', kind: 'change', permissions: check },
          { type: 'user', kind: 'change', id: c.other.id, permissions: check },
        ];
      },
    }),
  ),
  {
    action: 'user menu "Allow presenting" / "Forbid presenting" (no value)',
    code: "galene.js userMenu → userAction('present' | 'unpresent', id)",
    as: 'op',
    frames: (c) => [galeneClient.userAction(c.me, 'unpresent', c.other.id), galeneClient.userAction(c.me, 'present', c.other.id)],
    others: () => [
      { type: 'joined', kind: 'change', permissions: (p: string[]) => !p.includes('present') },
      { type: 'joined', kind: 'change', permissions: (p: string[]) => p.includes('present') },
    ],
  },
  {
    action: '/mute bob',
    code: "galene.js commands.mute → userMessage('mute', r) → sc.userMessage('mute', id, p[1])",
    as: 'op',
    frames: (c) => [galeneClient.userMessage(c.me, 'mute', c.other.id, '')],
    others: (c) => [{ type: 'usermessage', kind: 'mute', source: c.me.id, username: 'op', privileged: true }],
  },
  {
    action: 'user menu "Mute" (no value)',
    code: "galene.js userMenu → userMessage('mute', id)",
    as: 'op',
    frames: (c) => [galeneClient.userMessage(c.me, 'mute', c.other.id)],
    others: () => [{ type: 'usermessage', kind: 'mute', privileged: true }],
  },
  {
    action: '/muteall (dest null, value null, noecho)',
    code: "galene.js commands.muteall → userMessage('mute', null, null, true)",
    as: 'op',
    frames: (c) => [galeneClient.userMessage(c.me, 'mute', null, null, true)],
    others: () => [{ type: 'usermessage', kind: 'mute', privileged: true }],
    notToMe: () => [{ type: 'usermessage', kind: 'mute' }],
  },
  {
    action: '/mute bob from a non-operator is refused',
    code: 'galene.js operatorPredicate (the server checks too)',
    as: 'guest',
    frames: (c) => [galeneClient.userMessage(c.me, 'mute', c.other.id, '')],
    reply: () => [{ type: 'usermessage', kind: 'error', error: 'not-permitted' }],
    notToOthers: () => [{ type: 'usermessage', kind: 'mute' }],
  },
  {
    action: '/warn bob mind the language',
    code: "galene.js commands.warn → userMessage('warning', r)",
    as: 'op',
    frames: (c) => [galeneClient.userMessage(c.me, 'warning', c.other.id, 'mind the language')],
    others: (c) => [{ type: 'usermessage', kind: 'warning', source: c.me.id, username: 'op', privileged: true, value: 'mind the language' }],
  },
  {
    action: '/wall the meeting ends in 5 minutes',
    code: "galene.js commands.wall → userMessage('warning', '', r)",
    as: 'op',
    frames: (c) => [galeneClient.userMessage(c.me, 'warning', '', 'the meeting ends in 5 minutes')],
    reply: () => [{ type: 'usermessage', kind: 'warning', privileged: true, value: 'the meeting ends in 5 minutes' }],
    others: () => [{ type: 'usermessage', kind: 'warning', privileged: true, value: 'the meeting ends in 5 minutes' }],
  },

  // ------------------------------------------------------------ file transfer
  {
    action: '/sendfile bob (and "Send file"): the invitation',
    code: "protocol.js ServerConnection.sendFile → userMessage('filetransfer', id, {type: 'invite', version: ['1'], id, name, size, mimetype})",
    as: 'bob',
    frames: (c) => [galeneClient.userMessage(c.me, 'filetransfer', c.other.id, { type: 'invite', version: ['1'], id: 'f1', name: 'notes.txt', size: 12, mimetype: 'text/plain' })],
    others: (c) => [{ type: 'usermessage', kind: 'filetransfer', source: c.me.id, value: { type: 'invite', version: ['1'], id: 'f1', name: 'notes.txt', size: 12, mimetype: 'text/plain' } }],
  },
  {
    action: "accept a file: the receiver's offer and ICE (the last candidate null)",
    code: 'protocol.js TransferredFile.receive: offer {version: [f.version]}, onicecandidate sends e.candidate even when null',
    as: 'bob',
    frames: (c) => [
      galeneClient.userMessage(c.me, 'filetransfer', c.other.id, { type: 'offer', version: ['1'], id: 'f1', sdp: 'v=0\r\n' }),
      galeneClient.userMessage(c.me, 'filetransfer', c.other.id, {
        type: 'ice',
        id: 'f1',
        candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'abcd' },
      }),
      galeneClient.userMessage(c.me, 'filetransfer', c.other.id, { type: 'ice', id: 'f1', candidate: null }),
    ],
    others: () => [
      { type: 'usermessage', kind: 'filetransfer', value: { type: 'offer', id: 'f1' } },
      { type: 'usermessage', kind: 'filetransfer', value: { type: 'ice', id: 'f1' } },
      { type: 'usermessage', kind: 'filetransfer', value: { type: 'ice', id: 'f1', candidate: null } },
    ],
  },
  {
    action: "the sender's answer",
    code: "protocol.js TransferredFile.answer → userMessage('filetransfer', id, {type: 'answer', id, sdp})",
    as: 'bob',
    frames: (c) => [galeneClient.userMessage(c.me, 'filetransfer', c.other.id, { type: 'answer', id: 'f1', sdp: 'v=0\r\n' })],
    others: () => [{ type: 'usermessage', kind: 'filetransfer', value: { type: 'answer', id: 'f1' } }],
  },
  {
    action: 'reject or cancel a file',
    code: "protocol.js sendFileCancel → userMessage('filetransfer', id, {type: 'cancel', id, message})",
    as: 'bob',
    frames: (c) => [
      galeneClient.userMessage(c.me, 'filetransfer', c.other.id, { type: 'cancel', id: 'f1', message: 'no thanks' }),
      galeneClient.userMessage(c.me, 'filetransfer', c.other.id, { type: 'cancel', id: 'f2' }),
    ],
    others: () => [
      { type: 'usermessage', kind: 'filetransfer', value: { type: 'cancel', id: 'f1', message: 'no thanks' } },
      { type: 'usermessage', kind: 'filetransfer', value: { type: 'cancel', id: 'f2' } },
    ],
  },

  // -------------------------------------------------------------------- media
  {
    action: 'Enable (publish the camera): the offer with replace null, then trickled ICE',
    code: "galene.js addLocalMedia → newUpStream → Stream.negotiate: offer {kind: '', replace: null, label: 'camera'}; flushLocalIceCandidates",
    as: 'bob',
    setup: 'offer',
    frames: (c) => [galeneClient.offer(c.me, { id: 'cam1', label: 'camera', sdp: c.sdp!, replace: null })],
    reply: () => [{ type: 'answer', id: 'cam1', sdp: /^v=0/ }],
    after: 'media-flows',
  },
  {
    action: '/presentfile of a clip that ends at once: close right behind the offer, and no error',
    code: "galene.js addFileMedia → newUpStream, label 'video'; the video's ended event → closeUpMedia → close",
    as: 'bob',
    setup: 'offer',
    frames: (c) => [galeneClient.offer(c.me, { id: 'clip1', label: 'video', sdp: c.sdp!, replace: null }), galeneClient.close('clip1')],
    notToMe: () => [{ type: 'usermessage', kind: 'error' }],
  },
  {
    action: 'a second up-stream for a screen share (/sharescreen)',
    code: "galene.js commands.sharescreen → addShareMedia → newUpStream, label 'screenshare'",
    as: 'bob',
    setup: 'offer',
    frames: (c) => [galeneClient.offer(c.me, { id: 'share1', label: 'screenshare', sdp: c.sdp!, replace: null })],
    reply: () => [{ type: 'answer', id: 'share1' }],
  },
  {
    action: 'change a send setting (/replace, simulcast, quality): a new stream replacing the old one',
    code: 'galene.js replaceUpStreams → newUpStream(localId) sets c.replace = old id → offer {replace: oldId}',
    as: 'bob',
    setup: 'publishing',
    frames: (c) => [galeneClient.offer(c.me, { id: 'cam2', label: 'camera', sdp: c.sdp!, replace: c.stream!.id })],
    reply: () => [{ type: 'answer', id: 'cam2' }],
    others: (c) => [{ type: 'close', id: c.stream!.id }],
    after: 'old-stream-gone',
  },
  {
    action: '/renegotiate and "Restart media", up-streams: an offer of kind renegotiate, replace null',
    code: 'galene.js renegotiateStreams → Stream.restartIce → negotiate(): kind "renegotiate"',
    as: 'bob',
    setup: 'publishing',
    frames: (c) => [galeneClient.offer(c.me, { id: c.stream!.id, label: 'camera', sdp: c.stream!.sdp, replace: null, renegotiate: true })],
    reply: (c) => [{ type: 'answer', id: c.stream!.id }],
    after: 'media-flows-again',
  },
  {
    action: '/renegotiate, down-streams: ask the server for an ICE restart',
    code: 'galene.js renegotiateStreams → Stream.restartIce on a down-stream → {type: renegotiate, id}',
    as: 'bob',
    setup: 'receiving',
    frames: (c) => [galeneClient.renegotiate(c.stream!.id)],
    reply: (c) => [{ type: 'offer', id: c.stream!.id, sdp: /a=ice-ufrag/ }],
  },
  {
    action: 'a small video: requestStream the low layer, then null to go back to the default',
    code: 'galene.js reconsiderDownRate → c.request(low ? requestlow : null)',
    as: 'bob',
    setup: 'receiving',
    frames: (c) => [galeneClient.requestStream(c.stream!.id, ['audio', 'video-low']), galeneClient.requestStream(c.stream!.id, null)],
    reply: () => [],
    after: 'media-flows-again',
  },
  {
    action: 'Disable (close the camera): close',
    code: 'galene.js closeUpMedia → Stream.close → {type: close, id}',
    as: 'bob',
    setup: 'publishing',
    frames: (c) => [galeneClient.close(c.stream!.id)],
    others: (c) => [{ type: 'close', id: c.stream!.id }],
  },
  {
    action: 'a down-stream the client cannot use: abort',
    code: 'protocol.js gotOffer → catch → c.abort()',
    as: 'bob',
    setup: 'receiving',
    frames: (c) => [galeneClient.abort(c.stream!.id)],
    reply: (c) => [{ type: 'close', id: c.stream!.id }],
  },
  {
    action: 'publishing without the present permission is refused with abort',
    code: 'galene.js (presentbutton hidden without present; the server checks)',
    as: 'guest',
    setup: 'offer',
    frames: (c) => [galeneClient.offer(c.me, { id: 'nope', label: 'camera', sdp: c.sdp!, replace: null })],
    reply: () => [
      { type: 'abort', id: 'nope' },
      { type: 'usermessage', kind: 'error', error: 'not-permitted' },
    ],
  },
];
