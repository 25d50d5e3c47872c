import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  type QueryCommandInput,
  UpdateCommand,
  type UpdateCommandInput,
  type UpdateCommandOutput,
} from '@aws-sdk/lib-dynamodb';
import { AWS_CLIENT_LIMITS } from '../aws.ts';
import { AppError } from '../errors.ts';
import { LEDGER_KEY } from './table.ts';

/** DynamoDB could not be reached or refused a request: the edit was not recorded. */
export class LedgerUnavailableError extends AppError {
  override name = 'LedgerUnavailableError';
  readonly retryAfterSeconds = 5;
  constructor(message: string, options?: ErrorOptions) {
    super('LEDGER_UNAVAILABLE', message, 503, options);
  }
}

let defaultClient: DynamoDBClient | undefined;
const BATCH_GET_KEYS = 100;
/** Rounds of keys DynamoDB left unprocessed before the read counts as failed. */
const BATCH_GET_ROUNDS = 25;

/** The DynamoDB client built from the environment, made once per container. */
export function dynamoClient(): DynamoDBClient {
  defaultClient ??= new DynamoDBClient(AWS_CLIENT_LIMITS);
  return defaultClient;
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

export interface LedgerTableOptions {
  /** STATE_TABLE_NAME. */
  tableName: string;
  /** Default: a client from the environment (AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB). */
  client?: DynamoDBClient;
  /** The clock of every time written to or compared in the table. Default `Date.now`. */
  now?: () => number;
  /** Days without a write after which DynamoDB may delete an item. Default 30. */
  idleTtlDays?: number;
}

/** An update without the table and key, which `LedgerTable.update` adds. */
export type ItemUpdate = Omit<UpdateCommandInput, 'TableName' | 'Key'>;

/**
 * The ledger's DynamoDB table as its item kinds use it: one document client, one clock, the idle
 * TTL, and the three requests they make (a conditional update, a strongly consistent read, a query).
 */
export class LedgerTable {
  readonly tableName: string;
  readonly doc: DynamoDBDocumentClient;
  readonly now: () => number;
  readonly #ttlSeconds: number;

  constructor(options: LedgerTableOptions) {
    this.tableName = options.tableName;
    this.doc = DynamoDBDocumentClient.from(options.client ?? dynamoClient(), {
      marshallOptions: { removeUndefinedValues: true },
    });
    this.now = options.now ?? Date.now;
    this.#ttlSeconds = (options.idleTtlDays ?? 30) * 86_400;
  }

  /** Epoch seconds after which DynamoDB may delete an item written at `now`. */
  ttl(now = this.now()): number {
    return Math.floor(now / 1000) + this.#ttlSeconds;
  }

  /** One UpdateItem; undefined when its condition refused it. */
  async update(pk: string, input: ItemUpdate, what: string): Promise<UpdateCommandOutput | undefined> {
    try {
      return await ledgerRequest(
        () =>
          this.doc.send(
            new UpdateCommand({ TableName: this.tableName, Key: { [LEDGER_KEY]: pk }, ...input }),
          ),
        what,
      );
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return undefined;
      throw error;
    }
  }

  /** One item, read strongly consistent; undefined when there is none. */
  async get(pk: string, what: string): Promise<Record<string, unknown> | undefined> {
    const answer = await ledgerRequest(
      () =>
        this.doc.send(
          new GetCommand({ TableName: this.tableName, Key: { [LEDGER_KEY]: pk }, ConsistentRead: true }),
        ),
      what,
    );
    return answer.Item;
  }

  /**
   * Items by key, strongly consistent, 100 keys a request, keys DynamoDB left unprocessed asked
   * again (a few times); a key without an item is absent from the answer.
   */
  async batchGet(pks: readonly string[], what: string): Promise<Map<string, Record<string, unknown>>> {
    const items = new Map<string, Record<string, unknown>>();
    const unique = [...new Set(pks)];
    for (let start = 0; start < unique.length; start += BATCH_GET_KEYS) {
      let pending: Array<Record<string, unknown>> = unique
        .slice(start, start + BATCH_GET_KEYS)
        .map((pk) => ({ [LEDGER_KEY]: pk }));
      for (let round = 0; pending.length > 0; round++) {
        if (round >= BATCH_GET_ROUNDS) throw new LedgerUnavailableError('DynamoDB kept keys unprocessed');
        const request = { [this.tableName]: { Keys: pending, ConsistentRead: true } };
        const answer = await ledgerRequest(
          () => this.doc.send(new BatchGetCommand({ RequestItems: request })),
          what,
        );
        for (const item of answer.Responses?.[this.tableName] ?? [])
          items.set(String(item[LEDGER_KEY]), item);
        pending = (answer.UnprocessedKeys?.[this.tableName]?.Keys ?? []) as Array<Record<string, unknown>>;
      }
    }
    return items;
  }

  /** One page of a query (of an index: eventually consistent). */
  async query(input: Omit<QueryCommandInput, 'TableName'>, what: string): Promise<Record<string, unknown>[]> {
    return (await this.queryPage(input, what)).items;
  }

  /** One page of a query, and where the next one starts (undefined: this was the last). */
  async queryPage(
    input: Omit<QueryCommandInput, 'TableName'>,
    what: string,
  ): Promise<{ items: Record<string, unknown>[]; next: Record<string, unknown> | undefined }> {
    const answer = await ledgerRequest(
      () => this.doc.send(new QueryCommand({ TableName: this.tableName, ...input })),
      what,
    );
    return { items: answer.Items ?? [], next: answer.LastEvaluatedKey };
  }
}
