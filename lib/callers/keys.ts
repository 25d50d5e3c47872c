import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The caller key's text: `<keyId><secret>`, one path segment where a Bitrix24 SDK puts a webhook
 * code (`/rest/<user>/<code>/<method>`). Only lower-case letters and digits, as in Bitrix24's own
 * webhook codes: nothing a client would encode, split on or fold (no '/', '.', '%', '-', '_', no
 * upper case).
 */
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
/** The key's public half: names its ledger item, may be shown and logged. */
export const KEY_ID_LENGTH = 8;
/** 32 of 36 characters: 165 random bits, beyond any guessing. */
export const SECRET_LENGTH = 32;
export const KEY_ID_PATTERN = /^[a-z0-9]{8}$/;
const KEY_PATTERN = /^[a-z0-9]{40}$/;
/** 7 × 36: bytes from here up are drawn again, or the first letters would come up more often. */
const UNBIASED_BELOW = 252;

export interface CallerKeyParts {
  keyId: string;
  secret: string;
}

function randomText(length: number): string {
  let text = '';
  while (text.length < length) {
    for (const byte of randomBytes(length)) {
      if (byte < UNBIASED_BELOW && text.length < length) text += ALPHABET[byte % ALPHABET.length];
    }
  }
  return text;
}

/** A fresh key: its text (`key`) and the two halves of it. */
export function newCallerKey(): CallerKeyParts & { key: string } {
  const keyId = randomText(KEY_ID_LENGTH);
  const secret = randomText(SECRET_LENGTH);
  return { key: `${keyId}${secret}`, keyId, secret };
}

/** The halves of a key's text; undefined for anything not of its shape and length. */
export function parseCallerKey(segment: string | undefined): CallerKeyParts | undefined {
  if (typeof segment !== 'string' || !KEY_PATTERN.test(segment)) return undefined;
  return { keyId: segment.slice(0, KEY_ID_LENGTH), secret: segment.slice(KEY_ID_LENGTH) };
}

/**
 * What the ledger keeps of a secret: hex SHA-256. A fast hash is the right one here: the secret is
 * 165 random bits, so there is no dictionary for a slow hash (scrypt, bcrypt) to stand against, and
 * the hash is checked on every request.
 */
export function secretHash(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Whether `secret` is the one `hash` was made of, compared in constant time. */
export function secretMatches(secret: string, hash: string): boolean {
  const expected = Buffer.from(hash, 'utf8');
  const actual = Buffer.from(secretHash(secret), 'utf8');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
