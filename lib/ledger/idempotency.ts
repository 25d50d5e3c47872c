import { createHash } from 'node:crypto';
import { ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { dynamoClient, ledgerRequest } from './access.ts';
import { LEDGER_KEY, TTL_ATTRIBUTE } from './table.ts';

/** As long as SQS's deduplication window: a key repeated within it names the same edit. */
export const IDEMPOTENCY_WINDOW_SECONDS = 300;

export interface IdempotencyOptions {
  /** STATE_TABLE_NAME: the keys are items of the ledger table. */
  tableName: string;
  /** Default: the ledger's client from the environment. */
  client?: DynamoDBClient;
  now?: () => number;
  windowSeconds?: number;
}

/**
 * What a claim found: the key is new (this request owns it), a repeat of an edit already recorded
 * (its `editId`), a repeat whose first request has not recorded its edit yet, or the key used for
 * other content.
 */
export type Claim =
  | { kind: 'new' }
  | { kind: 'duplicate'; editId: string }
  | { kind: 'in-flight'; retryAfterSeconds: number }
  | { kind: 'conflict' };

export interface ClaimRequest {
  portal: string;
  key: string;
  /** The edit this request would record. */
  editId: string;
  /** A hash of the edit's content (never the content itself). */
  contentHash: string;
}

/** sha256 hex of a text: the key and the content are kept only as hashes. */
export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function idempotencyPk(portal: string, key: string): string {
  return `idem#${portal}#${sha256(key)}`;
}

/**
 * Idempotency keys of API callers, one ledger item each (`idem#<portal>#<sha256 of key>`), written
 * with one conditional PutItem and expiring after the window (`ttl`; DynamoDB deletes late, so an
 * expired item counts as absent). A claim is `pending` until its edit is in the ledger: a repeat
 * then is told to retry, never that an edit which was not recorded is a duplicate.
 */
export class IdempotencyKeys {
  readonly #doc: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #now: () => number;
  readonly #window: number;

  constructor(options: IdempotencyOptions) {
    this.#doc = DynamoDBDocumentClient.from(options.client ?? dynamoClient());
    this.#table = options.tableName;
    this.#now = options.now ?? Date.now;
    this.#window = options.windowSeconds ?? IDEMPOTENCY_WINDOW_SECONDS;
  }

  async claim(request: ClaimRequest): Promise<Claim> {
    const pk = idempotencyPk(request.portal, request.key);
    const nowSeconds = Math.floor(this.#now() / 1000);
    try {
      await ledgerRequest(
        () =>
          this.#doc.send(
            new PutCommand({
              TableName: this.#table,
              Item: {
                [LEDGER_KEY]: pk,
                editId: request.editId,
                contentHash: request.contentHash,
                state: 'pending',
                [TTL_ATTRIBUTE]: nowSeconds + this.#window,
              },
              ConditionExpression: 'attribute_not_exists(#pk) OR #ttl < :now',
              ExpressionAttributeNames: { '#pk': LEDGER_KEY, '#ttl': TTL_ATTRIBUTE },
              ExpressionAttributeValues: { ':now': nowSeconds },
            }),
          ),
        'record the Idempotency-Key',
      );
      return { kind: 'new' };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
    const { Item: item } = await ledgerRequest(
      () =>
        this.#doc.send(
          new GetCommand({ TableName: this.#table, Key: { [LEDGER_KEY]: pk }, ConsistentRead: true }),
        ),
      'read the Idempotency-Key',
    );
    // Expired or released in between: the caller may simply try again.
    if (!item || Number(item[TTL_ATTRIBUTE]) < nowSeconds) return { kind: 'in-flight', retryAfterSeconds: 1 };
    if (item.contentHash !== request.contentHash) return { kind: 'conflict' };
    if (item.state === 'recorded') return { kind: 'duplicate', editId: String(item.editId) };
    return { kind: 'in-flight', retryAfterSeconds: Math.max(1, Number(item[TTL_ATTRIBUTE]) - nowSeconds) };
  }

  /** The claim's edit is in the ledger: repeats are answered as duplicates from now on. */
  async recorded(request: Pick<ClaimRequest, 'portal' | 'key' | 'editId'>): Promise<void> {
    await ledgerRequest(
      () =>
        this.#doc.send(
          new UpdateCommand({
            TableName: this.#table,
            Key: { [LEDGER_KEY]: idempotencyPk(request.portal, request.key) },
            UpdateExpression: 'SET #state = :recorded',
            ConditionExpression: 'editId = :editId',
            ExpressionAttributeNames: { '#state': 'state' },
            ExpressionAttributeValues: { ':recorded': 'recorded', ':editId': request.editId },
          }),
        ),
      'mark the Idempotency-Key recorded',
    ).catch((error: unknown) => {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    });
  }

  /** Gives the key up (its request failed before its edit was recorded), so that a retry is not held up. */
  async release(request: Pick<ClaimRequest, 'portal' | 'key' | 'editId'>): Promise<void> {
    await ledgerRequest(
      () =>
        this.#doc.send(
          new DeleteCommand({
            TableName: this.#table,
            Key: { [LEDGER_KEY]: idempotencyPk(request.portal, request.key) },
            ConditionExpression: 'editId = :editId AND #state = :pending',
            ExpressionAttributeNames: { '#state': 'state' },
            ExpressionAttributeValues: { ':editId': request.editId, ':pending': 'pending' },
          }),
        ),
      'release the Idempotency-Key',
    ).catch((error: unknown) => {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    });
  }
}
