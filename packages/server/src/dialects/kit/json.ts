// For dialects whose frames are JSON text over a WebSocket (Galène, Camus,
// RTCPool's raw transport): the decoding every one of them does before its
// own schema, with the dialect's wording. Dialects with other frames (XML
// stanzas) do not use it.
import type { ErrorCode } from '../../core/vocabulary.ts';
import { type WsFrame, frameText } from './websocket.ts';

export interface JsonFrameWords {
  /** The protocol, as a sentence names it: "the Galène protocol", "ssp". */
  protocol: string;
  /** What to send instead of a binary frame (default "JSON text"). */
  textHint?: string;
  /** Appended to the bad-JSON refusal: what a frame looks like. */
  jsonHint?: string;
}

/** A text frame's JSON value, or the refusal a binary or malformed frame gets. */
export function jsonFrame({ data, binary }: WsFrame, words: JsonFrameWords): { ok: true; value: unknown } | { ok: false; error: ErrorCode; message: string } {
  if (binary) return { ok: false, error: 'bad-message', message: `binary frames are not part of ${words.protocol}; send ${words.textHint ?? 'JSON text'}` };
  try {
    return { ok: true, value: JSON.parse(frameText(data)) };
  } catch {
    return { ok: false, error: 'bad-json', message: `the frame is not valid JSON${words.jsonHint ? `; send ${words.jsonHint}` : ''}` };
  }
}
