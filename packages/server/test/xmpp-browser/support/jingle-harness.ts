// Runs in the page: a Jingle client written the way an application would,
// with strophe.js (npm, unchanged) for XMPP, the browser's RTCPeerConnection
// for media, and Atrium's SDP<->Jingle converter. It asks the focus for a
// conference as Jitsi clients do, answers the focus's session-initiate for
// each stream of the group, publishes its camera with its own
// session-initiate, and trickles candidates with transport-info both ways.
import { $iq, Strophe } from 'strophe.js';
import type { JingleDescription } from '../../../src/dialects/xmpp/jingle/model.ts';
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
  /** Jingle requests are handled one at a time, in order (a candidate must not overtake its offer). */
  private queue: Promise<void> = Promise.resolve();

  private get focus(): string {
    return `${this.room}/focus`;
  }

  async start(service: string, room: string, nick: string): Promise<void> {
    this.room = room;
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
    await this.iq($iq({ type: 'set', to: 'focus.localhost' }).c('conference', { xmlns: 'http://jitsi.org/protocol/focus', room }).tree());
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
    const s = this.sessions.get(sid);
    if (action === 'session-initiate' || (action === 'transport-replace' && s)) {
      const desc = readDescription(j);
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
      if (!s || e.track.kind !== 'video') return;
      const v = document.createElement('video');
      v.autoplay = true;
      v.muted = true;
      v.playsInline = true;
      v.srcObject = e.streams[0] ?? new MediaStream([e.track]);
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

  /** What a user would see: per session, frames decoded and audio received. */
  async stats(): Promise<{ sid: string; dir: string; label?: string; owner?: string; ended: boolean; state: string; framesDecoded: number; frameWidth: number; samples: number; bytesSent: number }[]> {
    const out = [];
    for (const s of this.sessions.values()) {
      let framesDecoded = 0;
      let frameWidth = 0;
      let samples = 0;
      let bytesSent = 0;
      if (!s.ended) {
        (await s.pc.getStats()).forEach((v) => {
          if (v.type === 'inbound-rtp' && v.kind === 'video') {
            framesDecoded = v.framesDecoded ?? 0;
            frameWidth = v.frameWidth ?? 0;
          }
          if (v.type === 'inbound-rtp' && v.kind === 'audio') samples = v.totalSamplesReceived ?? 0;
          if (v.type === 'outbound-rtp') bytesSent += v.bytesSent ?? 0;
        });
      }
      out.push({ sid: s.sid, dir: s.dir, label: s.label, owner: s.owner, ended: s.ended, state: s.pc.connectionState, framesDecoded, frameWidth, samples, bytesSent });
    }
    return out;
  }
}

(window as unknown as { JingleClient: typeof JingleClient }).JingleClient = JingleClient;
