// The relay: how windows pass signalling messages to each other. A message is
// the tuple `[sender, receiver, msgType, json]` of electron-peer-connection
// (seed 000); a RelayChannel carries such tuples between windows by whatever
// means the platform has (Electron IPC through the main process, a
// BroadcastChannel between same-origin pages, or anything an application
// plugs in).

/** The IPC channel name Electron renderers and the main-process hub use. */
export const RELAY_CHANNEL = 'relay';

/** `[sender, receiver, msgType, json]`: who sends, to whom, what kind, and its JSON payload. */
export type RelayMessage = [sender: string, receiver: string, msgType: string, json: string];

/** Carries relay messages between windows. */
export interface RelayChannel {
  /** Sends a message towards `message[1]`; delivery is best effort and in order per sender. */
  send(message: RelayMessage): void;
  /** Calls `listener` for each message that arrives (also ones meant for other windows); returns an unsubscribe function. */
  onMessage(listener: (message: RelayMessage) => void): () => void;
  /** Releases what the channel holds; optional. */
  close?(): void;
}

/** Longest window name accepted on the wire. */
export const MAX_NAME_LENGTH = 256;
/** Longest JSON payload accepted on the wire (SDP of many streams fits well within it). */
export const MAX_JSON_LENGTH = 256 * 1024;

const isName = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_NAME_LENGTH;

/** The value as a relay message, or undefined if it does not fit the wire format. */
export function asRelayMessage(value: unknown): RelayMessage | undefined {
  if (!Array.isArray(value) || value.length !== 4) return undefined;
  const [sender, receiver, msgType, json] = value as unknown[];
  if (!isName(sender) || !isName(receiver)) return undefined;
  if (typeof msgType !== 'string' || msgType.length === 0 || msgType.length > 64) return undefined;
  if (typeof json !== 'string' || json.length > MAX_JSON_LENGTH) return undefined;
  return [sender, receiver, msgType, json];
}
