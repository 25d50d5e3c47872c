import { AppError, ValidationError } from '../errors.ts';
import type { LedgerTable } from '../ledger/access.ts';
import { CALLERS_PK, callerPk } from '../ledger/codec.ts';
import { LEDGER_KEY } from '../ledger/table.ts';
import { registerSecret } from '../observability/redact.ts';
import { PORTAL_PATTERN } from '../portal-name.ts';
import { FailureLimit } from './failure-limit.ts';
import { KEY_ID_PATTERN, newCallerKey, parseCallerKey, secretHash, secretMatches } from './keys.ts';

/** The settings of `CallerKeys`, each with its default and range. */
export const CALLER_KEY_SETTINGS = {
  cacheTtlMs: { default: 60_000, min: 0, max: 3_600_000 },
  failureLimit: { default: 10, min: 1, max: 10_000 },
  failureWindowMs: { default: 60_000, min: 1, max: 3_600_000 },
  maxSources: { default: 10_000, min: 1, max: 1_000_000 },
} as const;

export interface CallerKeysOptions {
  /**
   * How long this container trusts what it read of a key, found or not (ms). A revoke takes effect
   * within this in every warm container (at once in the one that revoked). 0: read every time.
   * Default 60000.
   */
  cacheTtlMs?: number;
  /** Failed checks from one source after which it is answered `throttled`, unread. Default 10. */
  failureLimit?: number;
  /** The window of `failureLimit`, from a source's first failure (ms). Default 60000. */
  failureWindowMs?: number;
  /** Sources, and keys read, this container remembers at most; the oldest go first. Default 10000. */
  maxSources?: number;
}

/** A caller key as the ledger keeps it, without its hash. */
export interface CallerRecord {
  keyId: string;
  /** The portal whose messages the key may edit. */
  portal: string;
  /** Who holds the key, as the operator named it (e.g. the calling service). */
  name: string;
  /** Epoch ms. */
  createdAt: number;
  /** Epoch ms; absent while the key is live. */
  revokedAt?: number;
}

export type CallerRefusal = 'malformed' | 'unknown' | 'revoked' | 'throttled';
export type CallerVerdict =
  | { ok: true; keyId: string; portal: string; name: string }
  | { ok: false; reason: Exclude<CallerRefusal, 'throttled'> }
  /** `retryAfterMs`: until the source's failure window ends. */
  | { ok: false; reason: 'throttled'; retryAfterMs: number };

interface StoredKey extends CallerRecord {
  hash: string;
}

interface Lookup {
  at: number;
  key: Promise<StoredKey | undefined>;
}

/** The rule a key's name keeps: it is shown in `caller list`, one line of a table. */
const NAME_PATTERN = /^(?=.*\S)[^\p{C}\p{Zl}\p{Zp}]{1,64}$/u;
/** keyIds drawn before giving up on a free one; a clash is about 1 in 10^12 per key. */
const ADD_TRIES = 3;

/** add: no item has the keyId yet. */
const keyIdIsFree = `attribute_not_exists(${LEDGER_KEY})`;
/** revoke: the key exists and is live; revoking again, or an unknown keyId, changes nothing. */
const keyIsLive = `attribute_exists(${LEDGER_KEY}) AND attribute_not_exists(revokedAt)`;

/** Throws ValidationError naming the field (the message starts with it) unless both keep their rules. */
export function checkCallerInput(input: { portal: string; name: string }): void {
  if (!PORTAL_PATTERN.test(input.portal))
    throw new ValidationError(
      'portal',
      `portal must match ${PORTAL_PATTERN.source}, got ${JSON.stringify(input.portal)}`,
      'INVALID_CALLER_KEY',
    );
  if (!NAME_PATTERN.test(input.name))
    throw new ValidationError(
      'name',
      `name must be 1 to 64 printable characters, not only spaces, got ${JSON.stringify(input.name)}`,
      'INVALID_CALLER_KEY',
    );
}

/** Throws ValidationError unless `keyId` has a keyId's shape. */
export function checkKeyId(keyId: string): void {
  if (!KEY_ID_PATTERN.test(keyId))
    throw new ValidationError(
      'keyId',
      `keyId must be 8 lower-case letters and digits, got ${JSON.stringify(keyId)}`,
      'INVALID_CALLER_KEY',
    );
}

function settingsOf(options: CallerKeysOptions): Required<CallerKeysOptions> {
  const settings = {} as Required<CallerKeysOptions>;
  for (const [name, range] of Object.entries(CALLER_KEY_SETTINGS) as Array<
    [keyof CallerKeysOptions, (typeof CALLER_KEY_SETTINGS)[keyof CallerKeysOptions]]
  >) {
    const value = options[name] ?? range.default;
    if (!Number.isInteger(value) || value < range.min || value > range.max)
      throw new RangeError(
        `Expected ${name} to be an integer from ${range.min} to ${range.max}, got ${String(value)}`,
      );
    settings[name] = value;
  }
  return settings;
}

function storedKey(keyId: string, item: Record<string, unknown> | undefined): StoredKey | undefined {
  const { hash, portal, name, createdAt, revokedAt } = item ?? {};
  if (typeof hash !== 'string' || typeof portal !== 'string' || typeof name !== 'string') return undefined;
  if (typeof createdAt !== 'number') return undefined;
  return { keyId, hash, portal, name, createdAt, ...(typeof revokedAt === 'number' ? { revokedAt } : {}) };
}

/**
 * The keys callers use in place of a Bitrix24 webhook code (`/rest/<user>/<key>/<method>`), one
 * ledger item each (`caller#<keyId>`) holding the hash of the key's secret, its portal and name;
 * the key itself is shown once by `add` and kept nowhere. The items have no TTL attribute (a key
 * must not expire unseen) and none of the dirty or wake-up index attributes (no index lists them).
 * `list` finds them through one more item (`callers`, their keyIds): a scan would read every message.
 *
 * Make one per container: `verify` remembers what it read and which sources failed, in memory.
 * The failure limit is per container, so a source spread over N warm containers gets N times the
 * limit; it is there to keep floods of bad keys off DynamoDB, the secret's length does the rest.
 * Several callers behind one address (a NAT) share its failures.
 */
export class CallerKeys {
  readonly #table: LedgerTable;
  readonly #settings: Required<CallerKeysOptions>;
  readonly #failures: FailureLimit;
  /** What this container read of each keyId, found or not, in the order it was read. */
  readonly #read = new Map<string, Lookup>();

  constructor(table: LedgerTable, options: CallerKeysOptions = {}) {
    this.#table = table;
    this.#settings = settingsOf(options);
    this.#failures = new FailureLimit({
      limit: this.#settings.failureLimit,
      windowMs: this.#settings.failureWindowMs,
      maxSources: this.#settings.maxSources,
    });
  }

  /** Issues a key for `portal`; `key` is its only copy: shown to the operator once, stored nowhere. */
  async add(input: { portal: string; name: string }): Promise<{ key: string; keyId: string }> {
    checkCallerInput(input);
    for (let attempt = 0; attempt < ADD_TRIES; attempt++) {
      const { key, keyId, secret } = newCallerKey();
      const stored = await this.#table.update(
        callerPk(keyId),
        {
          UpdateExpression: 'SET #hash = :hash, portal = :portal, #name = :name, createdAt = :now',
          ConditionExpression: keyIdIsFree,
          ExpressionAttributeNames: { '#hash': 'hash', '#name': 'name' },
          ExpressionAttributeValues: {
            ':hash': secretHash(secret),
            ':portal': input.portal,
            ':name': input.name,
            ':now': this.#table.now(),
          },
        },
        'store a caller key',
      );
      if (!stored) continue;
      // After the key: should this write fail, the key was never shown, so nobody holds it.
      await this.#table.update(
        CALLERS_PK,
        { UpdateExpression: 'ADD keyIds :keyId', ExpressionAttributeValues: { ':keyId': new Set([keyId]) } },
        'list a caller key',
      );
      this.#read.delete(keyId);
      return { key, keyId };
    }
    throw new AppError('CALLER_KEY_ID_TAKEN', `No free caller keyId in ${ADD_TRIES} draws`);
  }

  /** Every key issued, revoked ones too, oldest first; read strongly consistent. */
  async list(): Promise<CallerRecord[]> {
    const listed = await this.#table.get(CALLERS_PK, 'read the list of caller keys');
    const keyIds = listed?.keyIds instanceof Set ? [...listed.keyIds].map(String) : [];
    const items = await this.#table.batchGet(keyIds.map(callerPk), 'read caller keys');
    return keyIds
      .flatMap((keyId) => {
        const stored = storedKey(keyId, items.get(callerPk(keyId)));
        if (!stored) return [];
        const { hash: _hash, ...record } = stored;
        return [record];
      })
      .sort((a, b) => a.createdAt - b.createdAt || a.keyId.localeCompare(b.keyId));
  }

  /** Revokes a live key: true when this call revoked it, false when it was unknown or revoked already. */
  async revoke(keyId: string): Promise<boolean> {
    checkKeyId(keyId);
    const answer = await this.#table.update(
      callerPk(keyId),
      {
        UpdateExpression: 'SET revokedAt = :now',
        ConditionExpression: keyIsLive,
        ExpressionAttributeValues: { ':now': this.#table.now() },
      },
      'revoke a caller key',
    );
    this.#read.delete(keyId);
    return answer !== undefined;
  }

  /**
   * Checks a key's text from a request's path, for `source` (the caller's IP). A wrong secret is
   * `unknown`, as an unknown keyId is, and `revoked` needs the right secret: neither tells a guesser
   * whether a keyId exists. Throws LedgerUnavailableError when DynamoDB cannot be read.
   */
  async verify(segment: string | undefined, { source }: { source: string }): Promise<CallerVerdict> {
    const retryAfterMs = this.#failures.closedFor(source, this.#table.now());
    if (retryAfterMs > 0) return { ok: false, reason: 'throttled', retryAfterMs };
    const verdict = await this.#check(segment);
    if (!verdict.ok) this.#failures.fail(source, this.#table.now());
    return verdict;
  }

  async #check(segment: string | undefined): Promise<CallerVerdict> {
    const parts = parseCallerKey(segment);
    if (!parts) return { ok: false, reason: 'malformed' };
    const stored = await this.#lookup(parts.keyId);
    if (!stored || !secretMatches(parts.secret, stored.hash)) return { ok: false, reason: 'unknown' };
    if (stored.revokedAt !== undefined) return { ok: false, reason: 'revoked' };
    // From here a log line or an error that echoes the key, or only its secret, shows it masked.
    registerSecret(segment);
    registerSecret(parts.secret);
    return { ok: true, keyId: stored.keyId, portal: stored.portal, name: stored.name };
  }

  /** The key's item as last read within the cache TTL, or read now (one read for concurrent checks). */
  #lookup(keyId: string): Promise<StoredKey | undefined> {
    const now = this.#table.now();
    const known = this.#read.get(keyId);
    if (known && now >= known.at && now - known.at < this.#settings.cacheTtlMs) return known.key;
    this.#read.delete(keyId);
    if (this.#read.size >= this.#settings.maxSources) {
      const oldest = this.#read.keys().next();
      if (!oldest.done) this.#read.delete(oldest.value);
    }
    const lookup: Lookup = {
      at: now,
      key: this.#table.get(callerPk(keyId), 'read a caller key').then(
        (item) => storedKey(keyId, item),
        (error: unknown) => {
          if (this.#read.get(keyId) === lookup) this.#read.delete(keyId);
          throw error;
        },
      ),
    };
    this.#read.set(keyId, lookup);
    return lookup.key;
  }
}
