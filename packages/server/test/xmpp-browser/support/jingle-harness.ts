// Runs in the page: a Jingle client written the way an application would,
// with strophe.js (npm, unchanged) for XMPP, the browser's RTCPeerConnection
// for media, and Atrium's SDP<->Jingle converter. It asks the focus for a
// conference as Jitsi clients do, answers the focus's session-initiate for
// each stream of the group, publishes its camera with its own
// session-initiate, and trickles candidates with transport-info both ways.
// Like Jitsi's client, it opens the bridge channel whose URL the focus's
// offer carries (<web-socket xmlns="http://jitsi.org/protocol/colibri"/>).
import { $iq, Strophe } from 'strophe.js';
import type { JingleDescription, JingleSource } from '../../../src/dialects/xmpp/jingle/model.ts';
import { candidateLine, jingleToSdp, parseCandidateLine, sdpToJingle } from '../../../src/dialects/xmpp/jingle/sdp.ts';
import { JNS, appendDescription, candidateElement, readDescription, readTransport } from '../../../src/dialects/xmpp/jingle/xml.ts';
import { el, parseElement } from '../../../src/dialects/xmpp/xml.ts';

interface Session {
  sid: string;
  pc: RTCPeerConnection;
  dir: 'down' | 'up';
  label?: string;
  owner?: string;
  /** Content names in m-line order, for candidates. */
  names: string[];
  ended: boolean;
  video?: HTMLVideoElement;
}

export class JingleClient {
  conn: InstanceType<typeof Strophe.Connection> | undefined;
  room = '';
  readonly sessions = new Map<string, Session>();
  readonly log: string[] = [];
  readonly errors: string[] = [];
  /** The bridge channel, once an offer named it, and every message it brought. */
  bridge: WebSocket | undefined;
  bridgeUrl: string | undefined;
  readonly bridgeMessages: { colibriClass: string; [k: string]: unknown }[] = [];
  bridgeClose: { code: number; reason: string } | undefined;
  /** Jingle requests are handled one at a time, in order (a candidate must not overtake its offer). */
  private queue: Promise<void> = Promise.resolve();

  private get focus(): string {
    return `${this.room}/focus`;
  }

  /**
   * 'per-stream': Atrium's mode, one session per stream (asked for with a
   * property of the conference request). 'bundle': Jicofo's, as Jitsi Meet
   * does it: one session, sources added and removed by source-add and
   * source-remove, applied to the page's copy of the remote SDP and answered
   * locally.
   */
  mode: 'per-stream' | 'bundle' = 'per-stream';
  /** Bundle mode: the session, the focus's offer as it stands (the remote sources apart), and those sources. */
  bundle: { sid: string; pc: RTCPeerConnection; offer: JingleDescription; remote: { kind: 'audio' | 'video'; source: JingleSource; removed: boolean }[] } | undefined;
  /** Bundle mode: SSRCs this page announced with source-add. */
  readonly ownSsrcs: number[] = [];

  async start(service: string, room: string, nick: string, mode: 'per-stream' | 'bundle' = 'per-stream'): Promise<void> {
    this.room = room;
    this.mode = mode;
    const conn = new Strophe.Connection(service);
    this.conn = conn;
    conn.addHandler(
      (iq: Element) => {
        this.queue = this.queue.then(() => this.onJingle(iq)).catch((e) => void this.errors.push(`jingle: ${(e as Error).message}`));
        return true;
      },
      JNS.jingle,
      'iq',
      'set',
    );
    await new Promise<void>((resolve, reject) =>
      conn.connect('localhost', null as unknown as string, (status: number) => {
        if (status === Strophe.Status.CONNECTED) resolve();
        else if (status === Strophe.Status.CONNFAIL || status === Strophe.Status.AUTHFAIL) reject(new Error(`strophe status ${status}`));
      }),
    );
    // Jitsi's conference request: this client wants media in the room.
    const conference = $iq({ type: 'set', to: 'focus.localhost' }).c('conference', { xmlns: 'http://jitsi.org/protocol/focus', room });
    if (mode === 'per-stream') conference.c('property', { name: 'atrium-jingle', value: 'per-stream' }).up();
    await this.iq(conference.tree());
    await new Promise<void>((resolve) => {
      conn.addHandler(
        (p: Element) => {
          if (p.getAttribute('from') !== `${room}/${nick}`) return true;
          resolve();
          return false;
        },
        null,
        'presence',
      );
      conn.send(Strophe.xmlHtmlNode(`<presence xmlns="jabber:client" to="${room}/${nick}"><x xmlns="http://jabber.org/protocol/muc"/></presence>`).documentElement);
    });
  }

  private iq(stanza: Element): Promise<Element> {
    return new Promise((resolve, reject) => this.conn!.sendIQ(stanza, resolve, (e: Element | null) => reject(new Error(e ? Strophe.serialize(e) : 'iq timeout'))));
  }

  /** Sends a Jingle request to the focus, built as an ltx element, through strophe. */
  private sendJingle(action: string, sid: string, desc?: JingleDescription, extra: ReturnType<typeof el>[] = []): Promise<Element> {
    const j = el('jingle', { xmlns: JNS.jingle, action, sid, initiator: this.conn!.jid });
    if (desc) appendDescription(j, desc);
    for (const x of extra) j.cnode(x);
    const node = Strophe.xmlHtmlNode(j.toString()).documentElement;
    return this.iq($iq({ type: 'set', to: this.focus }).cnode(node).tree());
  }

  private async onJingle(iq: Element): Promise<void> {
    const jingleNode = iq.getElementsByTagNameNS(JNS.jingle, 'jingle')[0]!;
    // Ack at once, as XEP-0166 says.
    this.conn!.send($iq({ type: 'result', to: iq.getAttribute('from')!, id: iq.getAttribute('id')! }).tree());
    const j = parseElement(Strophe.serialize(jingleNode));
    const action = j.attrs.action as string;
    const sid = j.attrs.sid as string;
    this.log.push(action);
    if (this.mode === 'bundle') return this.onBundleJingle(j, action, sid);
    const s = this.sessions.get(sid);
    if (action === 'session-initiate' || (action === 'transport-replace' && s)) {
      const desc = readDescription(j);
      const ws = desc.contents.find((c) => c.transport.webSocket)?.transport.webSocket;
      if (ws && !this.bridge) this.openBridge(ws);
      const info = j.getChild('stream', 'urn:atrium:jingle:0');
      const session: Session = s ?? { sid, pc: this.newPc(sid), dir: 'down', label: info?.attrs.label, owner: info?.attrs.owner, names: [], ended: false };
      session.names = desc.contents.map((c) => c.name);
      this.sessions.set(sid, session);
      await session.pc.setRemoteDescription({ type: 'offer', sdp: jingleToSdp(desc, { author: 'initiator' }) });
      const answer = await session.pc.createAnswer();
      await session.pc.setLocalDescription(answer);
      await this.sendJingle(action === 'session-initiate' ? 'session-accept' : 'transport-accept', sid, sdpToJingle(answer.sdp!, { author: 'responder', creator: 'initiator', names: 'mid' }));
      return;
    }
    if (!s) return;
    if (action === 'session-accept' && s.dir === 'up') {
      await s.pc.setRemoteDescription({ type: 'answer', sdp: jingleToSdp(readDescription(j), { author: 'responder' }) });
      return;
    }
    if (action === 'transport-info') {
      for (const content of j.getChildren('content')) {
        const name = content.attrs.name as string;
        const t = readTransport(content.getChild('transport', JNS.ice), name);
        for (const c of t.candidates) await s.pc.addIceCandidate({ candidate: candidateLine(c), sdpMid: name, usernameFragment: t.ufrag ?? null });
      }
      return;
    }
    if (action === 'session-terminate') {
      s.ended = true;
      s.pc.close();
      s.video?.remove();
    }
  }

  /**
   * The remote SDP as a unified-plan browser needs it: the offer's audio
   * and video m-lines carry what this page sends, and each remote source
   * gets an m-line of its own (sendonly from the focus; inactive once
   * removed), all on the one bundled transport. What lib-jitsi-meet does
   * with Jicofo's offers, written for this page.
   */
  private remoteSdp(): string {
    const b = this.bundle!;
    const contents: JingleDescription['contents'] = b.offer.contents.map((c) => ({ ...c, rtp: c.rtp && { ...c.rtp, sources: [], ssrcGroups: [] } }));
    for (const r of b.remote) {
      const base = b.offer.contents.find((c) => c.rtp?.media === r.kind)!;
      contents.push({ ...base, name: `${r.kind}-${r.source.ssrc}`, senders: r.removed ? 'none' : 'initiator', rtp: { ...base.rtp!, sources: [r.source], ssrcGroups: [] } });
    }
    return jingleToSdp({ contents, bundle: contents.map((c) => c.name) }, { author: 'initiator' });
  }

  /** Applies the remote SDP again and answers it locally; returns the answer. */
  private async reanswer(): Promise<RTCSessionDescriptionInit> {
    const pc = this.bundle!.pc;
    await pc.setRemoteDescription({ type: 'offer', sdp: this.remoteSdp() });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    return answer;
  }

  private async onBundleJingle(j: ReturnType<typeof parseElement>, action: string, sid: string): Promise<void> {
    const b = this.bundle;
    if (action === 'session-initiate') {
      const offer = readDescription(j);
      const ws = offer.contents.find((c) => c.transport.webSocket)?.transport.webSocket;
      if (ws && !this.bridge) this.openBridge(ws);
      const pc = this.newPc(sid);
      const remote = offer.contents.flatMap((c) => (c.rtp ? c.rtp.sources.map((source) => ({ kind: c.rtp!.media, source, removed: false })) : []));
      this.bundle = { sid, pc, offer, remote };
      this.sessions.set(sid, { sid, pc, dir: 'down', names: offer.contents.map((c) => c.name), ended: false });
      const answer = await this.reanswer();
      // The focus hears of its own two contents only (the per-source m-lines are this page's business).
      const desc = sdpToJingle(answer.sdp!, { author: 'responder', creator: 'initiator', names: 'mid' });
      desc.contents = desc.contents.filter((c) => offer.contents.some((o) => o.name === c.name));
      desc.bundle = desc.contents.map((c) => c.name);
      await this.sendJingle('session-accept', sid, desc);
      return;
    }
    if (!b || sid !== b.sid) return;
    if (action === 'source-add' || action === 'source-remove') {
      const desc = readDescription(j, { sourcesOnly: true });
      for (const c of desc.contents) {
        for (const source of c.rtp?.sources ?? []) {
          if (action === 'source-add') b.remote.push({ kind: c.rtp!.media, source, removed: false });
          else for (const r of b.remote) if (r.source.ssrc === source.ssrc) r.removed = true;
        }
      }
      await this.reanswer();
      if (action === 'source-remove') for (const v of Array.from(document.querySelectorAll('video'))) if (b.remote.some((r) => r.removed && `${r.kind}-${r.source.ssrc}` === v.dataset.mid)) v.remove();
      return;
    }
    if (action === 'transport-info') {
      for (const content of j.getChildren('content')) {
        const t = readTransport(content.getChild('transport', JNS.ice), content.attrs.name as string);
        for (const c of t.candidates) await b.pc.addIceCandidate({ candidate: candidateLine(c), sdpMid: content.attrs.name as string, usernameFragment: t.ufrag ?? null });
      }
      return;
    }
    if (action === 'session-terminate') {
      this.sessions.get(sid)!.ended = true;
      b.pc.close();
    }
  }

  /** Bundle mode: publishes the fake camera on the session's own m-lines and announces its sources with source-add. */
  async publishBundle(): Promise<number[]> {
    const b = this.bundle!;
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    for (const track of stream.getTracks()) {
      const name = b.offer.contents.find((c) => c.rtp?.media === track.kind)!.name;
      const t = b.pc.getTransceivers().find((x) => x.mid === name)!;
      await t.sender.replaceTrack(track);
      t.sender.setStreams(stream);
      t.direction = 'sendrecv';
    }
    const answer = await this.reanswer();
    const desc = sdpToJingle(answer.sdp!, { author: 'responder', creator: 'initiator', names: 'mid' });
    const add = el('jingle', { xmlns: JNS.jingle, action: 'source-add', sid: b.sid, initiator: this.focus });
    for (const c of desc.contents) {
      if (!c.rtp || !b.offer.contents.some((o) => o.name === c.name) || c.rtp.sources.length === 0) continue;
      const media = c.rtp.media;
      const d = el('description', { xmlns: JNS.rtp, media });
      for (const s of c.rtp.sources) {
        this.ownSsrcs.push(s.ssrc);
        d.cnode(el('source', { xmlns: JNS.ssma, ssrc: s.ssrc }, el('parameter', { name: 'msid', value: s.msid ?? '' })));
      }
      for (const g of c.rtp.ssrcGroups) d.cnode(el('ssrc-group', { xmlns: JNS.ssma, semantics: g.semantics }, ...g.ssrcs.map((x) => el('source', { ssrc: x }))));
      add.cnode(el('content', { name: media, creator: 'initiator' }, d));
    }
    await this.iq($iq({ type: 'set', to: this.focus }).cnode(Strophe.xmlHtmlNode(add.toString()).documentElement).tree());
    return this.ownSsrcs;
  }

  /** Bundle mode: per remote source, what the user sees of it (frames decoded, audio received), and whether it was removed. */
  async bundleStats(): Promise<{ ssrc: number; kind: string; owner?: string; name?: string; removed: boolean; framesDecoded: number; frameWidth: number; samples: number; direction?: string }[]> {
    const b = this.bundle;
    if (!b) return [];
    const stats = new Map<number, Record<string, number>>();
    (await b.pc.getStats()).forEach((v) => {
      if (v.type === 'inbound-rtp') stats.set(v.ssrc, v);
    });
    return b.remote.map((r) => {
      const s = stats.get(r.source.ssrc);
      const t = b.pc.getTransceivers().find((x) => x.mid === `${r.kind}-${r.source.ssrc}`);
      return {
        ssrc: r.source.ssrc,
        kind: r.kind,
        owner: r.source.owner,
        name: r.source.name,
        removed: r.removed,
        framesDecoded: s?.framesDecoded ?? 0,
        frameWidth: s?.frameWidth ?? 0,
        samples: s?.totalSamplesReceived ?? 0,
        direction: t?.currentDirection ?? undefined,
      };
    });
  }

  /** Opens the bridge channel and keeps what it says. */
  openBridge(url: string): void {
    this.bridgeUrl = url;
    const ws = new WebSocket(url);
    this.bridge = ws;
    ws.onmessage = (e) => {
      try {
        this.bridgeMessages.push(JSON.parse(String(e.data)));
      } catch {
        this.errors.push(`bridge: not JSON: ${String(e.data).slice(0, 200)}`);
      }
    };
    ws.onclose = (e) => {
      this.bridgeClose = { code: e.code, reason: e.reason };
    };
  }

  /** Sends a message on the bridge channel (an object, or raw text for bad-input checks). */
  bridgeSend(msg: unknown): void {
    this.bridge!.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  private newPc(sid: string): RTCPeerConnection {
    const pc = new RTCPeerConnection({ iceServers: [] });
    pc.onicecandidate = (e) => {
      if (!e.candidate?.candidate) return;
      const s = this.sessions.get(sid);
      const name = e.candidate.sdpMid ?? s?.names[e.candidate.sdpMLineIndex ?? 0] ?? '0';
      const transport = el('transport', { xmlns: JNS.ice, ufrag: e.candidate.usernameFragment ?? undefined }, candidateElement(parseCandidateLine(e.candidate.candidate)));
      void this.sendJingle('transport-info', sid, undefined, [el('content', { creator: 'initiator', name }, transport)]).catch((err) => this.errors.push(`transport-info: ${(err as Error).message}`));
    };
    pc.ontrack = (e) => {
      const s = this.sessions.get(sid);
      if (!s) return;
      if (e.track.kind === 'audio') {
        // Chromium plays (and counts the samples of) remote audio only into an element; a video element plays its stream's audio too, this one plays audio that comes without video.
        const a = document.createElement('audio');
        a.autoplay = true;
        a.muted = true;
        a.srcObject = new MediaStream([e.track]);
        document.body.appendChild(a);
        return;
      }
      const v = document.createElement('video');
      v.autoplay = true;
      v.muted = true;
      v.playsInline = true;
      v.srcObject = e.streams[0] ?? new MediaStream([e.track]);
      v.dataset.mid = e.transceiver.mid ?? '';
      document.body.appendChild(v);
      s.video = v;
    };
    return pc;
  }

  /** Publishes the fake camera and microphone in a session of its own. */
  async publish(): Promise<string> {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    const sid = `up-${Math.random().toString(36).slice(2, 10)}`;
    const pc = this.newPc(sid);
    for (const t of stream.getTracks()) pc.addTransceiver(t, { direction: 'sendonly', streams: [stream] });
    const session: Session = { sid, pc, dir: 'up', label: 'camera', names: [], ended: false };
    this.sessions.set(sid, session);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const desc = sdpToJingle(offer.sdp!, { author: 'initiator', creator: 'initiator', names: 'mid' });
    session.names = desc.contents.map((c) => c.name);
    await this.sendJingle('session-initiate', sid, desc, [el('stream', { xmlns: 'urn:atrium:jingle:0', label: 'camera' })]);
    return sid;
  }

  /** What a user would see: per session, frames decoded (and their size now) and audio received. */
  async stats(): Promise<
    { sid: string; dir: string; label?: string; owner?: string; ended: boolean; state: string; framesDecoded: number; frameWidth: number; frameHeight: number; samples: number; bytesSent: number }[]
  > {
    const out = [];
    for (const s of this.sessions.values()) {
      let framesDecoded = 0;
      let frameWidth = 0;
      let frameHeight = 0;
      let samples = 0;
      let bytesSent = 0;
      if (!s.ended) {
        (await s.pc.getStats()).forEach((v) => {
          if (v.type === 'inbound-rtp' && v.kind === 'video') {
            framesDecoded = v.framesDecoded ?? 0;
            frameWidth = v.frameWidth ?? 0;
            frameHeight = v.frameHeight ?? 0;
          }
          if (v.type === 'inbound-rtp' && v.kind === 'audio') samples = v.totalSamplesReceived ?? 0;
          if (v.type === 'outbound-rtp') bytesSent += v.bytesSent ?? 0;
        });
      }
      out.push({ sid: s.sid, dir: s.dir, label: s.label, owner: s.owner, ended: s.ended, state: s.pc.connectionState, framesDecoded, frameWidth, frameHeight, samples, bytesSent });
    }
    return out;
  }
}

(window as unknown as { JingleClient: typeof JingleClient }).JingleClient = JingleClient;
