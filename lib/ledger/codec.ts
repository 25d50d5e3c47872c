import {
  type DesiredField,
  EDIT_FIELDS,
  emptyState,
  type FieldName,
  type LedgerError,
  type MessageKey,
  type MessageState,
} from './model.ts';
import { DUE_AT, LEDGER_KEY } from './table.ts';

/**
 * How ledger items are keyed and how a message item maps to a `MessageState`. Values of the desired
 * state are kept as JSON text: DynamoDB maps refuse some JSON (empty keys) and round numbers.
 */

export function messagePk(key: MessageKey): string {
  return `msg#${key.portal}#${key.botId}#${key.messageId}`;
}

export function portalPk(portal: string): string {
  return `portal#${portal}`;
}

/** The claim of one Bitrix24 portal (by host, lower case) for the secret that serves it. */
export function hostPk(host: string): string {
  return `host#${host.toLowerCase()}`;
}

/** A caller key (lib/callers) by its public id: the hash of its secret, never the secret. */
export function callerPk(keyId: string): string {
  return `caller#${keyId}`;
}

/** The one item that lists the ids of all caller keys: the table has no index to find them by. */
export const CALLERS_PK = 'callers';

export function keyOfPk(pk: string): MessageKey | undefined {
  const match = /^msg#(.+)#(\d+)#(\d+)$/.exec(pk);
  if (!match) return undefined;
  return { portal: match[1] as string, botId: Number(match[2]), messageId: Number(match[3]) };
}

/** The portal of a portal item's key. */
export function portalOfPk(pk: string): string | undefined {
  return pk.startsWith('portal#') ? pk.slice('portal#'.length) : undefined;
}

export interface StoredField {
  json: string;
  at: number;
  seq: string;
  editId: string;
}

export function toStoredDesired(desired: MessageState['desired']): Record<string, StoredField> {
  const stored: Record<string, StoredField> = {};
  for (const field of EDIT_FIELDS) {
    const entry = desired[field];
    if (entry)
      stored[field] = {
        json: JSON.stringify(entry.value),
        at: entry.at,
        seq: entry.seq,
        editId: entry.editId,
      };
  }
  return stored;
}

/** Characters of JSON text in an item's desired state. */
export function storedChars(item: Record<string, unknown>): number {
  let chars = 0;
  for (const field of Object.values((item.desired ?? {}) as Record<string, StoredField>))
    chars += field.json.length;
  return chars;
}

/** A message item as state; an empty state for the key when there is no item. */
export function fromItem(key: MessageKey, item: Record<string, unknown> | undefined): MessageState {
  if (!item) return emptyState(key);
  const desired: Partial<Record<FieldName, DesiredField>> = {};
  const stored = (item.desired ?? {}) as Record<string, StoredField>;
  for (const field of EDIT_FIELDS) {
    const entry = stored[field];
    if (entry)
      desired[field] = { value: JSON.parse(entry.json), at: entry.at, seq: entry.seq, editId: entry.editId };
  }
  const number = (name: string): number | undefined =>
    typeof item[name] === 'number' ? (item[name] as number) : undefined;
  return {
    ...key,
    desired,
    version: number('version') ?? 0,
    revision: number('revision') ?? 0,
    appliedVersion: number('appliedVersion') ?? 0,
    appliedAt: number('appliedAt'),
    failedVersion: number('failedVersion'),
    dueAt: number(DUE_AT),
    dirtySince: number('dirtySince'),
    retryAt: number('retryAt'),
    attempts: number('attempts') ?? 0,
    failingSince: number('failingSince'),
    lastError: item.lastError as LedgerError | undefined,
    inDoubtSince: number('inDoubtSince'),
    lastCallAt: number('lastCallAt'),
    pendingEditIds: Array.isArray(item.pendingEditIds) ? (item.pendingEditIds as string[]) : [],
  };
}

/** The message key of an item read from the table. */
export function itemKey(item: Record<string, unknown>): MessageKey | undefined {
  return keyOfPk(String(item[LEDGER_KEY]));
}
