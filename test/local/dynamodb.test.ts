import {
  ConditionalCheckFailedException,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIRTY_INDEX, DIRTY_PORTAL, DUE_AT, LEDGER_KEY, LEDGER_TABLE } from '../../lib/ledger/table.ts';
import { createLedgerTable, type LocalDynamoDb, startLocalDynamoDb } from '../../local/dynamodb.ts';
import { LOCAL_AWS } from '../../local/stack/local-aws.ts';

const TABLE = 'ledger-local-test';
let local: LocalDynamoDb;
let client: DynamoDBClient;

beforeAll(async () => {
  local = await startLocalDynamoDb();
  client = new DynamoDBClient({ ...LOCAL_AWS, endpoint: local.url });
  await createLedgerTable(client, TABLE);
});

afterAll(async () => {
  client?.destroy();
  await local?.close();
});

/** Sets `version` to `next` only while it is still `expected`, as a ledger merge does. */
function bumpVersion(pk: string, expected: number, next: number) {
  return client.send(
    new UpdateItemCommand({
      TableName: TABLE,
      Key: { [LEDGER_KEY]: { S: pk } },
      UpdateExpression: 'SET #v = :next',
      ConditionExpression: 'attribute_not_exists(#v) OR #v = :expected',
      ExpressionAttributeNames: { '#v': 'version' },
      ExpressionAttributeValues: { ':next': { N: String(next) }, ':expected': { N: String(expected) } },
      ReturnValues: 'ALL_NEW',
    }),
  );
}

describe('the local DynamoDB (dynalite on loopback, through the real SDK)', () => {
  it('listens on 127.0.0.1 only', () => {
    expect(local.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('creates the ledger table with the key schema and the sparse dirty index of LEDGER_TABLE', async () => {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: TABLE }));
    expect(Table?.TableStatus).toBe('ACTIVE');
    expect(Table?.KeySchema).toEqual(LEDGER_TABLE.KeySchema);
    const index = Table?.GlobalSecondaryIndexes?.find((i) => i.IndexName === DIRTY_INDEX);
    expect(index?.KeySchema).toEqual(LEDGER_TABLE.GlobalSecondaryIndexes[0].KeySchema);
  });

  it('applies a conditional UpdateItem and refuses a stale one with ConditionalCheckFailedException', async () => {
    const pk = 'msg#acme#456#1';
    const first = await bumpVersion(pk, 0, 1);
    expect(first.Attributes?.version).toEqual({ N: '1' });
    const second = await bumpVersion(pk, 1, 2);
    expect(second.Attributes?.version).toEqual({ N: '2' });

    // A writer that read version 1 before the second write lost the race.
    await expect(bumpVersion(pk, 1, 2)).rejects.toBeInstanceOf(ConditionalCheckFailedException);
    const stored = await client.send(
      new GetItemCommand({ TableName: TABLE, Key: { [LEDGER_KEY]: { S: pk } }, ConsistentRead: true }),
    );
    expect(stored.Item?.version).toEqual({ N: '2' });
  });

  it('answers a Query on the dirty index with only the items that carry dirtyPortal, most overdue first', async () => {
    const put = (pk: string, extra: Record<string, { S: string } | { N: string }> = {}) =>
      client.send(new PutItemCommand({ TableName: TABLE, Item: { [LEDGER_KEY]: { S: pk }, ...extra } }));
    await put('msg#beta#1#10', { [DIRTY_PORTAL]: { S: 'beta' }, [DUE_AT]: { N: '2000' } });
    await put('msg#beta#1#11', { [DIRTY_PORTAL]: { S: 'beta' }, [DUE_AT]: { N: '1000' } });
    await put('msg#beta#1#12'); // applied: no dirtyPortal, so not in the index
    await put('msg#beta#1#13', { [DIRTY_PORTAL]: { S: 'beta' }, [DUE_AT]: { N: '9000' } }); // not due yet
    await put('msg#gamma#1#10', { [DIRTY_PORTAL]: { S: 'gamma' }, [DUE_AT]: { N: '1000' } });

    const { Items } = await client.send(
      new QueryCommand({
        TableName: TABLE,
        IndexName: DIRTY_INDEX,
        KeyConditionExpression: '#dp = :portal AND #due <= :now',
        ExpressionAttributeNames: { '#dp': DIRTY_PORTAL, '#due': DUE_AT },
        ExpressionAttributeValues: { ':portal': { S: 'beta' }, ':now': { N: '5000' } },
      }),
    );
    expect(Items?.map((item) => item[LEDGER_KEY]?.S)).toEqual(['msg#beta#1#11', 'msg#beta#1#10']);
  });

  it('drops an item from the dirty index once its dirtyPortal is removed', async () => {
    const pk = 'msg#delta#1#20';
    await client.send(
      new PutItemCommand({
        TableName: TABLE,
        Item: { [LEDGER_KEY]: { S: pk }, [DIRTY_PORTAL]: { S: 'delta' }, [DUE_AT]: { N: '1' } },
      }),
    );
    const dirty = () =>
      client.send(
        new QueryCommand({
          TableName: TABLE,
          IndexName: DIRTY_INDEX,
          KeyConditionExpression: '#dp = :portal',
          ExpressionAttributeNames: { '#dp': DIRTY_PORTAL },
          ExpressionAttributeValues: { ':portal': { S: 'delta' } },
        }),
      );
    expect((await dirty()).Count).toBe(1);
    await client.send(
      new UpdateItemCommand({
        TableName: TABLE,
        Key: { [LEDGER_KEY]: { S: pk } },
        UpdateExpression: 'REMOVE #dp, #due',
        ExpressionAttributeNames: { '#dp': DIRTY_PORTAL, '#due': DUE_AT },
      }),
    );
    expect((await dirty()).Count).toBe(0);
  });
});
