import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
  type UpdateCommandInput,
  type UpdateCommandOutput,
} from '@aws-sdk/lib-dynamodb';
import { AWS_CLIENT_LIMITS } from '../aws.ts';
import { AppError } from '../errors.ts';
import { type OperatingBook, parseOperatingBook } from '../pacing/operating-budget.ts';
import {
  type DesiredField,
  dueAt,
  EDIT_FIELDS,
  emptyState,
  type FieldName,
  type IncomingEdit,
  type LedgerError,
  type MergeResult,
  type MessageKey,
  type MessageState,
  mergeEdits,
  messageKeyText,
  type Timing,
} from './model.ts';
import { DIRTY_INDEX, DIRTY_PORTAL, DUE_AT, LEDGER_KEY, TTL_ATTRIBUTE } from './table.ts';

/** DynamoDB could not be reached or refused a request: the edit was not recorded. */
export class LedgerUnavailableError extends AppError {
  override name = 'LedgerUnavailableError';
  readonly retryAfterSeconds = 5;
  constructor(message: string, options?: ErrorOptions) {
    super('LEDGER_UNAVAILABLE', message, 503, options);
  }
}

export interface LedgerOptions {
  /** STATE_TABLE_NAME. */
  tableName: string;
  /** Default: a client from the environment (AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB). */
  client?: DynamoDBClient;
  now?: () => number;
  /** Days without a write after which DynamoDB may delete a message's item. Default 30. */
  idleTtlDays?: number;
}

/**
 * The dirty index's sort key of an edit someone waits for (the API's): before every real due time
 * (a fresh message's is 0), so the lease holder's next call carries it ahead of the backlog. Only for
 * a message due within `AHEAD_WITHIN_MS`: one held back for longer (backoff, settle) keeps its place,
 * or it would take a place at the head of every round until then.
 */
const AHEAD_DUE_AT = -1;

/**
 * The dirty index's sort key for a message due at `due`: the due time plus a fraction of a
 * millisecond drawn from the message's key, so that messages due at the same moment (every fresh
 * one is due at 0) still have distinct index keys. dynalite, the local DynamoDB, tells items of one
 * index key apart by only 24 bits of a hash of their table key: with thousands of messages under one
 * index key, two collide, one entry overwrites the other, and that message drops out of the index
 * (found by bench:drain with 10 drains: 1 of 5,000 messages never applied). Real DynamoDB has no
 * such limit; the fraction costs nothing there.
 */
function indexDueAt(pk: string, due: number): number {
  const fraction = createHash('sha256').update(pk).digest().readUInt32BE(0) / 2 ** 32;
  return due + Math.floor(fraction * INDEX_STEPS) / INDEX_STEPS;
}
/** The fraction's steps per ms: an index key lies in [due, due + 1 − 1 / INDEX_STEPS]. */
const INDEX_STEPS = 1e6;
/** Above every ahead message's index key, below every fresh one's (due at 0). */
const AHEAD_BELOW = AHEAD_DUE_AT + 1 - 0.5 / INDEX_STEPS;
const AHEAD_WITHIN_MS = 1_000;

/** A portal lease asked for: refused, or taken with what the previous holder left on the portal item. */
export interface LeaseTaken {
  acquired: boolean;
  /** When the previous holder's rate bucket empties (epoch ms). */
  bucketEmptyAt?: number | undefined;
  /**
   * The latest start its holder allowed its calls, when it did not release the lease (it died or
   * overran): a call it may have started can land until this plus the settle window.
   */
  callsStartBy?: number | undefined;
  /** The portal's overload circuit as the previous holder left it. */
  circuit?: { openUntil: number; opens: number } | undefined;
  /** The portal's operating-time use per method, as the previous holder left it. */
  operating?: OperatingBook | undefined;
  /** When the lease was last given up, and by whom (a holder's calls had all ended by then). */
  releasedAt?: number | undefined;
  releasedBy?: string | undefined;
  /** It was taken over from a holder whose lease ran out without a release (it died, or overran). */
  fromExpiredHolder?: boolean | undefined;
  /** The taker held it already (a renewal): nobody else held it in between. */
  renewed?: boolean | undefined;
}

/** What `markApplied` found: applied and clean, applied but the desired version differs, or overtaken by a later call. */
export type AppliedMark = 'clean' | 'newer-pending' | 'overtaken';

/** Merges of one message racing each other; each retry reads the winner's state first. */
const MERGE_TRIES = 25;
const BATCH_GET_KEYS = 100;
/** Items this container saw last, so that a merge of a message it touched recently needs no read. */
const CACHED_ITEMS = 512;
/** Larger desired states are not kept (the cache stays within a few MB). */
const CACHED_DESIRED_CHARS = 16_384;
let defaultClient: DynamoDBClient | undefined;

/** The DynamoDB client built from the environment, made once per container. */
export function dynamoClient(): DynamoDBClient {
  defaultClient ??= new DynamoDBClient(AWS_CLIENT_LIMITS);
  return defaultClient;
}

export function messagePk(key: MessageKey): string {
  return `msg#${key.portal}#${key.botId}#${key.messageId}`;
}

function portalPk(portal: string): string {
  return `portal#${portal}`;
}

/**
 * The ledger in DynamoDB: one item per message, written only by single-item conditional updates
 * (no transactions). Merges are read → compute → write on `version`; apply outcomes touch only the
 * bookkeeping, so a merge and an apply never overwrite each other's attributes.
 */
export class Ledger {
  readonly tableName: string;
  readonly #doc: DynamoDBDocumentClient;
  readonly #now: () => number;
  readonly #ttlSeconds: number;
  /**
   * The item of each message as this container last read or wrote it, by pk. Every write of an item
   * increases its `revision` and merges are conditioned on it, so a stale entry costs one refused
   * write and a read, never a lost edit.
   */
  readonly #seen = new Map<string, MessageState>();

  constructor(options: LedgerOptions) {
    this.tableName = options.tableName;
    this.#doc = DynamoDBDocumentClient.from(options.client ?? dynamoClient(), {
      marshallOptions: { removeUndefinedValues: true },
    });
    this.#now = options.now ?? Date.now;
    this.#ttlSeconds = (options.idleTtlDays ?? 30) * 86_400;
  }

  /** The message's state, read strongly consistent; an empty state when it has none. */
  async get(key: MessageKey): Promise<MessageState> {
    const answer = await this.#send(
      () =>
        this.#doc.send(
          new GetCommand({
            TableName: this.tableName,
            Key: { [LEDGER_KEY]: messagePk(key) },
            ConsistentRead: true,
          }),
        ),
      'read a message',
    );
    return this.#remember(messagePk(key), answer.Item);
  }

  /** States of many messages (strongly consistent, 100 keys a request), by `messageKeyText`. */
  async getMany(keys: readonly MessageKey[]): Promise<Map<string, MessageState>> {
    const states = new Map<string, MessageState>();
    const unique = [...new Map(keys.map((key) => [messagePk(key), key])).values()];
    for (let start = 0; start < unique.length; start += BATCH_GET_KEYS) {
      let pending: Array<Record<string, unknown>> = unique
        .slice(start, start + BATCH_GET_KEYS)
        .map((key) => ({ [LEDGER_KEY]: messagePk(key) }));
      for (let round = 0; pending.length > 0; round++) {
        if (round >= MERGE_TRIES) throw new LedgerUnavailableError('DynamoDB kept keys unprocessed');
        const request = { [this.tableName]: { Keys: pending, ConsistentRead: true } };
        const answer = await this.#send(
          () => this.#doc.send(new BatchGetCommand({ RequestItems: request })),
          'read messages',
        );
        for (const item of answer.Responses?.[this.tableName] ?? []) {
          const state = this.#remember(String(item[LEDGER_KEY]), item);
          states.set(messageKeyText(state), state);
        }
        pending = (answer.UnprocessedKeys?.[this.tableName]?.Keys ?? []) as Array<Record<string, unknown>>;
      }
    }
    for (const key of unique)
      if (!states.has(messageKeyText(key))) states.set(messageKeyText(key), emptyState(key));
    return states;
  }

  /**
   * Merges edits of one message (in queue order) and makes it dirty if its desired state changed;
   * `timing` gives a newly dirty message its due time. A message this container saw last is merged
   * from that copy in one write; a refused write reads the item and merges again.
   */
  async merge(
    key: MessageKey,
    edits: readonly IncomingEdit[],
    timing: Timing,
    /**
     * `ahead`: the message goes to the head of its portal's dirty set (the API's edits: a caller is
     * waiting, so the lease holder sends it before the backlog). Otherwise a dirty message keeps its
     * place, and a newly dirty one joins at its due time.
     */
    options: { ahead?: boolean } = {},
  ): Promise<MergeResult> {
    const pk = messagePk(key);
    for (let attempt = 0; attempt < MERGE_TRIES; attempt++) {
      const cached = attempt === 0 ? this.#seen.get(pk) : undefined;
      const current = cached ?? (await this.get(key));
      const result = mergeEdits(current, edits);
      if (!result.changed && !result.restamped) {
        // Nothing to write proves nothing about a cached copy (another container may have moved the
        // message on since): only a state read now is returned, or a caller could send a stale one.
        if (cached) continue;
        return result;
      }
      const now = this.#now();
      const due = dueAt(result.state, timing);
      const ahead = options.ahead === true && due <= now + AHEAD_WITHIN_MS;
      const condition = current.revision === 0 ? 'attribute_not_exists(revision)' : 'revision = :current';
      const base = {
        ':revision': current.revision + 1,
        ':desired': toStoredDesired(result.state.desired),
        ':ttl': this.#ttl(now),
        ...(current.revision === 0 ? {} : { ':current': current.revision }),
      };
      const written = await this.#writeMessage(
        pk,
        result.changed
          ? {
              UpdateExpression:
                'SET portal = :portal, botId = :botId, messageId = :messageId, desired = :desired, ' +
                'version = :version, revision = :revision, appliedVersion = if_not_exists(appliedVersion, :zero), ' +
                'attempts = if_not_exists(attempts, :zero), pendingEditIds = :pending, ' +
                `#dp = :portal, #ds = ${ahead ? ':due' : 'if_not_exists(#ds, :due)'}, #ttl = :ttl`,
              ConditionExpression: condition,
              ExpressionAttributeNames: { '#dp': DIRTY_PORTAL, '#ds': DUE_AT, '#ttl': TTL_ATTRIBUTE },
              ExpressionAttributeValues: {
                ...base,
                ':portal': key.portal,
                ':botId': key.botId,
                ':messageId': key.messageId,
                ':version': result.state.version,
                ':zero': 0,
                ':pending': result.state.pendingEditIds,
                ':due': indexDueAt(pk, ahead ? AHEAD_DUE_AT : due),
              },
            }
          : // Only newer stamps of unchanged values: no new version, nothing to apply.
            {
              UpdateExpression: 'SET desired = :desired, revision = :revision, #ttl = :ttl',
              ConditionExpression: condition,
              ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE },
              ExpressionAttributeValues: base,
            },
        'record an edit',
      );
      if (written) return { ...result, state: written };
      // Another write of this message came first: read again (after a short, jittered pause when
      // the refused write was not merely based on an old copy).
      if (!cached) await delay(Math.floor(Math.random() * 10 * (attempt + 1)));
    }
    throw new LedgerUnavailableError(
      `Too many concurrent edits of message ${messageKeyText(key)}; try again`,
    );
  }

  /** Keys of the portal's dirty messages due by `now`, most overdue first (an eventually consistent index). */
  async dirtyKeys(portal: string, limit: number, now = this.#now()): Promise<MessageKey[]> {
    const answer = await this.#send(
      () =>
        this.#doc.send(
          new QueryCommand({
            TableName: this.tableName,
            IndexName: DIRTY_INDEX,
            // Due within this millisecond counts as due: index keys carry a fraction of a ms.
            KeyConditionExpression: '#dp = :portal AND #ds < :before',
            ExpressionAttributeNames: { '#dp': DIRTY_PORTAL, '#ds': DUE_AT },
            ExpressionAttributeValues: { ':portal': portal, ':before': Math.floor(now) + 1 },
            ScanIndexForward: true,
            Limit: limit,
          }),
        ),
      'list dirty messages',
    );
    return (answer.Items ?? []).flatMap((item) => keyOfPk(String(item[LEDGER_KEY])) ?? []);
  }

  /** Keys of the portal's messages merged `ahead` (edits an API caller waits for), oldest first. */
  aheadKeys(portal: string, limit: number): Promise<MessageKey[]> {
    return this.dirtyKeys(portal, limit, AHEAD_BELOW);
  }

  /** Every portal that has dirty messages (a scan of the sparse index, which holds only those). */
  async dirtyPortals(): Promise<string[]> {
    const portals = new Set<string>();
    let start: Record<string, unknown> | undefined;
    do {
      const answer = await this.#send(
        () =>
          this.#doc.send(
            new ScanCommand({
              TableName: this.tableName,
              IndexName: DIRTY_INDEX,
              ProjectionExpression: '#dp',
              ExpressionAttributeNames: { '#dp': DIRTY_PORTAL },
              ...(start ? { ExclusiveStartKey: start } : {}),
            }),
          ),
        'list dirty portals',
      );
      for (const item of answer.Items ?? []) portals.add(String(item[DIRTY_PORTAL]));
      start = answer.LastEvaluatedKey;
    } while (start);
    return [...portals];
  }

  /**
   * Records that `version` reached Bitrix24 by a call started at `startedAt`. Calls of one portal
   * never overlap (the lease), so the call started last is the one the portal shows: the mark
   * counts only if no later call's apply is recorded. Clean when it is still the desired version;
   * `newer-pending` when edits came meanwhile (or it undid a newer apply); `overtaken` when a later
   * call's apply was recorded first: then that one's mark stands.
   */
  async markApplied(
    key: MessageKey,
    version: number,
    startedAt: number,
    timing: Timing,
  ): Promise<AppliedMark> {
    const now = this.#now();
    const values = { ':v': version, ':now': now, ':started': startedAt, ':zero': 0, ':ttl': this.#ttl(now) };
    const names = { '#dp': DIRTY_PORTAL, '#ds': DUE_AT, '#ttl': TTL_ATTRIBUTE };
    // The item exists (no partial item is made for a message gone by TTL) and no later apply is on it.
    // A call started in the same millisecond as the recorded one came after it: calls of a portal
    // follow one another under its lease, and each run records one call's outcomes before the next.
    const latest =
      'attribute_exists(version) AND (attribute_not_exists(appliedCallAt) OR appliedCallAt <= :started)';
    const applied =
      'SET appliedVersion = :v, appliedCallAt = :started, appliedAt = :now, lastCallAt = :started, attempts = :zero, #ttl = :ttl';
    if (
      await this.#conditional({
        UpdateExpression: `${applied}, pendingEditIds = :none REMOVE lastError, retryAt, inDoubtSince, #dp, #ds`,
        ConditionExpression: `version = :v AND ${latest}`,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: { ...values, ':none': [] },
        key,
      })
    )
      return 'clean';
    if (
      await this.#conditional({
        // Not the desired version (newer edits came, or this call carried an older state than an
        // apply before it): the portal shows `version`, so the message is dirty from here.
        UpdateExpression: `${applied}, #dp = :portal, #ds = :due REMOVE lastError, retryAt, inDoubtSince`,
        ConditionExpression: latest,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: {
          ...values,
          ':portal': key.portal,
          ':due': indexDueAt(messagePk(key), startedAt + timing.messageMinIntervalMs),
        },
        key,
      })
    )
      return 'newer-pending';
    return 'overtaken';
  }

  /**
   * Records a failed or unknown outcome: the message stays dirty until `retryAt`. `called` says a
   * request carried it (the attempt counts and the cadence starts); `inDoubt` that it may still land.
   */
  async markRetry(
    key: MessageKey,
    outcome: {
      error: LedgerError;
      retryAt: number;
      /** The message's due time after this outcome (`dueAt` of the new state). */
      dueAt: number;
      startedAt?: number | undefined;
      inDoubt: boolean;
    },
  ): Promise<void> {
    const now = this.#now();
    const sets = ['lastError = :error', 'retryAt = :retryAt', '#ds = :due', '#ttl = :ttl'];
    const values: Record<string, unknown> = {
      ':error': outcome.error,
      ':retryAt': outcome.retryAt,
      ':due': indexDueAt(messagePk(key), outcome.dueAt),
      ':ttl': this.#ttl(now),
    };
    if (outcome.startedAt !== undefined) {
      sets.push('attempts = if_not_exists(attempts, :zero) + :one', 'lastCallAt = :started');
      Object.assign(values, { ':zero': 0, ':one': 1, ':started': outcome.startedAt });
      if (outcome.inDoubt) sets.push('inDoubtSince = :started');
    }
    await this.#update({
      UpdateExpression: `SET ${sets.join(', ')}`,
      // Only while dirty: a message applied or failed meanwhile keeps its state.
      ConditionExpression: 'attribute_exists(#dp)',
      ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE, '#ds': DUE_AT, '#dp': DIRTY_PORTAL },
      ExpressionAttributeValues: values,
      key,
    });
  }

  /**
   * Records that `version` failed for good (its state is on the failed-edits queue). False when a
   * newer version was merged meanwhile: that one stays dirty and is tried on its own.
   */
  async markFailed(
    key: MessageKey,
    version: number,
    error: LedgerError,
    startedAt?: number,
  ): Promise<boolean> {
    const now = this.#now();
    return this.#conditional({
      UpdateExpression: `SET failedVersion = :v, lastError = :error, attempts = :zero, #ttl = :ttl${startedAt === undefined ? '' : ', lastCallAt = :started'} REMOVE retryAt, #dp, #ds`,
      ConditionExpression: 'version = :v',
      ExpressionAttributeNames: { '#dp': DIRTY_PORTAL, '#ds': DUE_AT, '#ttl': TTL_ATTRIBUTE },
      ExpressionAttributeValues: {
        ':v': version,
        ':error': error,
        ':zero': 0,
        ':ttl': this.#ttl(now),
        ...(startedAt === undefined ? {} : { ':started': startedAt }),
      },
      key,
    });
  }

  /**
   * Takes (or renews) the portal's reconcile lease until `untilMs`. Resolves with where the previous
   * holder left the portal's rate bucket and, when it stopped without a release, the latest start it
   * allowed its calls; or with `acquired: false` when another owner holds the lease.
   */
  async acquireLease(
    portal: string,
    owner: string,
    untilMs: number,
    /**
     * The latest time a call under this lease will start (the holder renews before a later one):
     * kept until the lease is released, so a crash leaves it for the next holder to wait out.
     */
    callsStartBy?: number,
  ): Promise<LeaseTaken> {
    const now = this.#now();
    const answer = await this.#updateItem(
      portalPk(portal),
      {
        UpdateExpression: `SET leaseOwner = :owner, leaseUntil = :until, #ttl = :ttl${callsStartBy === undefined ? '' : ', callsStartBy = :call'}`,
        ConditionExpression: 'attribute_not_exists(leaseUntil) OR leaseUntil < :now OR leaseOwner = :owner',
        ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE },
        ExpressionAttributeValues: {
          ':owner': owner,
          ':until': untilMs,
          ':now': now,
          ':ttl': this.#ttl(now),
          ...(callsStartBy === undefined ? {} : { ':call': callsStartBy }),
        },
        // What the previous holder left: its bucket, and the latest call start it did not clear (it died).
        ReturnValues: 'ALL_OLD',
      },
      'take the portal lease',
    );
    if (!answer) return { acquired: false };
    const number = (name: string) => {
      const value = answer.Attributes?.[name];
      return typeof value === 'number' ? value : undefined;
    };
    const circuitUntil = number('circuitUntil');
    const handed = {
      acquired: true,
      bucketEmptyAt: number('bucketEmptyAt'),
      circuit:
        circuitUntil === undefined
          ? undefined
          : { openUntil: circuitUntil, opens: number('circuitOpens') ?? 1 },
      operating:
        answer.Attributes?.operating === undefined
          ? undefined
          : parseOperatingBook(answer.Attributes.operating),
    };
    // Our own lease renewed: any call start on it is our own.
    const previousOwner = answer.Attributes?.leaseOwner;
    if (previousOwner === owner) return { ...handed, renewed: true };
    const releasedBy = answer.Attributes?.releasedBy;
    return {
      ...handed,
      callsStartBy: number('callsStartBy'),
      releasedAt: number('releasedAt'),
      releasedBy: typeof releasedBy === 'string' ? releasedBy : undefined,
      fromExpiredHolder: previousOwner !== undefined,
    };
  }

  /**
   * Gives the lease up, leaving the portal's rate bucket (epoch ms it empties) for the next holder.
   * Every call of the holder has its outcome recorded by then, so no call is left in doubt.
   */
  async releaseLease(
    portal: string,
    owner: string,
    handOver: {
      /** When the holder's rate bucket empties (epoch ms). */
      bucketEmptyAt?: number | undefined;
      /** A dead holder's latest call start, still in doubt: left for the next holder instead of cleared. */
      callsStartBy?: number | undefined;
      /** The portal's overload circuit as the holder leaves it; `null`: closed (cleared). */
      circuit?: { openUntil: number; opens: number } | null | undefined;
      /** The portal's operating-time use per method (baskets still in the window). */
      operating?: OperatingBook | undefined;
    } = {},
  ): Promise<void> {
    const { bucketEmptyAt, callsStartBy, circuit, operating } = handOver;
    const sets = [
      'releasedAt = :releasedAt',
      'releasedBy = :owner',
      ...(bucketEmptyAt === undefined ? [] : ['bucketEmptyAt = :emptyAt']),
      ...(callsStartBy === undefined ? [] : ['callsStartBy = :call']),
      ...(circuit ? ['circuitUntil = :circuitUntil', 'circuitOpens = :circuitOpens'] : []),
      ...(operating === undefined ? [] : ['operating = :operating']),
    ];
    const removes = [
      'leaseOwner',
      'leaseUntil',
      ...(callsStartBy === undefined ? ['callsStartBy'] : []),
      ...(circuit === null ? ['circuitUntil', 'circuitOpens'] : []),
    ];
    // Refused when the lease ran out and another owner took it: nothing of ours to give up.
    await this.#updateItem(
      portalPk(portal),
      {
        UpdateExpression: `SET ${sets.join(', ')} REMOVE ${removes.join(', ')}`,
        ConditionExpression: 'leaseOwner = :owner',
        ExpressionAttributeValues: {
          ':owner': owner,
          ':releasedAt': this.#now(),
          ...(bucketEmptyAt === undefined ? {} : { ':emptyAt': bucketEmptyAt }),
          ...(callsStartBy === undefined ? {} : { ':call': callsStartBy }),
          ...(circuit ? { ':circuitUntil': circuit.openUntil, ':circuitOpens': circuit.opens } : {}),
          ...(operating === undefined ? {} : { ':operating': operating }),
        },
      },
      'release the portal lease',
    );
  }

  /**
   * Takes the portal's OAuth refresh lock until `untilMs` (the gateway's fleet-wide single flight).
   * Lives on the portal item beside the reconcile lease, and is independent of it.
   */
  async acquireRefreshLock(portal: string, owner: string, untilMs: number): Promise<boolean> {
    const now = this.#now();
    const answer = await this.#updateItem(
      portalPk(portal),
      {
        UpdateExpression: 'SET oauthLockOwner = :owner, oauthLockUntil = :until, #ttl = :ttl',
        ConditionExpression:
          'attribute_not_exists(oauthLockUntil) OR oauthLockUntil < :now OR oauthLockOwner = :owner',
        ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE },
        ExpressionAttributeValues: {
          ':owner': owner,
          ':until': untilMs,
          ':now': now,
          ':ttl': this.#ttl(now),
        },
      },
      'take the OAuth refresh lock',
    );
    return answer !== undefined;
  }

  async releaseRefreshLock(portal: string, owner: string): Promise<void> {
    await this.#updateItem(
      portalPk(portal),
      {
        UpdateExpression: 'REMOVE oauthLockOwner, oauthLockUntil',
        ConditionExpression: 'oauthLockOwner = :owner',
        ExpressionAttributeValues: { ':owner': owner },
      },
      'release the OAuth refresh lock',
    );
  }

  #ttl(now: number): number {
    return Math.floor(now / 1000) + this.#ttlSeconds;
  }

  /**
   * An outcome write; refused when the item is gone (TTL) or no longer dirty: nothing to record then.
   * Like every write of a message item, it increases the item's `revision`.
   */
  async #update(input: Omit<UpdateCommandInput, 'TableName' | 'Key'> & { key: MessageKey }): Promise<void> {
    await this.#conditional(input);
  }

  /** An outcome write whose condition decides: true when it was written. */
  async #conditional(
    input: Omit<UpdateCommandInput, 'TableName' | 'Key'> & { key: MessageKey },
  ): Promise<boolean> {
    const { key, UpdateExpression, ExpressionAttributeValues, ...rest } = input;
    const written = await this.#writeMessage(
      messagePk(key),
      {
        ...rest,
        UpdateExpression: `SET revision = if_not_exists(revision, :rev0) + :rev1, ${String(UpdateExpression).replace(/^SET /, '')}`,
        ExpressionAttributeValues: { ...ExpressionAttributeValues, ':rev0': 0, ':rev1': 1 },
      },
      'record an outcome',
    );
    return written !== undefined;
  }

  /** One write of a message item: the item as written (kept as this container's copy), or undefined when refused. */
  async #writeMessage(
    pk: string,
    input: Omit<UpdateCommandInput, 'TableName' | 'Key'>,
    what: string,
  ): Promise<MessageState | undefined> {
    const answer = await this.#updateItem(pk, { ...input, ReturnValues: 'ALL_NEW' }, what);
    if (answer?.Attributes) return this.#remember(pk, answer.Attributes);
    this.#seen.delete(pk);
    return undefined;
  }

  /** The state of an item just read or written, kept as this container's copy of it (bounded). */
  #remember(pk: string, item: Record<string, unknown> | undefined): MessageState {
    this.#seen.delete(pk);
    if (!item) {
      const key = keyOfPk(pk) as MessageKey;
      return emptyState(key);
    }
    const state = fromItem(item);
    const stored = (item.desired ?? {}) as Record<string, StoredField>;
    let chars = 0;
    for (const field of Object.values(stored)) chars += field.json.length;
    if (chars <= CACHED_DESIRED_CHARS) {
      this.#seen.set(pk, state);
      if (this.#seen.size > CACHED_ITEMS) this.#seen.delete(this.#seen.keys().next().value as string);
    }
    return state;
  }

  /** One UpdateItem; undefined when its condition refused it. */
  async #updateItem(
    pk: string,
    input: Omit<UpdateCommandInput, 'TableName' | 'Key'>,
    what: string,
  ): Promise<UpdateCommandOutput | undefined> {
    try {
      return await this.#send(
        () =>
          this.#doc.send(
            new UpdateCommand({ TableName: this.tableName, Key: { [LEDGER_KEY]: pk }, ...input }),
          ),
        what,
      );
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return undefined;
      throw error;
    }
  }

  #send<T>(request: () => Promise<T>, what: string): Promise<T> {
    return ledgerRequest(request, what);
  }
}

/** Runs a request on the ledger table; anything but a failed condition becomes LedgerUnavailableError. */
export async function ledgerRequest<T>(request: () => Promise<T>, what: string): Promise<T> {
  try {
    return await request();
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) throw error;
    const name = error instanceof Error ? error.name : 'Error';
    throw new LedgerUnavailableError(`The ledger could not ${what} (${name})`, { cause: error });
  }
}

interface StoredField {
  json: string;
  at: number;
  seq: string;
  editId: string;
}

/** Values are kept as JSON text: DynamoDB maps refuse some JSON (empty keys) and round numbers. */
function toStoredDesired(desired: MessageState['desired']): Record<string, StoredField> {
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

function fromItem(item: Record<string, unknown>): MessageState {
  const key = keyOfPk(String(item[LEDGER_KEY])) as MessageKey;
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
    retryAt: number('retryAt'),
    attempts: number('attempts') ?? 0,
    lastError: item.lastError as LedgerError | undefined,
    inDoubtSince: number('inDoubtSince'),
    lastCallAt: number('lastCallAt'),
    pendingEditIds: Array.isArray(item.pendingEditIds) ? (item.pendingEditIds as string[]) : [],
  };
}

function keyOfPk(pk: string): MessageKey | undefined {
  const match = /^msg#(.+)#(\d+)#(\d+)$/.exec(pk);
  if (!match) return undefined;
  return { portal: match[1] as string, botId: Number(match[2]), messageId: Number(match[3]) };
}
