// The smallest Galène protocol v2 client the benchmark needs: handshake,
// join, and the stream messages (offer/answer/ice/request/close). Media is
// done by the peers in peers.ts; this only carries their signalling.
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';

export type GaleneMessage = { type: string; [k: string]: unknown };

export class GaleneSocket {
  readonly id = randomBytes(8).toString('hex');
  #ws: WebSocket | undefined;
  #handlers = new Set<(m: GaleneMessage) => void>();
  errors: string[] = [];

  /** Opens the socket, sends handshake and join, resolves on `joined`. */
  async join(url: string, group: string, username: string): Promise<void> {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 30_000 });
    this.#ws = ws;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${username}: no "joined" from ${url} within 30 s`)), 30_000);
      ws.on('open', () => {
        this.send({ type: 'handshake', version: ['2'], id: this.id });
        this.send({ type: 'join', kind: 'join', group, username, password: '' });
      });
      ws.on('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`${username}: WebSocket ${url} failed: ${e.message}`));
      });
      ws.on('message', (data) => {
        const m = JSON.parse(String(data)) as GaleneMessage;
        if (m.type === 'ping') return this.send({ type: 'pong' });
        if (m.type === 'joined' && m.kind === 'join') {
          clearTimeout(timer);
          resolve();
        } else if (m.type === 'joined' && m.kind === 'fail') {
          clearTimeout(timer);
          reject(new Error(`${username}: join of group ${group} refused: ${String(m.value)}`));
        } else if (m.type === 'usermessage' && m.kind === 'error') {
          this.errors.push(String(m.value));
        }
        for (const h of this.#handlers) h(m);
      });
    });
  }

  on(handler: (m: GaleneMessage) => void): void {
    this.#handlers.add(handler);
  }

  send(m: GaleneMessage): void {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(m));
  }

  close(): void {
    this.#ws?.close();
  }
}

/** libdatachannel's candidate line ("a=candidate:…") as a browser's RTCIceCandidateInit. */
export function candidateInit(line: string, mid: string): { candidate: string; sdpMid: string; sdpMLineIndex: number } {
  return { candidate: line.replace(/^a=/, ''), sdpMid: mid, sdpMLineIndex: 0 };
}
