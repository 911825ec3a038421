// The state of one visit to a group, as signals the components read: the
// connection (through the SDK's ServerConnection), the people, the streams,
// the chat, the file transfers and the notices. Components call the
// functions exported here; nothing else talks to the server.
import { batch, signal } from '@preact/signals';
import { type Credentials, ServerConnection, type Stream, type TransferredFile, type User } from '@atrium/client';
import { describe, plainError } from './errors.ts';
import * as media from './media.ts';
import { readTileStats, type TileStats, type TileStatsMark } from './tile-stats.ts';

export type { TileStats } from './tile-stats.ts';

export interface GroupStatus {
  name: string;
  location?: string;
  endpoint: string;
  displayName?: string;
  description?: string;
  authServer?: string;
  authPortal?: string;
  locked?: boolean;
  clientCount?: number;
}

export type Phase = 'loading' | 'login' | 'connecting' | 'joined' | 'reconnecting' | 'ended';

export interface ChatMessage {
  key: number;
  fromId: string | undefined;
  from: string;
  /** Set for private messages: the other person's id. */
  peerId?: string;
  peerName?: string;
  time: Date;
  kind: string;
  text: string;
  mine: boolean;
  privateMsg: boolean;
}

export interface TransferView {
  key: string;
  up: boolean;
  peer: string;
  name: string;
  size: number;
  state: string;
  done: number;
  /** Object URL of a received file. */
  url?: string;
  reason?: string;
  file: TransferredFile;
}

export interface Notice {
  key: number;
  level: 'error' | 'warning' | 'info';
  text: string;
}

export interface Ended {
  title: string;
  detail: string;
  canRejoin: boolean;
}

export const groupName = signal('');
export const status = signal<GroupStatus | null>(null);
export const phase = signal<Phase>('loading');
export const loginError = signal('');
export const needUsername = signal(false);
export const ended = signal<Ended | null>(null);
export const myId = signal('');
export const myName = signal('');
export const permissions = signal<string[]>([]);
export const locked = signal(false);
export const users = signal<Record<string, User>>({});
export const downStreams = signal<Stream[]>([]);
/** Bumped when a stream gets a track, so tiles re-attach. */
export const streamsVersion = signal(0);
export const speaking = signal<Record<string, boolean>>({});
/** The latest audio energy of each down-stream, by stream id (for the active speaker). */
export const audioEnergy = signal<Record<string, number>>({});
export const tileStats = signal<Record<string, TileStats>>({});
export const messages = signal<ChatMessage[]>([]);
export const unread = signal(0);
export const chatTarget = signal<string | null>(null);
export const transfers = signal<TransferView[]>([]);
export const notices = signal<Notice[]>([]);
export const inviteLink = signal('');
/** Whether this server can make invitations (Galène's groupaction `maketoken`); Atrium's cannot yet. */
export const invitationsSupported = true;

let sc: ServerConnection | null = null;
let seq = 0;
let leaving = false;
let statsTimer: ReturnType<typeof setInterval> | null = null;

export const can = (perm: string) => permissions.value.includes(perm);
export const connection = () => sc;

const CRED_KEY = (g: string) => `atrium:login:${g}`;

// ---------------------------------------------------------------------------
// Starting

/** Loads the group's status and joins at once with a token from the URL or remembered credentials. */
export async function start(name: string): Promise<void> {
  groupName.value = name;
  let r: Response;
  try {
    r = await fetch(`/group/${name.split('/').map(encodeURIComponent).join('/')}/.status`, { cache: 'no-store' });
  } catch (e) {
    return end('Cannot reach the server', `Check your network connection and reload the page. (${describe(e)})`, true);
  }
  if (r.status === 404) return end('No such group', `There is no group called “${name}” on this server.`, false);
  if (!r.ok) return end('The server had a problem', `It answered ${r.status} ${r.statusText}. Reload the page to try again.`, true);
  const s = (await r.json()) as GroupStatus;
  status.value = s;
  document.title = `${s.displayName ?? s.name} · Atrium`;
  const token = new URL(location.href).searchParams.get('token');
  const remembered = sessionStorage.getItem(CRED_KEY(name));
  if (token) {
    const who = remembered ? (JSON.parse(remembered) as { username?: string }).username : undefined;
    connect(who, { type: 'token', token });
  } else if (remembered) {
    const c = JSON.parse(remembered) as { username: string; password: string };
    connect(c.username, c.password);
  } else {
    phase.value = 'login';
  }
}

/** Joins with what the login form gives. */
export function login(username: string, password: string): void {
  const token = new URL(location.href).searchParams.get('token');
  if (token) {
    connect(username, { type: 'token', token });
    return;
  }
  sessionStorage.setItem(CRED_KEY(groupName.value), JSON.stringify({ username, password }));
  const s = status.value;
  if (s?.authServer) {
    connect(username, { type: 'authServer', authServer: s.authServer, location: s.location ?? location.href, password });
  } else {
    connect(username, password);
  }
}

function connect(username: string | undefined, creds: Credentials): void {
  const s = status.value;
  if (!s) return;
  sc?.close();
  leaving = false;
  loginError.value = '';
  phase.value = 'connecting';
  const c = new ServerConnection();
  sc = c;
  myId.value = c.id;
  c.onconnected = function () {
    this.join(groupName.value, username, creds).catch((e) => joinFailed(authServerError(e)));
  };
  c.onreconnecting = () => {
    if (sc === c) phase.value = 'reconnecting';
  };
  c.onclose = (code, reason) => {
    if (sc !== c) return;
    stopStatsPolling();
    media.reset();
    clearCallState();
    if (leaving) return;
    if (phase.value === 'login' || ended.value) return;
    end('Disconnected', reason ? `The connection to the server closed: ${reason}.` : `The connection to the server closed (code ${code}).`, true);
  };
  c.onerror = (e) => console.warn('atrium:', e);
  c.onjoined = (kind, _group, perms, st, _data, error, message) => {
    if (sc !== c) return;
    switch (kind) {
      case 'join':
      case 'change': {
        const wasJoined = phase.value === 'joined';
        batch(() => {
          permissions.value = perms;
          locked.value = st.locked ?? false;
          myId.value = c.id;
          myName.value = c.username ?? '';
          phase.value = 'joined';
          needUsername.value = false;
        });
        if (kind === 'join') {
          c.request({ '': ['audio', 'video'] });
          startStatsPolling();
          if (!wasJoined) void media.joined();
        }
        if (!perms.includes('present')) media.stopAll();
        break;
      }
      case 'fail':
        if (error === 'need-username') {
          needUsername.value = true;
          phase.value = 'login';
          loginError.value = plainError(error, message);
          c.close();
          return;
        }
        sessionStorage.removeItem(CRED_KEY(groupName.value));
        joinFailed(plainError(error, message) + detailOf(error, message));
        break;
      case 'leave':
        if (!leaving && !ended.value) end('You left the group', '', true);
        break;
      case 'redirect':
        leaving = true;
        c.close();
        location.href = message;
        break;
    }
  };
  c.onuser = () => {
    if (sc === c) users.value = { ...c.users };
  };
  c.onchat = (id, dest, username, time, _privileged, _history, kind, text) => {
    const mine = id === c.id;
    const privateMsg = !!dest;
    const peerId = privateMsg ? (mine ? dest : id) : undefined;
    const m: ChatMessage = {
      key: ++seq,
      fromId: id,
      from: username ?? (id ? 'anonymous' : 'Server'),
      time: time ?? new Date(),
      kind,
      text,
      mine,
      privateMsg,
    };
    if (peerId !== undefined) {
      m.peerId = peerId;
      m.peerName = c.users[peerId]?.username ?? 'someone';
    }
    messages.value = [...messages.value.slice(-499), m];
    if (!mine) unread.value += 1;
  };
  c.onclearchat = () => {
    messages.value = [];
  };
  c.onusermessage = (id, _dest, username, _time, _privileged, kind, error, value) => {
    const text = typeof value === 'string' ? value : '';
    switch (kind) {
      case 'error':
        notify('error', plainError(error, text) + detailOf(error, text));
        break;
      case 'warning':
      case 'info':
        notify(kind, text);
        break;
      case 'kicked':
        leaving = true;
        sessionStorage.removeItem(CRED_KEY(groupName.value));
        end('You were removed from the group', text || `${username ?? 'An operator'} removed you.`, false);
        break;
      case 'mute':
        media.setMic(false);
        notify('info', `${username ?? 'An operator'} muted your microphone.`);
        break;
      case 'token':
        // A refused invitation comes back as a token message with an error.
        if (error) notify('error', `Could not make an invitation: ${text || error}`);
        else gotToken(value);
        break;
      default:
        if (id) console.info(`atrium: ignored message "${kind}" from ${username ?? id}`);
    }
  };
  c.ondownstream = (stream) => {
    downStreams.value = [...downStreams.value, stream];
    stream.ondowntrack = () => {
      streamsVersion.value += 1;
    };
    stream.onclose = () => {
      downStreams.value = downStreams.value.filter((s) => s !== stream);
      prev.delete(stream.id);
      const { [stream.id]: _gone, ...rest } = tileStats.value;
      tileStats.value = rest;
      const { [stream.id]: _silent, ...others } = audioEnergy.value;
      audioEnergy.value = others;
      updateSpeaking(stream.source, false);
    };
    stream.onstats = (stats) => {
      let energy = 0;
      for (const t of Object.values(stats)) energy = Math.max(energy, t['inbound-rtp']?.audioEnergy ?? 0);
      if (downStreams.value.includes(stream)) audioEnergy.value = { ...audioEnergy.value, [stream.id]: energy };
      updateSpeaking(stream.source, energy > SPEAKING_ENERGY);
    };
    stream.setStatsInterval(500);
  };
  c.onfiletransfer = (f) => trackTransfer(f);
  c.connect(s.endpoint);
}

/** Audio energy (mean square amplitude per second) above which someone is speaking. */
export const SPEAKING_ENERGY = 0.0002;

function updateSpeaking(id: string | null, on: boolean): void {
  if (!id || (speaking.value[id] ?? false) === on) return;
  speaking.value = { ...speaking.value, [id]: on };
}

function detailOf(code: string | null | undefined, message: string): string {
  return code && message ? ` (The server said: ${message}.)` : '';
}

function authServerError(e: unknown): string {
  const m = /said (\d{3})/.exec(describe(e));
  if (m?.[1] === '403') return 'The authorisation server refused this username and password.';
  if (m) return `The authorisation server answered ${m[1]}; try again later.`;
  return `Could not log in: ${describe(e)}`;
}

function joinFailed(text: string): void {
  leaving = true;
  sc?.close();
  sc = null;
  batch(() => {
    loginError.value = text;
    phase.value = 'login';
  });
}

function end(title: string, detail: string, canRejoin: boolean): void {
  stopStatsPolling();
  batch(() => {
    ended.value = { title, detail, canRejoin };
    phase.value = 'ended';
  });
}

function clearCallState(): void {
  batch(() => {
    users.value = {};
    downStreams.value = [];
    speaking.value = {};
    audioEnergy.value = {};
    tileStats.value = {};
    prev.clear();
    permissions.value = [];
  });
}

/** Leaves the group on purpose. */
export function leave(): void {
  leaving = true;
  sessionStorage.removeItem(CRED_KEY(groupName.value));
  media.reset();
  sc?.close();
  sc = null;
  clearCallState();
  end('You left the group', '', true);
}

export function rejoin(): void {
  location.reload();
}

// ---------------------------------------------------------------------------
// Chat and actions

export function sendChat(text: string): void {
  const c = sc;
  if (!c) return;
  let kind = '';
  let value = text.trim();
  if (!value) return;
  if (value.startsWith('/me ')) {
    kind = 'me';
    value = value.slice(4).trim();
  } else if (value.startsWith('/') && !value.startsWith('//')) {
    notify('warning', `Unknown command ${value.split(/\s/)[0]}: only /me is understood (start with // to send a slash).`);
    return;
  } else if (value.startsWith('//')) {
    value = value.slice(1);
  }
  const dest = chatTarget.value;
  try {
    if (dest && !c.users[dest]) {
      notify('warning', 'That person has left; the message was not sent.');
      chatTarget.value = null;
      return;
    }
    c.chat(kind, dest ?? '', value);
    // The server sends a private message to its recipient only: show ours here.
    if (dest) {
      messages.value = [
        ...messages.value.slice(-499),
        { key: ++seq, fromId: c.id, from: c.username ?? myName.value, peerId: dest, peerName: c.users[dest]?.username ?? 'someone', time: new Date(), kind, text: value, mine: true, privateMsg: true },
      ];
    }
  } catch (e) {
    notify('error', `The message was not sent: ${describe(e)}`);
  }
}

export function userAction(kind: 'kick' | 'op' | 'unop' | 'present' | 'unpresent', id: string): void {
  try {
    sc?.userAction(kind, id);
  } catch (e) {
    notify('error', describe(e));
  }
}

export function muteUser(id: string): void {
  try {
    sc?.userMessage('mute', id);
  } catch (e) {
    notify('error', describe(e));
  }
}

export function groupAction(kind: 'lock' | 'unlock' | 'clearchat'): void {
  try {
    sc?.groupAction(kind);
  } catch (e) {
    notify('error', describe(e));
  }
}

/** Tells the others whether our microphone is muted (user data, as everyone sees it). */
export function publishMuted(muted: boolean): void {
  try {
    if (sc && phase.value === 'joined') sc.userAction('setdata', sc.id, { muted });
  } catch {
    /* not connected: told again on the next change */
  }
}

export function newUpStream(localId?: string): Stream | null {
  return sc && phase.value === 'joined' ? sc.newUpStream(localId) : null;
}

export function findUpStream(localId: string): Stream | null {
  return sc?.findByLocalId(localId) ?? null;
}

/** Asks the server for an invitation link (Galène's `maketoken`); hidden while the server lacks it. */
/** Asks the server for an invitation (a stateful token); the link appears when the `token` message comes back. */
export function makeInvite(): void {
  inviteLink.value = '';
  try {
    sc?.groupAction('maketoken', { permissions: ['present', 'message'], expires: 86400e3 });
  } catch (e) {
    notify('error', `Could not ask for an invitation: ${(e as Error).message}`);
  }
}

function gotToken(value: unknown): void {
  const t = (value as { token?: unknown } | null)?.token;
  if (typeof t !== 'string') return;
  const u = new URL(location.href);
  u.search = '';
  u.searchParams.set('token', t);
  inviteLink.value = u.toString();
}

export function notify(level: Notice['level'], text: string): void {
  const n: Notice = { key: ++seq, level, text };
  notices.value = [...notices.value.slice(-4), n];
  if (level !== 'error') setTimeout(() => dismiss(n.key), 8000);
}

export function dismiss(key: number): void {
  notices.value = notices.value.filter((n) => n.key !== key);
}

// ---------------------------------------------------------------------------
// Files

export function sendFile(id: string, file: File): void {
  try {
    sc?.sendFile(id, file);
  } catch (e) {
    notify('error', `Could not send ${file.name}: ${describe(e)}`);
  }
}

function trackTransfer(f: TransferredFile): void {
  const key = f.fullid();
  const view: TransferView = {
    key,
    up: f.up,
    peer: f.username ?? 'someone',
    name: f.name,
    size: f.size,
    state: f.up ? 'inviting' : 'invited',
    done: 0,
    file: f,
  };
  transfers.value = [...transfers.value, view];
  const update = (patch: Partial<TransferView>) => {
    transfers.value = transfers.value.map((t) => (t.key === key ? { ...t, ...patch } : t));
  };
  f.onevent = (state, data) => {
    switch (state) {
      case 'connecting':
        update({ state: 'connecting' });
        break;
      case 'connected': {
        const done = typeof data === 'object' && data !== null && 'datalen' in data ? (data as { datalen: number }).datalen : f.datalen;
        update({ state: 'connected', done });
        break;
      }
      case 'done':
        update({ state: 'done', done: f.size, ...(data instanceof Blob ? { url: URL.createObjectURL(data) } : {}) });
        break;
      case 'cancelled':
        update({ state: 'cancelled', reason: data === undefined ? '' : describe(data) });
        break;
      case 'closed':
        break;
    }
  };
}

export function acceptTransfer(t: TransferView): void {
  t.file.receive().catch((e) => notify('error', `Could not receive ${t.name}: ${describe(e)}`));
  transfers.value = transfers.value.map((x) => (x.key === t.key ? { ...x, state: 'connecting' } : x));
}

export function cancelTransfer(t: TransferView): void {
  t.file.cancel(t.up ? 'the sender cancelled' : 'the recipient declined');
}

export function dismissTransfer(t: TransferView): void {
  if (t.url) URL.revokeObjectURL(t.url);
  transfers.value = transfers.value.filter((x) => x.key !== t.key);
}

// ---------------------------------------------------------------------------
// Statistics: frames decoded, frame rate, bit rate of each stream, once a second.

/** The previous stats reading of each stream, by stream id (rates are differences). */
const prev = new Map<string, TileStatsMark>();

function startStatsPolling(): void {
  stopStatsPolling();
  statsTimer = setInterval(() => void pollStats(), 1000);
}

function stopStatsPolling(): void {
  if (statsTimer !== null) clearInterval(statsTimer);
  statsTimer = null;
}

async function pollStats(): Promise<void> {
  const c = sc;
  if (!c) return;
  const out: Record<string, TileStats> = {};
  const streams = [...Object.values(c.down).map((s) => ({ s, direction: 'down' as const })), ...Object.values(c.up).map((s) => ({ s, direction: 'up' as const }))];
  await Promise.all(
    streams.map(async ({ s, direction }) => {
      const report = await s.pc.getStats().catch(() => null);
      if (!report) return;
      const { stats, mark } = readTileStats(report, direction, prev.get(s.id), performance.now());
      prev.set(s.id, mark);
      // Our own streams are shown on the preview tiles, which are called 'local' and 'screen'.
      out[direction === 'down' ? s.id : s.label === 'screenshare' ? 'screen' : 'local'] = stats;
    }),
  );
  if (sc === c) tileStats.value = out;
}
