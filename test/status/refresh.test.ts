import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Ledger } from '../../lib/ledger/messages.ts';
import { refreshStatuses } from '../../lib/status/refresh.ts';
import { AWS, BOT, type Harness, startHarness } from '../support/harness.ts';
import {
  depsFor,
  drainQueue,
  freshLedger,
  NOW,
  seedMessages,
  spec,
  ticking,
  updateCalls,
} from './helpers.ts';
import { type StatusServer, startStatusServer } from './status-server.ts';

let h: Harness;
let source: StatusServer;
let ledger: Ledger;

beforeAll(async () => {
  [h, source] = await Promise.all([startHarness({ timeoutMs: 2_000 }), startStatusServer()]);
  seedMessages(h.emulator, 2001, 10);
});
afterAll(async () => {
  await Promise.all([h.close(), source.close()]);
});
beforeEach(async () => {
  h.emulator.reset();
  h.wakeups.clear();
  ledger = await freshLedger(h);
  source.setDoc('deploy', { ok: true, checks: { passed: 12, total: 12 } });
});
afterEach(async () => {
  await drainQueue(h);
});

const DEPLOY_TEMPLATE =
  '[B]Deploy[/B]: {{#ok}}✅ green{{/ok}}{{^ok}}❌ red{{/ok}} · {{checks.passed}}/{{checks.total}} · {{now}}';

describe('rendering each kind of source into the message', () => {
  it('renders an http-json source with sections and dotted paths in the spec time zone', async () => {
    const { deps } = depsFor(h, ledger);
    const input = spec(789, {
      source: { type: 'http-json', url: `${source.origin}/doc/deploy`, timeoutMs: 1_000 },
      template: DEPLOY_TEMPLATE,
      timezone: 'Europe/Berlin',
    });
    const report = await refreshStatuses({ event: input }, deps);
    expect(report.summary).toEqual({
      updated: 1,
      unchanged: 0,
      deferred: 0,
      failed: 0,
      sourceErrors: 0,
      invalid: 0,
    });
    expect(h.emulator.getMessage(789)?.text).toBe('[B]Deploy[/B]: ✅ green · 12/12 · 2026-11-25 14:05');
  });

  it('renders the inverted section when the data says not ok', async () => {
    source.setDoc('deploy', { ok: false, checks: { passed: 9, total: 12 } });
    const { deps } = depsFor(h, ledger);
    const input = spec(789, {
      source: { type: 'http-json', url: `${source.origin}/doc/deploy` },
      template: DEPLOY_TEMPLATE,
    });
    await refreshStatuses({ event: input }, deps);
    expect(h.emulator.getMessage(789)?.text).toBe('[B]Deploy[/B]: ❌ red · 9/12 · 2026-11-25 13:05');
  });

  it('renders an http-health source as ok and status, up or down', async () => {
    const { deps } = depsFor(h, ledger);
    const template = 'API {{#ok}}up{{/ok}}{{^ok}}down{{/ok}} ({{status}})';
    const report = await refreshStatuses(
      {
        event: {
          messages: [
            spec(2001, { source: { type: 'http-health', url: `${source.origin}/doc/deploy` }, template }),
            spec(2002, {
              source: { type: 'http-health', url: `${source.origin}/status?code=503` },
              template,
            }),
          ],
        },
      },
      deps,
    );
    expect(report.summary).toMatchObject({ updated: 2, sourceErrors: 0 });
    expect(h.emulator.getMessage(2001)?.text).toBe('API up (200)');
    expect(h.emulator.getMessage(2002)?.text).toBe('API down (503)');
  });

  it('renders a none source from the template and now alone, with the static fields', async () => {
    const { deps } = depsFor(h, ledger);
    const buttons = [{ TEXT: 'Open dashboard', LINK: 'https://status.example.com' }];
    await refreshStatuses(
      {
        event: {
          messages: [
            spec(2003, { template: 'Checked {{nowIso}}', fields: { keyboard: buttons, urlPreview: 'N' } }),
            spec(2004, { template: 'Checked {{now}}' }),
          ],
        },
      },
      deps,
    );
    const message = h.emulator.getMessage(2003);
    expect(message?.text).toBe(`Checked ${NOW.toISOString()}`);
    // Two messages go out as one batch, whose commands are query strings: BOT_ID arrives as text.
    expect(message?.keyboard).toMatchObject({ BOT_ID: String(BOT.id), BUTTONS: buttons });
    expect(message?.urlPreview).toBe(false);
    expect(h.emulator.getMessage(2004)?.text).toBe('Checked 2026-11-25 13:05');
  });
});

describe('change detection', () => {
  it('makes no Bitrix24 call when a second run renders the same fields', async () => {
    const { deps } = depsFor(h, ledger);
    const input = spec(789, {
      source: { type: 'http-json', url: `${source.origin}/doc/deploy` },
      template: DEPLOY_TEMPLATE,
    });
    expect((await refreshStatuses({ event: input }, deps)).summary.updated).toBe(1);
    h.emulator.clearCalls();

    const second = await refreshStatuses({ event: input }, deps);
    expect(second.summary).toMatchObject({ updated: 0, unchanged: 1 });
    expect(h.emulator.calls).toEqual([]);

    source.setDoc('deploy', { ok: false, checks: { passed: 11, total: 12 } });
    const third = await refreshStatuses({ event: input }, deps);
    expect(third.summary).toMatchObject({ updated: 1, unchanged: 0 });
    expect(h.emulator.getMessage(789)?.text).toContain('❌ red · 11/12');
  });

  it('makes no Bitrix24 call when a new refresher (a cold start) renders what an earlier one applied', async () => {
    const input = spec(789, {
      source: { type: 'http-json', url: `${source.origin}/doc/deploy` },
      template: DEPLOY_TEMPLATE,
    });
    const clock = ticking(NOW);
    const first = depsFor(h, ledger, { now: clock }).deps;
    expect((await refreshStatuses({ event: input }, first)).summary.updated).toBe(1);
    h.emulator.clearCalls();

    // Another container: its own reconciler, pacer and memory; only the ledger is shared.
    const coldStart = depsFor(h, ledger, { now: clock }).deps;
    const second = await refreshStatuses({ event: input }, coldStart);
    expect(second.summary).toMatchObject({ updated: 0, unchanged: 1 });
    expect(h.emulator.calls).toEqual([]);
    expect(h.wakeups.pending()).toEqual([]);
  });

  it('sends again after a failed update, because only a confirmed apply is remembered', async () => {
    h.emulator.addMessage({ id: 2500, authorId: 1, chatId: 12, text: 'written by a person' });
    const { deps } = depsFor(h, ledger);
    const input = spec(2500);
    expect((await refreshStatuses({ event: input }, deps)).summary.failed).toBe(1);
    h.emulator.clearCalls();
    expect((await refreshStatuses({ event: input }, deps)).summary.failed).toBe(1);
    expect(updateCalls(h.emulator)).toHaveLength(1);
  });
});

describe('when a source fails', () => {
  it('leaves the message as it is with keep, counting a source error and calling nobody', async () => {
    const before = h.emulator.getMessage(2005)?.text;
    const { deps } = depsFor(h, ledger);
    const report = await refreshStatuses(
      {
        event: spec(2005, {
          source: { type: 'http-json', url: `${source.origin}/status?code=500` },
          onSourceError: 'keep',
        }),
      },
      deps,
    );
    expect(report.summary).toMatchObject({ updated: 0, failed: 0, sourceErrors: 1 });
    expect(report.specs).toEqual([
      expect.objectContaining({ messageId: 2005, outcome: 'kept', sourceError: 'SOURCE_HTTP_STATUS' }),
    ]);
    expect(h.emulator.getMessage(2005)?.text).toBe(before);
    expect(h.emulator.calls).toEqual([]);
  });

  it('replaces the message with the error template, rendered with the error', async () => {
    const { deps } = depsFor(h, ledger);
    const report = await refreshStatuses(
      {
        event: spec(2006, {
          source: { type: 'http-json', url: `${source.origin}/doc/missing` },
          onSourceError: { template: '[B]Deploy[/B]: status unavailable ({{error.code}}) · {{now}}' },
        }),
      },
      deps,
    );
    expect(report.summary).toMatchObject({ updated: 1, sourceErrors: 1 });
    expect(h.emulator.getMessage(2006)?.text).toBe(
      '[B]Deploy[/B]: status unavailable (SOURCE_HTTP_STATUS) · 2026-11-25 13:05',
    );
  });

  it('does not hold the other specs back past the slow source’s own timeout', async () => {
    const { deps } = depsFor(h, ledger);
    const report = await refreshStatuses(
      {
        event: {
          messages: [
            spec(2007, {
              source: { type: 'http-json', url: `${source.origin}/slow?ms=5000`, timeoutMs: 400 },
            }),
            spec(2008, { source: { type: 'http-json', url: `${source.origin}/doc/deploy` } }),
            spec(2009),
          ],
        },
      },
      deps,
    );
    // The slow source would answer after 5 s, and its spec would be updated: its timeout kept it.
    expect(report.specs.map(({ messageId, outcome, code }) => ({ messageId, outcome, code }))).toEqual([
      { messageId: 2007, outcome: 'kept', code: 'SOURCE_TIMEOUT' },
      { messageId: 2008, outcome: 'updated', code: undefined },
      { messageId: 2009, outcome: 'updated', code: undefined },
    ]);
    expect(h.emulator.getMessage(2008)?.text).toBe('Status of 2008 at 2026-11-25 13:05');
  });
});

describe('validating the input as a whole', () => {
  it('reports bad specs by index and field while the valid ones run', async () => {
    const { deps } = depsFor(h, ledger);
    const report = await refreshStatuses(
      {
        event: {
          messages: [
            spec(2001, { template: 'first valid' }),
            spec(2002, { botId: 'four' }),
            spec(2003, { source: { type: 'ftp' } }),
            spec(2004, { template: 'second valid' }),
          ],
        },
      },
      deps,
    );
    expect(report.summary).toMatchObject({ updated: 2, invalid: 2 });
    expect(report.issues).toEqual([
      { index: 1, field: 'messages[1].botId', message: 'must be a positive integer' },
      { index: 2, field: 'messages[2].source.type', message: 'must be one of http-json, http-health, none' },
    ]);
    expect(h.emulator.getMessage(2001)?.text).toBe('first valid');
    expect(h.emulator.getMessage(2004)?.text).toBe('second valid');
  });

  it('counts a wrong input as one invalid and calls nobody', async () => {
    const { deps } = depsFor(h, ledger);
    const report = await refreshStatuses({ event: { messages: [] } }, deps);
    expect(report.summary).toEqual({
      updated: 0,
      unchanged: 0,
      deferred: 0,
      failed: 0,
      sourceErrors: 0,
      invalid: 1,
    });
    expect(h.emulator.calls).toEqual([]);
  });
});

describe('permanent failures', () => {
  it('counts every status as failed with LEDGER_UNAVAILABLE, and calls nobody, when DynamoDB cannot be reached', async () => {
    const dead = new DynamoDBClient({ ...AWS, endpoint: 'http://127.0.0.1:9', maxAttempts: 1 });
    const { deps } = depsFor(h, new Ledger({ tableName: 'ledger-unreachable', client: dead }));
    const report = await refreshStatuses({ event: { messages: [spec(2001), spec(2002)] } }, deps);
    expect(report.specs.map(({ outcome, code }) => ({ outcome, code }))).toEqual([
      { outcome: 'failed', code: 'LEDGER_UNAVAILABLE' },
      { outcome: 'failed', code: 'LEDGER_UNAVAILABLE' },
    ]);
    expect(h.emulator.calls).toEqual([]);
    expect(h.wakeups.sent).toEqual([]);
    dead.destroy();
  });

  it('counts a message the bot did not write as failed with ACCESS_DENIED, alone or in a batch', async () => {
    h.emulator.addMessage({ id: 2600, authorId: 1, chatId: 12, text: 'a person wrote this' });
    const { deps } = depsFor(h, ledger);
    const alone = await refreshStatuses({ event: spec(2600) }, deps);
    expect(alone.specs).toEqual([expect.objectContaining({ outcome: 'failed', code: 'ACCESS_DENIED' })]);

    const batched = await refreshStatuses(
      { event: { messages: [spec(2001, { template: 'batched ok' }), spec(2600), spec(2002)] } },
      deps,
    );
    expect(batched.summary).toMatchObject({ updated: 2, failed: 1, deferred: 0 });
    expect(batched.specs[1]).toMatchObject({ messageId: 2600, outcome: 'failed', code: 'ACCESS_DENIED' });
    expect(h.emulator.getMessage(2600)?.text).toBe('a person wrote this');
    expect(h.emulator.getMessage(2001)?.text).toBe('batched ok');
    expect(h.wakeups.pending()).toEqual([]);
  });

  it('fails a bot the portal secret does not list without calling Bitrix24', async () => {
    const { deps } = depsFor(h, ledger);
    const report = await refreshStatuses({ event: spec(789, { botId: 999 }) }, deps);
    expect(report.specs).toEqual([expect.objectContaining({ outcome: 'failed', code: 'BOT_NOT_FOUND' })]);
    expect(h.emulator.calls).toEqual([]);
  });

  it('fails a render that is empty or over 20,000 characters instead of sending or cutting it', async () => {
    const { deps } = depsFor(h, ledger);
    const report = await refreshStatuses(
      { event: spec(789, { template: `{{#rows}}${'x'.repeat(100)}{{/rows}}`, source: { type: 'none' } }) },
      deps,
    );
    // `rows` is missing: the section renders nothing, an empty text is refused too.
    expect(report.specs[0]).toMatchObject({ outcome: 'failed', code: 'MESSAGE_EMPTY' });
    source.setDoc('rows', { rows: Array.from({ length: 201 }, () => 1) });
    const long = await refreshStatuses(
      {
        event: spec(789, {
          template: `{{#rows}}${'x'.repeat(100)}{{/rows}}`,
          source: { type: 'http-json', url: `${source.origin}/doc/rows` },
        }),
      },
      deps,
    );
    expect(long.specs[0]).toMatchObject({ outcome: 'failed', code: 'MESSAGE_TOO_LONG' });
    expect(h.emulator.calls).toEqual([]);
  });
});

describe('metrics and logs', () => {
  it('emits the summary as count metrics', async () => {
    const { deps, metrics } = depsFor(h, ledger);
    await refreshStatuses({ event: { messages: [spec(2001), spec(2002, { botId: 0 })] } }, deps);
    expect(Object.fromEntries(metrics.map(({ name, value }) => [name, value]))).toEqual({
      StatusUpdated: 1,
      StatusUnchanged: 0,
      StatusDeferred: 0,
      StatusFailed: 0,
      StatusSourceErrors: 0,
      StatusInvalid: 1,
    });
    expect(new Set(metrics.map(({ unit }) => unit))).toEqual(new Set(['Count']));
  });
});
