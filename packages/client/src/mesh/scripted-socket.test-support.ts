// For the mesh SDK's Node tests: a WebSocket stand-in whose server side is
// the test (it records what the client sends and injects what the server says).

/** A WebSocket whose server side is the test. */
export class ScriptedSocket extends EventTarget {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  static last: ScriptedSocket | undefined;
  readyState = ScriptedSocket.CONNECTING;
  readonly sent: Record<string, unknown>[] = [];

  constructor(readonly url: string) {
    super();
    ScriptedSocket.last = this;
    queueMicrotask(() => {
      this.readyState = ScriptedSocket.OPEN;
      this.dispatchEvent(new Event('open'));
    });
  }

  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState === ScriptedSocket.CLOSED) return;
    this.readyState = ScriptedSocket.CLOSED;
    this.dispatchEvent(Object.assign(new Event('close'), { code, reason }));
  }

  /** The server sends a frame. */
  receive(frame: unknown): void {
    this.dispatchEvent(Object.assign(new Event('message'), { data: JSON.stringify(frame) }));
  }

  /** Waits for the client's next frame matching `pred`. */
  async sentWhere(pred: (f: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    for (let i = 0; i < 100; i++) {
      const f = this.sent.find(pred);
      if (f) return f;
      await new Promise((r) => setTimeout(r, 1));
    }
    throw new Error(`the client did not send a matching frame; sent: ${JSON.stringify(this.sent)}`);
  }
}
