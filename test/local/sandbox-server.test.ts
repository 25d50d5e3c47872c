import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../../lib/ledger/messages.ts';
import type { Timing } from '../../lib/ledger/model.ts';
import { createLedgerTable, type LocalDynamoDb, startLocalDynamoDb } from '../../local/dynamodb.ts';
import { summariseRequest } from '../../local/stack/activity.ts';
import { LOCAL_AWS } from '../../local/stack/local-aws.ts';
import { bbcodeToHtml } from '../../local/stack/sandbox/bbcode.ts';
import { EDIT_PATHS, type EditCounts, type EditTotals } from '../../local/stack/sandbox/edit-tally.ts';
import { DemoSource, type SandboxServer, startSandboxServer } from '../../local/stack/sandbox/server.ts';
import type { SandboxActions, SandboxState } from '../../local/stack/sandbox/state.ts';

function counts(some: Partial<EditCounts> = {}): EditCounts {
  return {
    recorded: 0,
    applied: 0,
    superseded: 0,
    deferred: 0,
    failed: 0,
    unchanged: 0,
    refused: 0,
    ...some,
  };
}

function edits(some: Partial<Record<keyof EditTotals, Partial<EditCounts>>> = {}): EditTotals {
  return Object.fromEntries(EDIT_PATHS.map((path) => [path, counts(some[path])])) as EditTotals;
}

function state(text: string, overrides: Partial<SandboxState> = {}): SandboxState {
  return {
    generatedAt: new Date().toISOString(),
    portal: 'demo',
    portalHost: '127.0.0.1:8025',
    mode: 'emulator',
    apiUrl: 'http://127.0.0.1:3000/rest/imbot.v2.Chat.Message.update',
    botId: 456,
    chat: {
      id: 12,
      messages: [
        {
          id: 789,
          author: 'Build bot (bot 456)',
          botId: 456,
          text,
          system: false,
          editCount: 0,
          updatedAt: new Date(0).toISOString(),
        },
      ],
    },
    queue: {
      waiting: 1,
      inFlight: 0,
      failed: 1,
      pending: [{ editId: 'e-2', messageId: 789, text: 'next', receiveCount: 0, state: 'waiting' }],
      failures: [
        {
          editId: 'e-1',
          messageId: 790,
          text: 'old',
          errorCode: 'ACCESS_DENIED',
          errorDescription: 'The bot may not edit this message',
          attempts: '1',
        },
      ],
      wakeups: { ready: 0, delayed: 1, inFlight: 0 },
    },
    requests: [],
    edits: edits(),
    drain: {
      running: true,
      note: 'Drain running',
      totals: { merged: 9, applied: 3, superseded: 2, failed: 1, deferred: 4, calls: 2 },
    },
    schedules: [],
    ...overrides,
  };
}

const servers: SandboxServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(
  getState: () => SandboxState,
  actions: SandboxActions = {},
  demoSource?: DemoSource,
): Promise<SandboxServer> {
  const server = await startSandboxServer({
    port: 0,
    getState: async () => getState(),
    actions,
    ...(demoSource ? { demoSource } : {}),
  });
  servers.push(server);
  return server;
}

/** Reads server-sent `state` events until `accept` holds for one of them. */
async function nextState(url: string, accept: (data: string) => boolean): Promise<string> {
  const controller = new AbortController();
  const response = await fetch(`${url}/events`, { signal: controller.signal });
  const reader = response.body?.getReader();
  if (!reader) throw new Error('no event stream');
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`stream ended; got ${buffer}`);
      buffer += Buffer.from(value).toString('utf8');
      for (const block of buffer.split('\n\n')) {
        const data = /^event: state\ndata: (.*)$/m.exec(block)?.[1];
        if (data && accept(data)) return data;
      }
    }
  } finally {
    controller.abort();
  }
}

describe('the sandbox page', () => {
  it('carries the messages and the queue panel in its HTML, readable without JavaScript', async () => {
    const server = await serve(() => state('[B]Build #41[/B]: running'));
    const html = await (await fetch(`${server.url}/`)).text();
    expect(html).toContain('<strong>Build #41</strong>: running');
    expect(html).toContain('data-testid="queue-waiting">1<');
    expect(html).toContain('ACCESS_DENIED');
    expect(html).toContain('The bot may not edit this message');
    expect(html).toContain('curl -X POST');
  });

  it('serves its data as JSON at /api/state', async () => {
    const server = await serve(() => state('hello'));
    const body = (await (await fetch(`${server.url}/api/state`)).json()) as SandboxState;
    expect(body.chat?.messages[0]?.text).toBe('hello');
  });

  it('pushes the changed parts of the page to open event streams', async () => {
    let text = 'before';
    const server = await serve(() => state(text));
    await nextState(server.url, (data) => data.includes('before'));
    text = 'after';
    server.notify();
    const pushed = await nextState(server.url, (data) => data.includes('after'));
    expect(Object.keys(JSON.parse(pushed))).toEqual([
      'messages',
      'edits',
      'queue',
      'wakeups',
      'requests',
      'schedules',
    ]);
  });

  it('sends an edit from a plain form post and goes back to the page', async () => {
    const edits: unknown[] = [];
    const server = await serve(() => state('x'), {
      sendEdit: async (edit) => {
        edits.push(edit);
        return { ok: true, summary: 'HTTP 200 applied' };
      },
    });
    const response = await fetch(`${server.url}/demo/edit`, {
      method: 'POST',
      body: new URLSearchParams({ messageId: '789', text: 'From the form', async: '1' }),
      redirect: 'manual',
    });
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe('/');
    expect(edits).toEqual([{ messageId: 789, text: 'From the form', async: true }]);
  });

  it("answers the page's own edit post with the API's status, editId and error, to show beside the form", async () => {
    const answer = {
      ok: false,
      summary: 'HTTP 400 INVALID_REQUEST_BODY: fields.message must be a string · editId e-9',
      status: 400,
      editId: 'e-9',
      error: 'INVALID_REQUEST_BODY',
      description: 'fields.message must be a string',
    };
    const server = await serve(() => state('x'), { sendEdit: async () => answer });
    const response = await fetch(`${server.url}/demo/edit`, {
      method: 'POST',
      headers: { 'x-sandbox-fetch': '1' },
      body: new URLSearchParams({ messageId: '789', text: 'From the page' }),
    });
    expect(response.status).toBe(502);
    expect(await response.json()).toEqual(answer);
  });

  it("shows every path's edits by outcome, with each outcome's total across the paths", async () => {
    const server = await serve(() =>
      state('x', {
        edits: edits({
          api: { recorded: 5, applied: 5, refused: 1 },
          queue: { recorded: 20, applied: 3, superseded: 17, refused: 2 },
          status: { recorded: 7, applied: 1, unchanged: 5, deferred: 1 },
        }),
      }),
    );
    const html = await (await fetch(`${server.url}/`)).text();
    const cell = (path: string, outcome: string) =>
      new RegExp(`data-testid="edits-${path}-${outcome}">(\\d+)<`).exec(html)?.[1];
    const outcomes = ['recorded', 'applied', 'superseded', 'deferred', 'failed', 'unchanged', 'refused'];
    expect(outcomes.map((outcome) => cell('api', outcome))).toEqual(['5', '5', '0', '0', '0', '0', '1']);
    expect(outcomes.map((outcome) => cell('queue', outcome))).toEqual(['20', '3', '17', '0', '0', '0', '2']);
    expect(outcomes.map((outcome) => cell('status', outcome))).toEqual(['7', '1', '0', '1', '0', '5', '0']);
    const rows = [...html.matchAll(/<tr[^>]*><th scope="row"[^>]*>([^<]+)<\/th>(.*?)<\/tr>/g)].map((row) => [
      row[1],
      ...[...(row[2] ?? '').matchAll(/>(\d+)</g)].map((n) => n[1]),
    ]);
    expect(rows).toEqual([
      ['recorded', '5', '20', '7', '32'],
      ['applied', '5', '3', '1', '9'],
      ['superseded', '0', '17', '0', '17'],
      ['deferred, waiting', '0', '0', '1', '1'],
      ['failed in Bitrix24', '0', '0', '0', '0'],
      ['unchanged', '0', '0', '5', '5'],
      ['refused, not recorded', '1', '2', '0', '3'],
    ]);
    // No edit came from elsewhere: no column for it.
    expect(html).not.toContain('data-testid="edits-other-');
  });

  it("labels Bitrix24's failures, refusals and the failed-edits queue apart, and says what the queue consumers did", async () => {
    const server = await serve(() => state('x'));
    const html = (await (await fetch(`${server.url}/`)).text()).replace(/\s+/g, ' ');
    expect(html).toContain('<dt>on the failed-edits queue</dt><dd data-testid="queue-failed">1</dd>');
    expect(html).not.toMatch(/<dt>failed<\/dt>/);
    expect(html).toMatch(/<th scope="row"[^>]*>failed in Bitrix24<\/th>/);
    expect(html).toMatch(/<th scope="row"[^>]*>refused, not recorded<\/th>/);
    expect(html).toContain(
      'the reconcile applied <span data-testid="reconcile-applied">3 messages</span> in <span data-testid="drain-calls">2 Bitrix24 calls</span>',
    );
    expect(html).toContain('<span data-testid="drain-handed-back">4 edit records</span> back to the queue');
  });

  it('marks a status message as re-rendered by its schedule, in the chat and in the edit form', async () => {
    const withStatus = state('x');
    withStatus.chat?.messages.push({
      id: 791,
      author: 'Build bot (bot 456)',
      botId: 456,
      text: 'Deploy #17: green',
      system: false,
      editCount: 1,
      updatedAt: new Date(0).toISOString(),
      statusSchedule: { name: 'deploy status', everyMs: 10_000 },
    });
    const server = await serve(() => withStatus);
    const html = (await (await fetch(`${server.url}/`)).text()).replace(/\s+/g, ' ');
    const note = /data-testid="status-message-791">(.*?)<\/div>/.exec(html)?.[1]?.replace(/<[^>]+>/g, '');
    expect(note).toBe(
      'status message re-rendered by the schedule “deploy status” every 10 seconds: an edit sent here lasts until its next run',
    );
    expect(html).not.toContain('data-testid="status-message-789"');
    expect(html).toContain('<option value="791">#791 (status message)</option>');
    expect(html).toContain('<option value="789">#789</option>');
  });

  it('keeps an answer line outside each live part whose buttons answer, so a redraw of the part keeps it', async () => {
    const server = await serve(() => state('x'));
    const html = await (await fetch(`${server.url}/`)).text();
    for (const part of ['queue', 'schedules']) {
      expect(html).toMatch(
        new RegExp(
          `<div id="${part}" data-fragment>[\\s\\S]*?</div><output class="answer" data-answer-for="${part}"`,
        ),
      );
    }
  });

  it("shows the portal work queue's depth, and says there is no ledger to read wake-ups from without one", async () => {
    const server = await serve(() => state('x'));
    const body = (await (await fetch(`${server.url}/api/state`)).json()) as SandboxState;
    expect(body.wakeups).toBeUndefined();
    const html = await (await fetch(`${server.url}/`)).text();
    expect(html).toContain('<div id="wakeups" data-fragment>');
    expect(html).toContain('No ledger to read the wake-ups from.');
    expect(html).toContain('data-testid="wakeups-delayed">1<');
  });

  it('refuses an edit form without a text', async () => {
    const server = await serve(() => state('x'), {
      sendEdit: async () => ({ ok: true, summary: 'HTTP 200 applied' }),
    });
    const response = await fetch(`${server.url}/demo/edit`, {
      method: 'POST',
      body: new URLSearchParams({ messageId: '789', text: '' }),
    });
    expect(response.status).toBe(400);
  });

  it('flips the demo build status and refreshes the schedules', async () => {
    const demo = new DemoSource();
    let refreshed = 0;
    const refreshStatus = async () => {
      refreshed += 1;
      return { ok: true, summary: 'Ran the status schedules.' };
    };
    const server = await serve(() => state('x'), { refreshStatus }, demo);
    expect(await (await fetch(`${server.url}/demo/deploy-status.json`)).json()).toEqual({
      ok: true,
      checks: { passed: 12, total: 12 },
    });
    await fetch(`${server.url}/demo/deploy-status`, { method: 'POST', headers: { 'x-sandbox-fetch': '1' } });
    expect(demo.data()).toEqual({ ok: false, checks: { passed: 9, total: 12 } });
    expect(refreshed).toBe(1);
  });

  it('draws a keyboard as rows of buttons and an attach as its blocks, escaping every value', async () => {
    const rich = state('x');
    const [message] = rich.chat?.messages ?? [];
    if (!message) throw new Error('no message in the fixture');
    message.keyboard = {
      BUTTONS: [
        { TEXT: 'Open build', LINK: 'https://ci.example.com/41', BG_COLOR: '#29619b', TEXT_COLOR: '#fff' },
        { TEXT: 'Retry <now>', COMMAND: 'retry' },
        { TYPE: 'NEWLINE' },
        { TEXT: 'Evil', LINK: 'javascript:alert(1)', DISPLAY: 'BLOCK' },
      ],
    };
    message.attach = {
      COLOR: '#c62828',
      BLOCKS: [
        { MESSAGE: '[B]Build #41[/B] failed' },
        { DELIMITER: { SIZE: 200 } },
        { GRID: [{ NAME: 'Branch', VALUE: 'main' }] },
        { LINK: { NAME: 'Logs', LINK: 'https://ci.example.com/41/logs', DESC: 'last 100 lines' } },
      ],
    };
    const server = await serve(() => rich);
    const html = await (await fetch(`${server.url}/`)).text();
    const keyboard =
      /<div class="keyboard" data-testid="keyboard-789">(.*?)<\/div><\/div>/s.exec(html)?.[1] ?? '';
    expect([...keyboard.matchAll(/<button[^>]*>([^<]*)<\/button>/g)].map((m) => m[1])).toEqual([
      'Open build',
      'Retry &lt;now&gt;',
      'Evil',
    ]);
    expect(keyboard.match(/class="kb-row"/g)).toHaveLength(2);
    expect(keyboard).toContain('style="background:#29619b;color:#fff"');
    expect(html).not.toContain('javascript:');
    expect(html).toContain('<strong>Build #41</strong> failed');
    expect(html).toContain('<dt>Branch</dt><dd>main</dd>');
    expect(html).toContain('<a href="https://ci.example.com/41/logs" rel="noreferrer">Logs</a>');
    expect(html).toContain('data-testid="attach-789" style="border-color:#c62828"');
  });

  it("shows a real portal's curl with the configured bot, and how to get a message id", async () => {
    const server = await serve(() => state('x', { mode: 'real-portal', chat: undefined, botId: 321 }));
    const html = await (await fetch(`${server.url}/`)).text();
    expect(html).toContain('{&quot;botId&quot;:321,&quot;messageId&quot;:&lt;message id&gt;,');
    expect(html).toContain('npm run b24 -- send --dialog chat&lt;chat id&gt;');
    expect(html).not.toContain('456');
  });

  it('has no busy button or demo source against a real portal', async () => {
    const server = await serve(() => state('x', { mode: 'real-portal', chat: undefined }));
    const html = await (await fetch(`${server.url}/`)).text();
    expect(html).toContain('Messages live in your portal');
    expect((await fetch(`${server.url}/demo/busy`, { method: 'POST' })).status).toBe(404);
    expect((await fetch(`${server.url}/demo/deploy-status.json`)).status).toBe(404);
  });
});

describe('the ledger on the sandbox page', () => {
  const TIMING: Timing = { messageMinIntervalMs: 0, ambiguousSettleMs: 1_000 };
  let local: LocalDynamoDb;
  let client: DynamoDBClient;
  let ledger: Ledger;

  beforeAll(async () => {
    local = await startLocalDynamoDb();
    client = new DynamoDBClient({ ...LOCAL_AWS, endpoint: local.url });
    await createLedgerTable(client, 'ledger');
    ledger = new Ledger({ tableName: 'ledger', client });
  });

  afterAll(async () => {
    client?.destroy();
    await local?.close();
  });

  async function serveWithLedger(): Promise<SandboxServer> {
    const server = await startSandboxServer({
      port: 0,
      getState: async () => state('Build #41: running…'),
      actions: {},
      ledger: { ledger, timing: TIMING },
    });
    servers.push(server);
    return server;
  }

  async function ledgerOf(server: SandboxServer) {
    const body = (await (await fetch(`${server.url}/api/state`)).json()) as SandboxState;
    return body.chat?.messages[0]?.ledger;
  }

  async function record(text: string, editId: string): Promise<number> {
    const key = { portal: 'demo', botId: 456, messageId: 789 };
    const merged = await ledger.merge(
      key,
      [{ ...key, at: Date.now(), seq: '', editId, fields: { message: text } }],
      TIMING,
    );
    return merged.state.version;
  }

  it('says no edits are recorded for a message the ledger has no item for', async () => {
    const server = await serveWithLedger();
    expect(await ledgerOf(server)).toBeNull();
    expect(await (await fetch(`${server.url}/`)).text()).toContain('Ledger: no edits recorded');
  });

  it('shows an applied edit as applied, with its desired text, then a refused one as failed with its code', async () => {
    const server = await serveWithLedger();
    const key = { portal: 'demo', botId: 456, messageId: 789 };

    const first = await record('Build #41: passed', 'e-applied');
    expect(await ledgerOf(server)).toMatchObject({ status: 'pending', version: first, pendingEditIds: 1 });
    await ledger.markApplied(key, first, Date.now(), TIMING);
    expect(await ledgerOf(server)).toEqual({
      text: 'Build #41: passed',
      keyboard: false,
      attach: false,
      status: 'applied',
      version: first,
      appliedVersion: first,
      pendingEditIds: 0,
    });

    const second = await record('Build #41: refused', 'e-refused');
    const refusal = {
      code: 'ACCESS_DENIED',
      description: 'The bot may not edit this message',
      at: Date.now(),
    };
    await ledger.markFailed(key, second, refusal);
    expect(await ledgerOf(server)).toMatchObject({
      text: 'Build #41: refused',
      status: 'failed',
      error: { code: 'ACCESS_DENIED', description: 'The bot may not edit this message' },
      version: second,
      appliedVersion: first,
    });
    const html = await (await fetch(`${server.url}/`)).text();
    expect(html).toContain('<strong class="bad">failed</strong> ACCESS_DENIED');
    expect(html).toContain('“Build #41: refused”');
  });

  describe("the portal's wake-ups", () => {
    // A portal of its own: the tests above leave no portal item of it.
    const PORTAL = 'wakeups';

    async function serveWakeups(): Promise<SandboxServer> {
      const server = await startSandboxServer({
        port: 0,
        getState: async () => state('x', { portal: PORTAL }),
        actions: {},
        ledger: { ledger, timing: TIMING },
      });
      servers.push(server);
      return server;
    }

    async function wakeupsOf(server: SandboxServer) {
      return ((await (await fetch(`${server.url}/api/state`)).json()) as SandboxState).wakeups;
    }

    async function shown(server: SandboxServer, testId: string): Promise<string> {
      const html = await (await fetch(`${server.url}/`)).text();
      const match = new RegExp(`data-testid="${testId}">(.*?)</span>\\s*(?:·|</li>)`, 's').exec(html);
      return (match?.[1] ?? '').replace(/<[^>]+>/g, '');
    }

    it('says none is scheduled for a portal nothing was merged into', async () => {
      const server = await serveWakeups();
      expect(await wakeupsOf(server)).toEqual([{ portal: PORTAL, wakeAt: 'none', leaseHeld: false }]);
      expect(await shown(server, `wake-at-${PORTAL}`)).toBe('none (nothing waits in the ledger)');
      expect(await shown(server, `lease-${PORTAL}`)).toBe('no lease held');
    });

    it('shows the pending wake-up, then the lease a reconcile holds, then nothing once it lets go', async () => {
      const server = await serveWakeups();
      const at = Date.now() + 30_000;
      await ledger.portals.touch(PORTAL);
      expect(await ledger.portals.electWake(PORTAL, at)).toBe(true);
      const pending = await wakeupsOf(server);
      expect(pending).toEqual([
        {
          portal: PORTAL,
          wakeAt: new Date(at).toISOString(),
          leaseHeld: false,
          touchedAt: expect.stringMatching(/^\d{4}-/),
        },
      ]);
      expect(await shown(server, `wake-at-${PORTAL}`)).toBe(
        `${new Date(at).toISOString().slice(11, 19)} (on the portal work queue)`,
      );

      const until = Date.now() + 60_000;
      expect((await ledger.portals.acquireLease(PORTAL, 'reconcile-1', until)).acquired).toBe(true);
      expect(await wakeupsOf(server)).toMatchObject([
        {
          portal: PORTAL,
          wakeAt: new Date(until).toISOString(),
          leaseHeld: true,
          leaseUntil: new Date(until).toISOString(),
        },
      ]);
      expect(await shown(server, `lease-${PORTAL}`)).toBe(
        `lease held until ${new Date(until).toISOString().slice(11, 19)} (a reconcile is on it)`,
      );

      expect(await ledger.portals.releaseLease(PORTAL, 'reconcile-1')).toBeDefined();
      expect(await wakeupsOf(server)).toMatchObject([{ portal: PORTAL, wakeAt: 'none', leaseHeld: false }]);
    });

    it("shows the next wake-up of every portal edits were recorded for, the stack's own first", async () => {
      const other = 'wakeups-other';
      const at = Date.now() + 45_000;
      expect(await ledger.portals.electWake(other, at)).toBe(true);
      const server = await startSandboxServer({
        port: 0,
        getState: async () => state('x', { portal: PORTAL, portals: [other, PORTAL] }),
        actions: {},
        ledger: { ledger, timing: TIMING },
      });
      servers.push(server);
      const wakeups = await wakeupsOf(server);
      expect(Array.isArray(wakeups) && wakeups.map((w) => w.portal)).toEqual([PORTAL, other]);
      expect(await shown(server, `wake-at-${other}`)).toBe(
        `${new Date(at).toISOString().slice(11, 19)} (on the portal work queue)`,
      );
    });

    it('says a wake-up long past is overdue, for the sweep to send again', async () => {
      const server = await serveWakeups();
      expect(await ledger.portals.electWake(PORTAL, Date.now() - 120_000)).toBe(true);
      expect(await shown(server, `wake-at-${PORTAL}`)).toMatch(
        /^\d\d:\d\d:\d\d \(overdue: the sweep wakes it\)$/,
      );
    });
  });
});

describe('the recent requests of the sandbox page', () => {
  const line = {
    at: new Date(0).toISOString(),
    requestId: 'r-1',
    method: 'POST',
    path: '/rest/1/key/batch',
    durationMs: 5,
  };

  it("reads the webhook route's answers in Bitrix24's shape: applied, deferred, and a batch by its commands", () => {
    const edit = '{"botId":456,"messageId":789,"fields":{"message":"x"}}';
    expect(summariseRequest(line, edit, 200, '{"result":{"result":true},"time":{}}').outcome).toBe('applied');
    expect(
      summariseRequest(
        line,
        edit,
        200,
        '{"result":{"result":true},"deferred":true,"editId":"e-1","reason":"BATCHED"}',
      ),
    ).toMatchObject({ outcome: 'deferred', reason: 'BATCHED', editId: 'e-1' });
    const batch = {
      result: {
        result: { a: { result: true }, b: { result: true } },
        result_error: { c: { error: 'INVALID_REQUEST_BODY', error_description: 'cmd[c]: …' } },
        result_total: [],
        result_next: [],
        result_time: { a: {} },
        result_deferred: { b: { editId: 'e-2', reason: 'MESSAGE_CADENCE' } },
      },
    };
    expect(summariseRequest(line, 'cmd[a]=…', 200, JSON.stringify(batch)).outcome).toBe(
      'batch of 3: 1 applied, 1 deferred, 1 error',
    );
  });

  it("says an Idempotency-Key's repeat is a duplicate, not an applied edit", () => {
    const answer = '{"result":true,"duplicate":true,"editId":"e-1"}';
    expect(summariseRequest(line, '{}', 202, answer)).toMatchObject({ outcome: 'duplicate', editId: 'e-1' });
  });
});

describe('BB-code on the sandbox page', () => {
  it('escapes markup before formatting, so a message cannot inject HTML', () => {
    expect(bbcodeToHtml('<script>alert(1)</script> [b]x[/b]')).toBe(
      '&lt;script&gt;alert(1)&lt;/script&gt; <strong>x</strong>',
    );
  });

  it('links only http(s) URLs', () => {
    expect(bbcodeToHtml('[url=https://example.com]site[/url]')).toContain('<a href="https://example.com"');
    expect(bbcodeToHtml('[url=javascript:alert(1)]x[/url]')).toBe('[url=javascript:alert(1)]x[/url]');
  });

  it('keeps line breaks', () => {
    expect(bbcodeToHtml('a\nb[br]c')).toBe('a<br>b<br>c');
  });
});
