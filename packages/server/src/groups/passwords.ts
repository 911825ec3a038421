// Password checking and hashing, in the formats Galène stores in group files
// and data/config.json: plain strings, PBKDF2-SHA-256 (hex key and salt, as
// `galenectl hash-password` and the admin API write them), bcrypt, wildcard.
import { createHash, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';
import { HASH_LIMITS, type PasswordDefinition, bcryptCost } from './description.ts';

const pbkdf2Async = promisify(pbkdf2);

/** What Galène's admin API uses when it hashes a password itself. */
export const PBKDF2_ITERATIONS = 4096;
export const PBKDF2_SALT_BYTES = 8;
export const PBKDF2_KEY_BYTES = 32;
export const BCRYPT_COST = 10;

/** Compares two strings in time that depends on neither content nor length. */
function constantTimeEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(da, db);
}

/** True when `password` matches the definition. A wildcard matches anything. */
export async function verifyPassword(def: PasswordDefinition, password: string): Promise<boolean> {
  if (typeof def === 'string') return constantTimeEqual(def, password);
  switch (def.type) {
    case 'wildcard':
      return true;
    case 'pbkdf2': {
      if (def.hash !== 'sha-256') return false;
      const key = Buffer.from(def.key, 'hex');
      const salt = Buffer.from(def.salt, 'hex');
      // Checked by the schemas already; a definition built some other way gets no more.
      if (key.length === 0 || key.length > HASH_LIMITS.pbkdf2MaxKeyBytes || salt.length > HASH_LIMITS.pbkdf2MaxSaltBytes) return false;
      if (!Number.isInteger(def.iterations) || def.iterations < 1 || def.iterations > HASH_LIMITS.pbkdf2MaxIterations) return false;
      const derived = await pbkdf2Async(Buffer.from(password, 'utf8'), salt, def.iterations, key.length, 'sha256');
      return timingSafeEqual(derived, key);
    }
    case 'bcrypt': {
      const cost = bcryptCost(def.key);
      if (cost === undefined || cost < HASH_LIMITS.bcryptMinCost || cost > HASH_LIMITS.bcryptMaxCost) return false;
      try {
        return await bcrypt.compare(password, def.key);
      } catch {
        return false;
      }
    }
    default:
      return false;
  }
}

/**
 * Hashes a password the way Galène does: PBKDF2-SHA-256, 4096 iterations,
 * 8 random salt bytes, 32-byte key, both hex-encoded; or bcrypt (cost 10).
 */
export async function hashPassword(password: string, type: 'pbkdf2' | 'bcrypt' = 'pbkdf2'): Promise<PasswordDefinition> {
  if (type === 'bcrypt') {
    return { type: 'bcrypt', key: await bcrypt.hash(password, BCRYPT_COST) };
  }
  const salt = randomBytes(PBKDF2_SALT_BYTES);
  const key = await pbkdf2Async(Buffer.from(password, 'utf8'), salt, PBKDF2_ITERATIONS, PBKDF2_KEY_BYTES, 'sha256');
  return {
    type: 'pbkdf2',
    hash: 'sha-256',
    key: key.toString('hex'),
    salt: salt.toString('hex'),
    iterations: PBKDF2_ITERATIONS,
  };
}
