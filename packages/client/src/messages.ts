// Frames from the server, checked against the shared wire schemas of
// @atrium/protocol before the SDK acts on them. Never throws: a frame that
// does not fit is described, and the connection carries on.
import { type FileTransferValue, LIMITS, type ServerMessage, type ServerMessageType, describeIssues, fileTransferValue, nestsDeeperThan, serverMessageSchemas } from '@atrium/protocol/galene';

export type FrameProblem = 'bad-json' | 'bad-message' | 'unknown-type';

export type ParsedFrame = { ok: true; message: ServerMessage } | { ok: false; problem: FrameProblem; message: string };

/** Parses and validates one WebSocket frame sent by the server. */
export function parseServerFrame(data: unknown): ParsedFrame {
  if (typeof data !== 'string') {
    return { ok: false, problem: 'bad-message', message: 'a binary frame is not part of the Galène protocol' };
  }
  let frame: unknown;
  try {
    frame = JSON.parse(data);
  } catch {
    return { ok: false, problem: 'bad-json', message: `a frame is not valid JSON: ${data.slice(0, 80)}` };
  }
  return validateServerMessage(frame);
}

/** Validates one decoded message from the server. */
export function validateServerMessage(frame: unknown): ParsedFrame {
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
    return { ok: false, problem: 'bad-message', message: 'a message from the server is not a JSON object' };
  }
  if (nestsDeeperThan(frame, LIMITS.nestingDepth)) {
    return { ok: false, problem: 'bad-message', message: `a message from the server nests deeper than ${LIMITS.nestingDepth} levels` };
  }
  const type = (frame as { type?: unknown }).type;
  if (typeof type !== 'string') {
    return { ok: false, problem: 'bad-message', message: 'a message from the server has no string field "type"' };
  }
  if (!Object.hasOwn(serverMessageSchemas, type)) {
    return { ok: false, problem: 'unknown-type', message: `the server sent a message of unknown type "${type.slice(0, 64)}"` };
  }
  const result = serverMessageSchemas[type as ServerMessageType].safeParse(frame);
  if (!result.success) {
    return { ok: false, problem: 'bad-message', message: `bad "${type}" message from the server: ${describeIssues(result.error)}` };
  }
  return { ok: true, message: result.data as ServerMessage };
}

export type ParsedFileTransfer = { ok: true; value: FileTransferValue } | { ok: false; message: string };

/** Validates the value of a `usermessage` of kind `filetransfer`. */
export function parseFileTransfer(value: unknown): ParsedFileTransfer {
  const r = fileTransferValue.safeParse(value);
  if (!r.success) return { ok: false, message: `bad filetransfer message: ${describeIssues(r.error)}` };
  return { ok: true, value: r.data };
}

/** Whether a file-transfer `version` field offers version 1 (as "1" or 1). */
export function offersVersion1(version: readonly (string | number)[]): boolean {
  return version.some((v) => v === '1' || v === 1);
}

/**
 * Times are ISO 8601 strings in protocol version 2 and milliseconds in
 * version 1; either gives a Date. Absent or unreadable times give null.
 */
export function parseTime(value: string | number | null | undefined): Date | null {
  if (value === undefined || value === null || value === '') return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}
