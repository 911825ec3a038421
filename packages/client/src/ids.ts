// Identifiers: random ids for clients, streams and file transfers (what
// the server and other peers see), and local ids (unique in this page).

/** 32 hexadecimal digits (128 random bits). */
export function newRandomId(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

let localCounter = 0;

/** An id unique within this page, used to find a stream again after it is replaced. */
export function newLocalId(): string {
  localCounter += 1;
  return `local-${localCounter}`;
}
