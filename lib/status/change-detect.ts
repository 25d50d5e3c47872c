import { createHash } from 'node:crypto';
import type { EditFields } from '../edits/types.ts';

/** Default bound on the entries one container remembers. */
export const APPLIED_FIELDS_CACHE_MAX_ENTRIES = 10_000;

export interface AppliedFieldsCacheOptions {
  /** Entries kept before the least recently used is dropped. Default 10,000. */
  maxEntries?: number;
}

// JSON with object keys sorted at every level, so that key order never counts as a change.
// Arrays keep their order: button and block order is visible in the chat.
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) => {
    if (typeof inner !== 'object' || inner === null || Array.isArray(inner)) return inner;
    const sorted: Record<string, unknown> = {};
    for (const key of Object.keys(inner).sort()) sorted[key] = (inner as Record<string, unknown>)[key];
    return sorted;
  });
}

function fingerprint(fields: EditFields): string {
  // A digest keeps each entry small: a message may be 20,000 characters and an attach 60,000.
  return createHash('sha256').update(canonicalJson(fields)).digest('base64');
}

/**
 * Remembers, per container, the fields last applied to each message (`key`, e.g. the message group
 * id) so that an unchanged status is not sent again. Call `remember` only after Bitrix24 accepted the
 * update and `forget` when an update failed or its outcome is unknown. Bounded, least recently used
 * entries go first; a miss only costs one redundant update.
 */
export class AppliedFieldsCache {
  readonly #maxEntries: number;
  readonly #entries = new Map<string, string>();

  constructor(options: AppliedFieldsCacheOptions = {}) {
    const maxEntries = options.maxEntries ?? APPLIED_FIELDS_CACHE_MAX_ENTRIES;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new TypeError(`Expected maxEntries to be a positive integer, got ${String(maxEntries)}`);
    }
    this.#maxEntries = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** True when `fields` equal (key order aside) the fields last remembered for `key`. */
  isUnchanged(key: string, fields: EditFields): boolean {
    const applied = this.#entries.get(key);
    if (applied === undefined || applied !== fingerprint(fields)) return false;
    // Map order is insertion order: re-inserting marks the entry as recently used.
    this.#entries.delete(key);
    this.#entries.set(key, applied);
    return true;
  }

  remember(key: string, fields: EditFields): void {
    this.#entries.delete(key);
    this.#entries.set(key, fingerprint(fields));
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#entries.delete(oldest.value);
    }
  }

  forget(key: string): void {
    this.#entries.delete(key);
  }
}
