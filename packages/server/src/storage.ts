// Writing the server's own files (group files, the token file) can fail for
// reasons that are the machine's, not the client's: a full disk, a quota,
// a read-only file system. Such a failure changes nothing on disk (every
// write goes to a temporary file renamed into place) and is reported with
// what happened and what to do, to the client and, once per failure, in the
// log.

const FULL = new Set(['ENOSPC', 'EDQUOT']);
const UNWRITABLE = new Set(['EROFS', 'EACCES', 'EPERM']);

/** The errno code of an error or of its causes. */
function codeOf(e: unknown): string | undefined {
  for (let x = e, i = 0; x !== undefined && x !== null && i < 5; i++) {
    const code = (x as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('E')) return code;
    x = (x as { cause?: unknown }).cause;
  }
  return undefined;
}

export type StorageProblem = 'full' | 'read-only';

/** 'full' (no space, quota) or 'read-only' when a write failed for the machine's reasons; undefined otherwise. */
export function storageProblem(e: unknown): StorageProblem | undefined {
  const code = codeOf(e);
  if (code === undefined) return undefined;
  if (FULL.has(code)) return 'full';
  if (UNWRITABLE.has(code)) return 'read-only';
  return undefined;
}

/** A sentence for people: what could not be written, why, and that nothing changed. */
export function describeStorageProblem(e: unknown, what: string): string {
  const p = storageProblem(e);
  if (p === 'full') return `the server could not save ${what}: its disk is full (${codeOf(e)}); nothing was changed — free some space on the server and try again`;
  if (p === 'read-only') return `the server could not save ${what}: its files are not writable (${codeOf(e)}); nothing was changed — check the permissions of the data and groups folders`;
  return `the server could not save ${what}: ${(e as Error)?.message ?? String(e)}; nothing was changed`;
}
