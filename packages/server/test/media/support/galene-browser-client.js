// A small Galène protocol v2 client that runs in a test page, written from
// galene-protocol.md: it publishes the fake camera and microphone (optionally
// simulcast), answers the server's offers for down-streams, trickles ICE and
// reports what a user would see (frames decoded, samples received). Plain
// JavaScript so the page can load it as is.
(() => {
  const randomId = () => Math.random().toString(36).slice(2, 12);

  class TestGaleneClient {
    constructor() {
      this.id = randomId();
      this.ws = null;
      this.up = new Map(); // id -> { pc, label, stream }
      this.down = new Map(); // id -> { pc, label, source, username, closed, video, tracks }
      this.errors = [];
      this.log = [];
      this.waiters = [];
      this.iceServers = [];
      this.permissions = [];
      this.kicked = null;
      this.queue = Promise.resolve();
    }

    connect(url, group, username, password) {
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(url);
        this.ws = ws;
        ws.onopen = () => {
          this.send({ type: 'handshake', version: ['2'], id: this.id });
          this.send({ type: 'join', kind: 'join', group, username, password });
        };
        ws.onerror = () => reject(new Error('websocket error'));
        ws.onclose = (e) => this.log.push({ type: 'socket-closed', code: e.code, reason: e.reason });
        ws.onmessage = (e) => {
          const m = JSON.parse(e.data);
          this.log.push(m.type === 'offer' || m.type === 'answer' ? { type: m.type, id: m.id } : m);
          if (m.type === 'joined' && m.kind === 'join') {
            this.iceServers = m.rtcConfiguration?.iceServers ?? [];
            this.permissions = m.permissions;
            resolve(m);
          } else if (m.type === 'joined' && m.kind === 'fail') {
            reject(new Error(`join failed: ${m.value}`));
          }
          // One message at a time, in order, as the protocol expects.
          this.queue = this.queue.then(() => this.handle(m)).catch((err) => this.errors.push(String(err)));
          for (const w of [...this.waiters]) {
            if (w.pred(m)) {
              this.waiters.splice(this.waiters.indexOf(w), 1);
              w.resolve(m);
            }
          }
        };
      });
    }

    send(m) {
      this.ws.send(JSON.stringify(m));
    }

    waitFor(pred) {
      const seen = this.log.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => this.waiters.push({ pred, resolve }));
    }

    request(req) {
      this.send({ type: 'request', request: req });
    }

    async handle(m) {
      switch (m.type) {
        case 'ping':
          this.send({ type: 'pong' });
          break;
        case 'usermessage':
          if (m.kind === 'error') this.errors.push(`${m.error}: ${m.value}`);
          if (m.kind === 'kicked') this.kicked = m.value;
          break;
        case 'answer': {
          const s = this.up.get(m.id);
          if (s) await s.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
          break;
        }
        case 'offer':
          await this.gotOffer(m);
          break;
        case 'ice': {
          const s = this.up.get(m.id) ?? this.down.get(m.id);
          if (s && m.candidate) await s.pc.addIceCandidate(m.candidate).catch((e) => this.errors.push(`ice: ${e}`));
          break;
        }
        case 'close': {
          const s = this.down.get(m.id);
          if (s) {
            s.closed = true;
            s.pc.close();
          }
          break;
        }
        case 'renegotiate': {
          // As Galène's client does (gotRenegotiate → restartIce): an ICE restart of the up-stream, then a new offer for it.
          const s = this.up.get(m.id);
          if (s) {
            this.renegotiations = (this.renegotiations ?? 0) + 1;
            s.pc.restartIce();
            await s.pc.setLocalDescription(await s.pc.createOffer());
            this.send({ type: 'offer', kind: 'renegotiate', id: m.id, label: s.label, source: this.id, username: 'ignored', sdp: s.pc.localDescription.sdp });
          }
          break;
        }
        case 'abort': {
          const s = this.up.get(m.id);
          if (s) {
            s.pc.close();
            this.up.delete(m.id);
            this.send({ type: 'close', id: m.id });
          }
          break;
        }
      }
    }

    async gotOffer(m) {
      let s = this.down.get(m.id);
      if (!s || s.closed) {
        const pc = new RTCPeerConnection({ iceServers: this.iceServers });
        s = { pc, label: m.label, source: m.source, username: m.username, closed: false, tracks: [], video: null };
        this.down.set(m.id, s);
        const entry = s;
        pc.onicecandidate = (e) => {
          if (e.candidate) this.send({ type: 'ice', id: m.id, candidate: e.candidate.toJSON() });
        };
        pc.ontrack = (e) => {
          entry.tracks.push(e.track.kind);
          // Play what arrives, as a user's page would, so video is decoded.
          const el = document.createElement(e.track.kind === 'video' ? 'video' : 'audio');
          el.autoplay = true;
          el.muted = true;
          el.playsInline = true;
          el.srcObject = e.streams[0] ?? new MediaStream([e.track]);
          document.body.appendChild(el);
          if (e.track.kind === 'video') entry.video = el;
        };
      }
      await s.pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
      const answer = await s.pc.createAnswer();
      await s.pc.setLocalDescription(answer);
      this.send({ type: 'answer', id: m.id, sdp: s.pc.localDescription.sdp });
    }

    /** Publishes the fake devices; returns the stream id. */
    /** `lowSilent`: the `l` layer is declared but not sent (as Chromium does when the source is too small for it). */
    async publish({ label = 'camera', audio = true, video = true, simulcast = false, lowSilent = false, replace, width = 640, height = 480 } = {}) {
      const media = await navigator.mediaDevices.getUserMedia({ audio, video: video ? { width, height } : false });
      const id = randomId();
      const pc = new RTCPeerConnection({ iceServers: this.iceServers });
      const entry = { pc, label, stream: media, connectedAt: 0 };
      this.up.set(id, entry);
      pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'connected' && !entry.connectedAt) entry.connectedAt = Date.now();
      });
      pc.onicecandidate = (e) => {
        if (e.candidate) this.send({ type: 'ice', id, candidate: e.candidate.toJSON() });
      };
      for (const t of media.getTracks()) {
        if (t.kind === 'video' && simulcast) {
          pc.addTransceiver(t, {
            direction: 'sendonly',
            streams: [media],
            sendEncodings: [{ rid: 'h' }, { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 100000, active: !lowSilent }],
          });
        } else {
          pc.addTransceiver(t, { direction: 'sendonly', streams: [media] });
        }
      }
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      const msg = { type: 'offer', id, label, source: this.id, username: 'ignored', sdp: pc.localDescription.sdp };
      if (replace) {
        msg.replace = replace;
        const old = this.up.get(replace);
        if (old) {
          old.pc.close();
          this.up.delete(replace);
        }
      }
      this.send(msg);
      return id;
    }

    unpublish(id) {
      const s = this.up.get(id);
      if (!s) return;
      s.pc.close();
      for (const t of s.stream.getTracks()) t.stop();
      this.up.delete(id);
      this.send({ type: 'close', id });
    }

    /** When the up-stream's peer connection first connected (Date.now()), 0 before. */
    upConnectedAt(id) {
      return this.up.get(id)?.connectedAt ?? 0;
    }

    /** Turns one simulcast layer (by rid) of an up-stream's video on or off, as a publisher short of bandwidth would. */
    async setLayerActive(id, rid, active) {
      const s = this.up.get(id);
      const sender = s?.pc.getSenders().find((x) => x.track?.kind === 'video');
      if (!sender) throw new Error(`no video sender on stream ${id}`);
      const params = sender.getParameters();
      const enc = params.encodings.find((e) => e.rid === rid);
      if (!enc) throw new Error(`stream ${id} has no layer "${rid}" (it has ${params.encodings.map((e) => e.rid).join(', ')})`);
      enc.active = active;
      await sender.setParameters(params);
    }

    /** Users of the group as this client knows them: id -> username. */
    users() {
      return Object.fromEntries(
        this.log
          .filter((m) => m.type === 'user')
          .reduce((map, m) => {
            if (m.kind === 'delete') map.delete(m.id);
            else map.set(m.id, m.username);
            return map;
          }, new Map()),
      );
    }

    async upState(id) {
      const s = this.up.get(id);
      return s ? s.pc.connectionState : 'gone';
    }

    /** What this page receives, per down-stream. */
    async downStats() {
      const out = [];
      for (const [id, s] of this.down) {
        const r = { id, label: s.label, source: s.source, username: s.username, closed: s.closed, tracks: s.tracks, state: s.pc.connectionState };
        if (!s.closed) {
          const stats = await s.pc.getStats();
          const codecs = new Map();
          stats.forEach((v) => {
            if (v.type === 'codec') codecs.set(v.id, v.mimeType);
          });
          stats.forEach((v) => {
            if (v.type !== 'inbound-rtp') return;
            if (v.kind === 'video') {
              r.framesDecoded = v.framesDecoded ?? 0;
              r.frameWidth = v.frameWidth ?? 0;
              r.videoCodec = codecs.get(v.codecId);
              r.keyFramesDecoded = v.keyFramesDecoded ?? 0;
            } else if (v.kind === 'audio') {
              r.totalSamplesReceived = v.totalSamplesReceived ?? 0;
              r.audioCodec = codecs.get(v.codecId);
            }
          });
        }
        out.push(r);
      }
      return out;
    }

    close() {
      for (const s of this.up.values()) s.pc.close();
      for (const s of this.down.values()) s.pc.close();
      this.ws?.close();
    }
  }

  window.TestGaleneClient = TestGaleneClient;
})();
