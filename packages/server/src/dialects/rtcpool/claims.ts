// Descriptions from token claims. A signed token (JWT) that the group's
// authKeys verified may carry a `description` claim, a JSON object: it
// becomes the member's description at join, before anyone is told of the
// member. Stateful tokens (invite links) carry none; the admin API sets
// descriptions for any member afterwards.
import { decodeJwt } from 'jose';
import { description as descriptionSchema } from '@atrium/protocol/rtcpool';
import { looksLikeJwt } from '../../auth/index.ts';
import { CoreError } from '../../core/errors.ts';
import type { Authenticator } from '../../core/registry.ts';

export const DESCRIPTION_CLAIM = 'description';

/** Wraps an authenticator so that a verified JWT's `description` claim comes with the identity. */
export function withTokenDescriptions(inner: Authenticator): Authenticator {
  return {
    async authenticate(desc, groupName, creds, groupUrl) {
      const who = await inner.authenticate(desc, groupName, creds, groupUrl);
      // Only a JWT checked against the group's keys is trusted: the same
      // string without authKeys would have been looked up as an invite token.
      const token = creds.token;
      if (!token || desc.authKeys.length === 0 || !looksLikeJwt(token)) return who;
      const claims = decodeJwt(token);
      if (!Object.hasOwn(claims, DESCRIPTION_CLAIM)) return who;
      const r = descriptionSchema.safeParse(claims[DESCRIPTION_CLAIM]);
      if (!r.success) {
        throw new CoreError('not-authorised', `the token's "${DESCRIPTION_CLAIM}" claim must be a JSON object (or null) of at most 16384 bytes; ask whoever issued the token`);
      }
      return { ...who, description: r.data };
    },
  };
}
