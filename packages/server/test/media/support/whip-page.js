// WHIP and WHEP as a web page speaks them, written from RFC 9725 and the
// WHEP draft: plain fetch, non-trickle (the offer carries its candidates),
// ICE restart through PATCH with an SDP fragment. Loaded into test pages.
(() => {
  // Non-trickle: the offer goes once gathering is complete, or after a
  // second at most. A page without camera permission has its host candidates
  // behind mDNS names, which never resolve in the tests' loopback-only
  // namespace, so its gathering never ends; it connects all the same, the
  // server learning its address from its connectivity checks (RFC 8445 peer
  // reflexive candidates), as a Galène subscriber's page does.
  const gathered = (pc) =>
    pc.iceGatheringState === 'complete'
      ? Promise.resolve()
      : new Promise((r) => {
          pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r());
          setTimeout(r, 1000);
        });

  /** The fragment of an ICE restart (RFC 8840): credentials, the first m-section, its candidates. */
  function fragmentOf(sdp) {
    const lines = sdp.split(/\r?\n/);
    const ufrag = lines.find((l) => l.startsWith('a=ice-ufrag:'));
    const pwd = lines.find((l) => l.startsWith('a=ice-pwd:'));
    const out = [ufrag, pwd];
    let section = -1;
    for (const l of lines) {
      if (l.startsWith('m=')) section++;
      if (section !== 0) continue;
      if (l.startsWith('m=') || l.startsWith('a=mid:') || l.startsWith('a=candidate:') || l === 'a=end-of-candidates') out.push(l);
    }
    return `${out.join('\r\n')}\r\n`;
  }

  /** The answer after an ICE restart: the fragment's credentials and candidates in place of the old ones. */
  function applyFragment(answer, frag) {
    const f = frag.split(/\r?\n/);
    const ufrag = f.find((l) => l.startsWith('a=ice-ufrag:'));
    const pwd = f.find((l) => l.startsWith('a=ice-pwd:'));
    const candidates = f.filter((l) => l.startsWith('a=candidate:') || l === 'a=end-of-candidates');
    const out = [];
    let section = -1;
    for (const l of answer.split(/\r?\n/)) {
      if (!l) continue;
      if (l.startsWith('m=')) {
        if (section === 0) out.push(...candidates);
        section++;
      }
      if (l.startsWith('a=candidate:') || l === 'a=end-of-candidates') continue;
      if (l.startsWith('a=ice-ufrag:')) out.push(ufrag);
      else if (l.startsWith('a=ice-pwd:')) out.push(pwd);
      else out.push(l);
    }
    if (section === 0) out.push(...candidates);
    return `${out.join('\r\n')}\r\n`;
  }

  class HttpMediaSession {
    constructor(pc, endpoint, headers) {
      this.pc = pc;
      this.endpoint = endpoint;
      this.headers = headers;
      this.location = null;
      this.etag = null;
      this.answer = null;
    }

    /** POSTs the offer; returns { status, text } (and sets up the session on 201). */
    async start() {
      await this.pc.setLocalDescription(await this.pc.createOffer());
      await gathered(this.pc);
      const r = await fetch(this.endpoint, { method: 'POST', headers: { ...this.headers, 'content-type': 'application/sdp' }, body: this.pc.localDescription.sdp });
      const text = await r.text();
      if (r.status !== 201) return { status: r.status, text };
      this.location = new URL(r.headers.get('location'), this.endpoint).href;
      this.etag = r.headers.get('etag');
      this.answer = text;
      await this.pc.setRemoteDescription({ type: 'answer', sdp: text });
      return { status: 201, text: '', location: this.location, etag: this.etag };
    }

    async patch(body, ifMatch) {
      const headers = { ...this.headers, 'content-type': 'application/trickle-ice-sdpfrag' };
      if (ifMatch !== undefined) headers['if-match'] = ifMatch;
      const r = await fetch(this.location, { method: 'PATCH', headers, body });
      return { status: r.status, etag: r.headers.get('etag'), text: await r.text() };
    }

    /** An ICE restart through PATCH (If-Match: *): new credentials and candidates, the answer's fragment applied. */
    async restartIce() {
      this.pc.restartIce();
      await this.pc.setLocalDescription(await this.pc.createOffer());
      await new Promise((r) => setTimeout(r, 50));
      await gathered(this.pc);
      const r = await this.patch(fragmentOf(this.pc.localDescription.sdp), '*');
      if (r.status !== 200) return r;
      this.etag = r.etag;
      this.answer = applyFragment(this.answer, r.text);
      await this.pc.setRemoteDescription({ type: 'answer', sdp: this.answer });
      return { status: r.status, etag: r.etag, text: r.text };
    }

    async delete(ifMatch) {
      const headers = { ...this.headers };
      if (ifMatch !== undefined) headers['if-match'] = ifMatch;
      const r = await fetch(this.location, { method: 'DELETE', headers });
      return r.status;
    }
  }

  /** Publishes the fake camera and microphone through WHIP. */
  async function whipPublish(endpoint, headers, { simulcast = false } = {}) {
    const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    const pc = new RTCPeerConnection({ iceServers: [] });
    for (const t of media.getTracks()) {
      const init = { direction: 'sendonly', streams: [media] };
      if (t.kind === 'video' && simulcast) init.sendEncodings = [{ rid: 'h' }, { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 100000 }];
      pc.addTransceiver(t, init);
    }
    const s = new HttpMediaSession(pc, endpoint, headers);
    const r = await s.start();
    window.whip = s;
    return r;
  }

  /** Plays a group's stream through WHEP into a video element. */
  async function whepPlay(endpoint, headers) {
    const pc = new RTCPeerConnection({ iceServers: [] });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    const video = document.createElement('video');
    video.autoplay = true;
    video.muted = true;
    video.playsInline = true;
    document.body.appendChild(video);
    pc.ontrack = (e) => {
      if (!video.srcObject) video.srcObject = new MediaStream();
      video.srcObject.addTrack(e.track);
    };
    const s = new HttpMediaSession(pc, endpoint, headers);
    const r = await s.start();
    window.whep = s;
    return r;
  }

  /**
   * The ICE credentials of the candidate pair a peer connection uses now
   * (its transport's selected pair): after an ICE restart, the new ones.
   */
  async function iceInUse(pc) {
    const stats = await pc.getStats();
    let pair;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    const local = pair && stats.get(pair.localCandidateId);
    const remote = pair && stats.get(pair.remoteCandidateId);
    return { state: pc.iceConnectionState, local: local?.usernameFragment, remote: remote?.usernameFragment };
  }

  /** The ice-ufrag of an SDP (its first). */
  const ufragOf = (sdp) => /^a=ice-ufrag:(.*)$/m.exec(sdp ?? '')?.[1]?.trim();

  /** What the WHIP session offers and was answered now, and what its selected pair uses. */
  async function whipIce() {
    const s = window.whip;
    return { offered: ufragOf(s.pc.localDescription?.sdp), answered: ufragOf(s.pc.remoteDescription?.sdp), ...(await iceInUse(s.pc)) };
  }

  /** What a WHEP player decodes. */
  async function whepStats() {
    const out = { framesDecoded: 0, frameWidth: 0, totalSamplesReceived: 0, state: window.whep?.pc.connectionState };
    if (!window.whep) return out;
    (await window.whep.pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') {
        out.framesDecoded = s.framesDecoded ?? 0;
        out.frameWidth = s.frameWidth ?? 0;
      } else out.totalSamplesReceived = s.totalSamplesReceived ?? 0;
    });
    return out;
  }

  Object.assign(window, { whipPublish, whepPlay, whepStats, whipIce });
})();
