import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Ledger } from '../../lib/ledger/messages.ts';
import type { IncomingEdit, MessageKey, Timing } from '../../lib/ledger/model.ts';
import { createLedgerTable, type LocalDynamoDb, startLocalDynamoDb } from '../../local/dynamodb.ts';
import { LOCAL_AWS } from '../../local/stack/local-aws.ts';
import {
  apiRefusals,
  type EditPath,
  EditTally,
  observeLedger,
  statusRefusals,
} from '../../local/stack/sandbox/edit-tally.ts';

const TIMING: Timing = { messageMinIntervalMs: 0, ambiguousSettleMs: 1_000 };

let local: LocalDynamoDb;
let client: DynamoDBClient;
let ledger: Ledger;
let tally: EditTally;
// Each test edits messages of its own: the ledger is shared.
let nextMessageId = 1_000;

beforeAll(async () => {
  local = await startLocalDynamoDb();
  client = new DynamoDBClient({ ...LOCAL_AWS, endpoint: local.url });
  await createLedgerTable(client, 'ledger');
});

afterAll(async () => {
  client?.destroy();
  await local?.close();
});

beforeEach(() => {
  ledger = new Ledger({ tableName: 'ledger', client });
  tally = new EditTally();
  observeLedger(ledger, tally);
});

function message(): MessageKey {
  nextMessageId += 1;
  return { portal: 'demo', botId: 456, messageId: nextMessageId };
}

let clock = Date.now();
/** An edit of `key`, accepted `at` (by default 10 ms after the edit before it). */
function edit(key: MessageKey, editId: string, fields: IncomingEdit['fields'], at?: number): IncomingEdit {
  clock += 10;
  return { ...key, editId, fields, at: at ?? clock, seq: '' };
}

/** Merges as a handler of `path` does; resolves with the message's version. */
async function merge(path: EditPath, key: MessageKey, edits: IncomingEdit[]): Promise<number> {
  const run = tally.handler(path, async () => (await ledger.merge(key, edits, TIMING)).state.version);
  return run(undefined, undefined);
}

async function applied(key: MessageKey, version: number): Promise<void> {
  await ledger.markApplied(key, version, Date.now(), TIMING);
}

describe('the edits table of the sandbox page', () => {
  it('counts 17 of 20 edits of three messages as superseded and the last of each as applied, once each message is applied', async () => {
    const keys = [message(), message(), message()];
    const versions = new Map<MessageKey, number>();
    for (let i = 0; i < 20; i++) {
      const key = keys[i % 3] as MessageKey;
      versions.set(key, await merge('api', key, [edit(key, `e-${i}`, { message: `Build #${i}` })]));
    }
    expect(tally.totals().api).toMatchObject({ recorded: 20, deferred: 20, applied: 0, superseded: 0 });
    for (const [key, version] of versions) await applied(key, version);
    expect(tally.totals().api).toEqual({
      recorded: 20,
      applied: 3,
      superseded: 17,
      deferred: 0,
      failed: 0,
      unchanged: 0,
      refused: 0,
    });
  });

  it('counts an edit that arrives after a later edit of its message as superseded at once, as the drain says', async () => {
    const key = message();
    await merge('queue', key, [edit(key, 'later', { message: 'Build #2' }, 2_000)]);
    await merge('queue', key, [edit(key, 'earlier', { message: 'Build #1' }, 1_000)]);
    expect(tally.totals().queue).toMatchObject({ recorded: 2, superseded: 1, deferred: 1 });
  });

  it('counts an edit applied by a call that started before a later edit replaced it as applied, not superseded', async () => {
    const key = message();
    const first = await merge('api', key, [edit(key, 'first', { message: 'Build #1' })]);
    const second = await merge('api', key, [edit(key, 'second', { message: 'Build #2' })]);
    await applied(key, first);
    expect(tally.totals().api).toMatchObject({ applied: 1, superseded: 0, deferred: 1 });
    await applied(key, second);
    expect(tally.totals().api).toMatchObject({ recorded: 2, applied: 2, superseded: 0, deferred: 0 });
  });

  it('counts two edits of different fields of one message, applied together, as applied both', async () => {
    const key = message();
    await merge('status', key, [edit(key, 'text', { message: 'Build #1' })]);
    const version = await merge('status', key, [edit(key, 'buttons', { keyboard: 'N' })]);
    await applied(key, version);
    expect(tally.totals().status).toMatchObject({ recorded: 2, applied: 2, superseded: 0 });
  });

  it("counts a version's edit that Bitrix24 refused for good as failed, the edit it replaced as superseded, and a replay of it as a new edit of its own path", async () => {
    const key = message();
    await merge('api', key, [edit(key, 'refused-1', { message: 'Not mine' })]);
    const version = await merge('api', key, [edit(key, 'refused-2', { message: 'Not mine either' })]);
    const error = { code: 'ACCESS_DENIED', description: 'Access denied', at: Date.now() };
    expect(await ledger.markFailed(key, version, error)).toBe(true);
    expect(tally.totals().api).toMatchObject({ recorded: 2, failed: 1, superseded: 1, deferred: 0 });

    const replayed = await merge('queue', key, [
      edit(key, 'failed-2-replay', { message: 'Not mine either' }),
    ]);
    expect(tally.totals().queue).toMatchObject({ recorded: 1, deferred: 1 });
    expect(await ledger.markFailed(key, replayed, error)).toBe(true);
    expect(tally.totals().queue).toMatchObject({ recorded: 1, failed: 1, deferred: 0 });
    expect(tally.totals().api).toMatchObject({ failed: 1 });
  });

  it('counts an edit asking for what the message already shows as unchanged, and an edit met again once', async () => {
    const key = message();
    const version = await merge('status', key, [edit(key, 'shown', { message: 'Deploy #17: green' })]);
    await applied(key, version);
    await merge('status', key, [edit(key, 'again', { message: 'Deploy #17: green' })]);
    // A redelivered record: the same edit id.
    await merge('status', key, [edit(key, 'again', { message: 'Deploy #17: green' })]);
    expect(tally.totals().status).toMatchObject({ recorded: 2, applied: 1, unchanged: 1 });
  });

  it('counts the edits a handler outside every path merges apart, and lists the portals edits were recorded for', async () => {
    const key = message();
    const elsewhere = { ...message(), portal: 'acme' };
    await ledger.merge(key, [edit(key, 'unowned', { message: 'x' })], TIMING);
    await merge('queue', elsewhere, [edit(elsewhere, 'acme-1', { message: 'y' })]);
    expect(tally.totals().other).toMatchObject({ recorded: 1, deferred: 1 });
    expect(tally.portals()).toEqual(['demo', 'acme']);
  });
});

describe('refusals on the edits table', () => {
  const answer = (statusCode: number, body: unknown) => ({
    statusCode,
    headers: {},
    body: JSON.stringify(body),
  });

  it('counts an API request answered with an error before anything was recorded, and no other', async () => {
    const refused = tally.handler(
      'api',
      async () => answer(400, { error: 'INVALID_REQUEST_BODY' }),
      apiRefusals,
    );
    await refused(undefined, undefined);
    const key = message();
    const failedUpstream = tally.handler(
      'api',
      async () => {
        await ledger.merge(key, [edit(key, 'recorded', { message: 'x' })], TIMING);
        return answer(403, { error: 'ACCESS_DENIED' });
      },
      apiRefusals,
    );
    await failedUpstream(undefined, undefined);
    const duplicate = tally.handler(
      'api',
      async () => answer(202, { result: true, duplicate: true }),
      apiRefusals,
    );
    await duplicate(undefined, undefined);
    const threw = tally.handler('api', async () => Promise.reject(new Error('bug')), apiRefusals);
    await expect(threw(undefined, undefined)).rejects.toThrow('bug');
    expect(tally.totals().api).toMatchObject({ recorded: 1, refused: 2 });
  });

  it("counts a webhook batch's commands that were not recorded", () => {
    const batch = answer(200, {
      result: {
        result: { a: { result: true }, b: { result: true } },
        result_error: { c: { error: 'INVALID_REQUEST_BODY' }, d: { error: 'ACCESS_DENIED' } },
        result_deferred: [],
      },
    });
    // a, b and d were recorded (d then failed in Bitrix24); c was refused.
    expect(apiRefusals(batch, 3)).toBe(1);
  });

  it("counts a status run's invalid specs and the renderings it could not record", () => {
    const summary = { updated: 1, unchanged: 1, deferred: 0, failed: 2, sourceErrors: 1, invalid: 1 };
    // One failed rendering was recorded (it failed in Bitrix24), one never was.
    expect(statusRefusals(summary, 3)).toBe(2);
  });
});
