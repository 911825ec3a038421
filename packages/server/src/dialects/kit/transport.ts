// What a dialect connection talks through: anything that carries frames
// both ways and can say how much it still holds. A WebSocket (websocket.ts),
// a socket.io socket (rtcpool/transports.ts), an HTTP long-polling session
// (BOSH) all fit. Frames are opaque here: text, bytes or the objects a
// transport encodes itself; parsing and rendering them is the dialect's.

/** Carries `Out` frames (as the dialect rendered them) out and `In` frames (as received) in. */
export interface Transport<Out = string, In = unknown> {
  /** Sends one frame; frames leave in the order sent. */
  send(frame: Out): void;
  /** Sends several frames at once (one system call where the transport can); `sizes` are their sizeOf. */
  sendBatch?(frames: readonly Out[], sizes: readonly number[]): void;
  /** The size of a frame on the wire, in bytes (what `bufferedAmount` will count it as). */
  sizeOf(frame: Out): number;
  /** Bytes sent and not yet on the network (the library's queue, the socket's buffer). */
  readonly bufferedAmount: number;
  /** Ends the transport after what was sent; the code and reason go where the transport can carry them. */
  close(code: number, reason: string): void;
  /**
   * A transport-level ping (a WebSocket ping frame), for dialects without a
   * ping of their own; its answer reaches the connection as `heard()`.
   */
  ping?(): void;
  /** True when the transport keeps itself alive (engine.io's heartbeat): the liveness sweep leaves it alone. */
  readonly keepsItselfAlive?: boolean;
  /** Wires the transport's input to a connection; called once, by the connection. */
  attach(sink: TransportSink<In>): void;
}

/** What a transport reports to its connection. */
export interface TransportSink<In> {
  /** A frame arrived; `size` is its length in bytes as received (0 when the transport has checked it already). */
  receive(input: In, size: number): void;
  /** The peer showed it is alive without sending a frame (a WebSocket pong). */
  heard(): void;
  /** The transport is gone (the peer closed it, or the network did). */
  transportClosed(): void;
}
