// The server's stable error codes, in plain words for the person using the app.
const WORDS: Record<string, string> = {
  'not-authorised': 'The username or password is not right, or you are not allowed in this group.',
  'group-locked': 'This group is locked: nobody new can join right now.',
  'too-many-clients': 'This group is full. Try again later.',
  'need-username': 'This invitation does not include a name: choose one to join.',
  'not-permitted': 'You are not allowed to do that in this group.',
  kicked: 'You were removed from the group.',
  'no-such-group': 'There is no group with this name on this server.',
  'group-not-open': 'This group is not open at this time.',
  'group-expired': 'This group has expired.',
  'already-joined': 'You are already in this group.',
  'rate-limited': 'You are sending too quickly; wait a moment and try again.',
  'too-large': 'That is too large to send.',
  'not-supported': 'This server does not support that.',
  'no-such-user': 'That person has left the group.',
  'not-joined': 'You are not in the group any more.',
  'bad-message': 'The server did not understand the request.',
};

/** A sentence for an error code; the server's own message is used for codes we do not know. */
export function plainError(code: string | null | undefined, serverMessage?: string): string {
  if (code && WORDS[code]) return WORDS[code]!;
  if (serverMessage) return capitalise(serverMessage);
  return code ? `The server refused (${code}).` : 'Something went wrong.';
}

export function capitalise(s: string): string {
  return s ? s[0]!.toUpperCase() + s.slice(1) : s;
}

/** The sentence of a thrown value. */
export function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
