import { describe, expect, it } from 'vitest';
import { banner, drainLine, handlerLogsLine, reconcileLine, sweepLine } from '../../local/stack/banner.ts';
import { loadLocalConfig } from '../../local/stack/config.ts';
import type { LocalStackInfo } from '../../local/stack/info.ts';

function info(overrides: Partial<LocalStackInfo> = {}): LocalStackInfo {
  return {
    mode: 'emulator',
    portal: 'demo',
    portalHost: '127.0.0.1:8025',
    secretName: 'b24/portals/demo',
    apiUrl: 'http://127.0.0.1:3000',
    apiTlsUrl: 'https://127.0.0.1:3443',
    certificateFile: '/tmp/b24-message-editor-3443.pem',
    methodUrl: 'http://127.0.0.1:3000/rest/imbot.v2.Chat.Message.update',
    sandboxUrl: 'http://127.0.0.1:8024',
    emulatorUrl: 'http://127.0.0.1:8025',
    sqsUrl: 'http://127.0.0.1:8026',
    secretsManagerUrl: 'http://127.0.0.1:8027',
    queues: {
      edits: 'http://127.0.0.1:8026/q/edits.fifo',
      failedEdits: 'http://127.0.0.1:8026/q/failed-edits.fifo',
      portalWork: 'http://127.0.0.1:8026/q/portal-work',
    },
    dynamodbUrl: 'http://127.0.0.1:8028',
    ledgerTable: 'ledger',
    drain: { concurrency: 2, batchSize: 10 },
    reconcile: { concurrency: 2, batchSize: 10 },
    sweep: { everyMs: 10_000 },
    schedules: [],
    statusSpecsFile: undefined,
    demo: { botId: 456, chatId: 12, messageIds: [789, 790, 791] },
    handlerLogLevel: 'WARN',
    ...overrides,
  };
}

describe('the npm start banner', () => {
  it("prints the demo's curl for bot 456 and message 789 with the emulator", () => {
    const text = banner(info(), loadLocalConfig({}), 100);
    expect(text).toContain(`-d '{"botId":456,"messageId":789,"fields":{"message":"Updated text"}}'`);
  });

  it('prints the configured bot against a real portal, and says how to get a message id', () => {
    const config = loadLocalConfig({
      B24_PORTAL_URL: 'https://acme.bitrix24.com',
      B24_WEBHOOK_USER_ID: '1',
      B24_WEBHOOK_CODE: 'code',
      B24_BOT_ID: '321',
      B24_BOT_TOKEN: 'token',
    });
    const text = banner(info({ mode: 'real-portal', demo: undefined, emulatorUrl: undefined }), config, 100);
    expect(text).toContain(`-d '{"botId":321,"messageId":<message id>,"fields":{"message":"Updated text"}}'`);
    expect(text).toContain('<message id>: a message bot 321 sent');
    expect(text).toContain('npm run b24 -- send --dialog chat<chat id> "Hello"');
    expect(text).not.toContain('456');
    expect(text).not.toContain('789');
  });

  it('gives Bitrix24 SDKs the https webhook URL, the certificate file to trust and the command for a key', () => {
    const text = banner(info(), loadLocalConfig({}), 100);
    expect(text).toMatch(
      /^ {2}Bitrix24 SDKs +https:\/\/127\.0\.0\.1:3443\/rest\/1\/<key>\/ {2}as the webhook URL; .*\(API_TLS_PORT\)$/m,
    );
    expect(text).toContain('npm run b24 -- caller add --local --portal demo --name <who>');
    expect(text).toContain('NODE_EXTRA_CA_CERTS=/tmp/b24-message-editor-3443.pem node app.js');
  });

  it('lists the portal work queue and the reconcile that polls it', () => {
    const text = banner(info(), loadLocalConfig({}), 100);
    expect(text).toContain('portal-work (wake-ups)');
    expect(text).toMatch(/^ {2}Reconcile +polls portal-work: batches of 10, 2 at a time/m);
    expect(text).toMatch(/^ {2}Sweep +every 10 seconds: wakes every portal whose wake-up is overdue/m);
  });
});

describe("the banner's handler log line", () => {
  it("names the level the handlers' logger has, and how to see every edit", () => {
    expect(banner(info(), loadLocalConfig({}), 100)).toMatch(
      /^Handler logs: WARN and above \(POWERTOOLS_LOG_LEVEL=INFO npm start shows every edit\)\.$/m,
    );
    expect(handlerLogsLine('INFO', 'INFO')).toBe(
      'Handler logs: INFO and above (POWERTOOLS_LOG_LEVEL=WARN npm start keeps the console to the lines above and the summaries).',
    );
  });

  it("says so when the handlers' logger does not have the level the stack asked for", () => {
    const text = banner(info({ handlerLogLevel: 'INFO' }), loadLocalConfig({}), 100);
    expect(text).toMatch(
      /^Handler logs: INFO and above \(WARN was asked for, but the handlers' logger was made before the stack set it\)/m,
    );
    expect(text).not.toContain('WARN and above');
  });
});

describe('the drain console line', () => {
  it('counts merged, superseded, deferred and failed edit records apart', () => {
    const line = drainLine({
      records: 6,
      leftInQueue: 1,
      outcomes: { merged: 3, superseded: 1, failed: 1, deferred: 1 },
    });
    expect(line).toMatch(
      /drain: 6 edits received: 3 merged, 1 superseded, 1 deferred, 1 failed; 1 back to the queue for a later attempt$/,
    );
  });

  it('names the handler failure when the drain threw', () => {
    expect(drainLine({ records: 1, leftInQueue: 1, error: 'TypeError: x' })).toMatch(
      /drain: 1 edit received: 1 back to the queue for a later attempt; handler failed: TypeError: x$/,
    );
  });
});

describe('the reconcile console line', () => {
  it('counts the messages applied and the Bitrix24 calls made for the woken portals', () => {
    expect(reconcileLine({ records: 2, leftInQueue: 0, outcomes: { applied: 3, calls: 1 } })).toMatch(
      /reconcile: 2 wake-ups received: 3 applied \(1 Bitrix24 call\)$/,
    );
    expect(reconcileLine({ records: 1, leftInQueue: 1, outcomes: { applied: 0, calls: 0 } })).toMatch(
      /reconcile: 1 wake-up received: nothing to do \(0 Bitrix24 calls\); 1 back to the queue for a later attempt$/,
    );
  });
});

describe('the sweep console line', () => {
  const run = (result: unknown) => ({
    schedule: 'sweep',
    at: new Date().toISOString(),
    durationMs: 3,
    result,
  });

  it('says how many overdue portals it found and woke, and nothing for a quiet sweep', () => {
    expect(sweepLine(run({ overdue: 2, woken: 1 }))).toMatch(/sweep: 2 portals overdue, 1 woken$/);
    expect(sweepLine(run({ overdue: 1, woken: 1 }))).toMatch(/sweep: 1 portal overdue, 1 woken$/);
    expect(sweepLine(run({ overdue: 0, woken: 0 }))).toBeUndefined();
  });

  it('names the failure of a sweep that failed', () => {
    expect(sweepLine({ ...run(undefined), error: 'LedgerUnavailableError: down' })).toMatch(
      /sweep failed: LedgerUnavailableError: down$/,
    );
  });
});
