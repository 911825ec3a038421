// Runs in the subscriber's page of `npm run bench:first-frame`: one join of
// a Galène protocol v2 subscriber, timed from the moment it opens its
// WebSocket to the first video frame Chromium decodes, with the steps in
// between (joined, first offer, ICE connected, DTLS connected = peer
// connection "connected"). (The first RTP packet is not a step: Chromium
// caches getStats results for tens of milliseconds, so polling them cannot
// time it.) Plain
// JavaScript so the page can load it as is.
(() => {
  const randomId = () => Math.random().toString(36).slice(2, 12);

  /** Resolves on the first decoded frame of a video track: MediaStreamTrackProcessor, else requestVideoFrameCallback. */
  function firstDecodedFrame(track) {
    if (typeof MediaStreamTrackProcessor === 'function') {
      const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
      return reader.read().then(({ value }) => {
        const at = performance.now();
        value?.close();
        reader.cancel().catch(() => {});
        return at;
      });
    }
    const el = document.createElement('video');
    el.muted = true;
    el.autoplay = true;
    el.playsInline = true;
    el.srcObject = new MediaStream([track]);
    document.body.appendChild(el);
    return new Promise((resolve) => el.requestVideoFrameCallback(() => resolve(performance.now())));
  }

  /**
   * One join. Resolves with the milliseconds from the WebSocket's creation to
   * each step; rejects (naming the last step reached) after `timeoutMs`.
   */
  window.joinToFirstFrame = (wsUrl, group, username, timeoutMs) =>
    new Promise((resolve, reject) => {
      const t0 = performance.now();
      const at = {};
      const mark = (k) => {
        if (at[k] === undefined) at[k] = performance.now() - t0;
      };
      const pcs = new Map();
      const ws = new WebSocket(wsUrl);
      const send = (m) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(m));
      let done = false;
      const finish = (err) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        for (const pc of pcs.values()) pc.close();
        ws.close();
        if (err) reject(new Error(`${err}; steps reached (ms): ${JSON.stringify(at)}`));
        else resolve(at);
      };
      const timer = setTimeout(() => finish(`no decoded video frame within ${timeoutMs} ms`), timeoutMs);
      ws.onerror = () => finish(`the WebSocket to ${wsUrl} failed`);
      ws.onopen = () => {
        mark('open');
        send({ type: 'handshake', version: ['2'], id: randomId() });
        send({ type: 'join', kind: 'join', group, username, password: '' });
      };
      // Messages are handled one at a time, in order, as the protocol expects.
      let queue = Promise.resolve();
      ws.onmessage = (e) => {
        const m = JSON.parse(e.data);
        queue = queue.then(() => handle(m)).catch((err) => finish(`handling "${m.type}" failed: ${err}`));
      };
      async function handle(m) {
        if (m.type === 'ping') send({ type: 'pong' });
        else if (m.type === 'joined' && m.kind === 'join') {
          mark('joined');
          send({ type: 'request', request: { '': ['audio', 'video'] } });
        } else if (m.type === 'joined' && m.kind === 'fail') finish(`join refused: ${m.value}`);
        else if (m.type === 'offer') {
          mark('offer');
          let pc = pcs.get(m.id);
          if (!pc) {
            pc = new RTCPeerConnection({ iceServers: m.iceServers ?? [] });
            pcs.set(m.id, pc);
            const id = m.id;
            pc.onicecandidate = (e) => e.candidate && send({ type: 'ice', id, candidate: e.candidate.toJSON() });
            pc.oniceconnectionstatechange = () => (pc.iceConnectionState === 'connected' || pc.iceConnectionState === 'completed') && mark('ice');
            pc.onconnectionstatechange = () => pc.connectionState === 'connected' && mark('connected');
            pc.ontrack = (e) => {
              if (e.track.kind !== 'video') return;
              mark('track');
              firstDecodedFrame(e.track).then((t) => {
                at.frame = t - t0;
                finish();
              });
            };
          }
          await pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
          await pc.setLocalDescription(await pc.createAnswer());
          send({ type: 'answer', id: m.id, sdp: pc.localDescription.sdp });
        } else if (m.type === 'ice') {
          const pc = pcs.get(m.id);
          if (pc && m.candidate) await pc.addIceCandidate(m.candidate);
        }
      }
    });
})();
