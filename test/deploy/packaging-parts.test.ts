import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LEDGER_TABLE, TTL_ATTRIBUTE } from '../../lib/ledger/table.ts';
import { templateProblems } from '../../scripts/package/check-template.ts';
import { loadStatusSchedules } from '../../scripts/package/status-schedules.ts';
import { unzip, zip } from '../../scripts/package/zip.ts';

const root = new URL('../..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'b24-parts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function statusFile(text: string): string {
  const file = join(dir, `status-${Math.random().toString(36).slice(2)}.yml`);
  writeFileSync(file, text);
  return file;
}

const spec = (messageId: number) =>
  `{ portal: acme, botId: 1, messageId: ${messageId}, source: { type: none }, template: "at {{now}}" }`;

describe('the status messages file', () => {
  it('ships as an empty list of schedules', () => {
    expect(loadStatusSchedules(join(root, 'status-messages.yml'))).toEqual([]);
  });

  it('documents an example that passes the handler schema when uncommented', () => {
    const text = readFileSync(join(root, 'status-messages.yml'), 'utf8');
    const example = text
      .slice(text.indexOf('# Example:') + '# Example:'.length)
      .split('\n')
      .filter((line) => line.startsWith('#'))
      .map((line) => line.replace(/^# ?/, ''))
      .join('\n');
    const events = loadStatusSchedules(statusFile(example), 'example');
    expect(events.length).toBe(2);
  });

  it('names the schedule and the key when a rate is malformed or a key is unknown', () => {
    const file = statusFile(`- rate: every minute\n  input: ${spec(1)}\n  name: x\n`);
    expect(() => loadStatusSchedules(file, 'status.yml')).toThrow(
      /status\.yml\[0\]: 2 problems:\n {2}name: unknown key.*\n {2}rate: "every minute" is not rate/,
    );
  });

  it('refuses two schedules that keep the same message current', () => {
    const file = statusFile(
      `- rate: rate(1 minute)\n  input: ${spec(7)}\n- rate: rate(5 minutes)\n  input: { messages: [${spec(8)}, ${spec(7)}] }\n`,
    );
    expect(() => loadStatusSchedules(file, 'status.yml')).toThrow(
      /status\.yml\[1\]: 1 problem:\n {2}input\.messages\[1\]: portal acme, bot 1, message 7 already has a spec \(status\.yml\[0\] input\)/,
    );
  });

  it('refuses an input longer than EventBridge takes, saying how to split it', () => {
    const messages = Array.from({ length: 120 }, (_, i) => spec(i + 1)).join(', ');
    const file = statusFile(`- rate: rate(1 minute)\n  input: { messages: [${messages}] }\n`);
    expect(() => loadStatusSchedules(file, 'status.yml')).toThrow(
      /input: is [\d,]+ characters as JSON; EventBridge allows 8,192/,
    );
  });

  it('refuses http sources, as the deployed handler would', () => {
    const file = statusFile(
      '- rate: rate(1 minute)\n  input: { portal: acme, botId: 1, messageId: 2, source: { type: http-health, url: "http://h.example" }, template: t }\n',
    );
    expect(() => loadStatusSchedules(file, 'status.yml')).toThrow(/source\.url: must be an https URL/);
  });
});

describe('the zip writer', () => {
  it('writes the same bytes for the same bundle, and they read back', () => {
    const data = Buffer.from('export const handler = async () => "ok";\n'.repeat(100));
    const first = zip([{ name: 'index.mjs', data }]);
    expect(first.equals(zip([{ name: 'index.mjs', data }]))).toBe(true);
    const [entry] = unzip(first);
    expect(entry?.name).toBe('index.mjs');
    expect(entry?.data.equals(data)).toBe(true);
    expect(first.length).toBeLessThan(data.length);
  });
});

describe('the template consistency check', () => {
  const ledgerTable = (overrides: Record<string, unknown> = {}) => ({
    Type: 'AWS::DynamoDB::Table',
    Properties: {
      ...structuredClone(LEDGER_TABLE),
      TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
      ...overrides,
    },
  });
  const fn = (timeout: number, variables: Record<string, unknown> = {}) => ({
    Type: 'AWS::Lambda::Function',
    Properties: {
      Timeout: timeout,
      Environment: { Variables: { STATE_TABLE_NAME: { Ref: 'LedgerTable' }, ...variables } },
    },
  });
  const template = (visibility: number, concurrency: number, portalVisibility = 360) => ({
    Resources: {
      LedgerTable: ledgerTable(),
      EditsQueue: { Properties: { VisibilityTimeout: visibility, RedrivePolicy: { maxReceiveCount: 10 } } },
      PortalWorkQueue: { Properties: { VisibilityTimeout: portalVisibility } },
      DrainEditsLambdaFunction: fn(60, { MAX_ATTEMPTS: '8', DRAIN_MAX_CONCURRENCY: '2' }) as unknown,
      ReconcilePortalsLambdaFunction: fn(60, {
        B24_TIMEOUT_MS: '10000',
        DEADLINE_MARGIN_MS: '1000',
      }) as unknown,
      Mapping: {
        Type: 'AWS::Lambda::EventSourceMapping',
        Properties: {
          FunctionName: { 'Fn::GetAtt': ['DrainEditsLambdaFunction', 'Arn'] },
          ScalingConfig: { MaximumConcurrency: concurrency },
        },
      },
    } as Record<string, unknown>,
  });

  it('accepts queues invisible six times their consumer timeout and matching drain concurrency', () => {
    expect(templateProblems(template(360, 2))).toEqual([]);
  });

  it('names each relation a template breaks', () => {
    const problems = templateProblems(template(300, 3, 120));
    expect(problems).toEqual([
      "the edits queue's VisibilityTimeout (300 s) must be at least 6 × the drain's timeout (60 s)",
      "the portal work queue's VisibilityTimeout (120 s) must be at least 6 × the reconcile function's timeout (60 s)",
      expect.stringMatching(/^DRAIN_MAX_CONCURRENCY \(2\) must equal .* MaximumConcurrency \(3\)/),
    ]);
  });

  it('leaves the edits queue redrive to maxReceiveCount alone: the drain acknowledges every merged record', () => {
    const low = template(360, 2);
    (low.Resources.EditsQueue as { Properties: Record<string, unknown> }).Properties.RedrivePolicy = {
      maxReceiveCount: 3,
    };
    expect(templateProblems(low)).toEqual([]);
  });

  it('names a template without the portal work queue', () => {
    const broken = template(360, 2);
    delete broken.Resources.PortalWorkQueue;
    expect(templateProblems(broken)).toEqual(['the template has no PortalWorkQueue resource']);
  });

  it('names a ledger table whose index differs from LEDGER_TABLE, and one without TTL', () => {
    const broken = template(360, 2);
    const [index] = structuredClone(LEDGER_TABLE.GlobalSecondaryIndexes);
    broken.Resources.LedgerTable = ledgerTable({
      GlobalSecondaryIndexes: [{ ...index, Projection: { ProjectionType: 'ALL' } }],
      TimeToLiveSpecification: undefined,
    });
    const problems = templateProblems(broken);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(
      /^LedgerTable GlobalSecondaryIndexes must be .*KEYS_ONLY.* as in lib\/ledger\/table\.ts/,
    );
    expect(problems[1]).toMatch(/LedgerTable must enable TTL on the "ttl" attribute/);
  });

  it('names a function whose Bitrix24 call, margin and one AWS request do not fit in its timeout', () => {
    const broken: { Resources: Record<string, unknown> } = template(360, 2);
    const update = (b24TimeoutMs: string) => ({
      Type: 'AWS::Lambda::Function',
      Properties: {
        Timeout: 15,
        Environment: {
          Variables: {
            B24_TIMEOUT_MS: b24TimeoutMs,
            DEADLINE_MARGIN_MS: '1000',
            STATE_TABLE_NAME: { Ref: 'LedgerTable' },
          },
        },
      },
    });
    broken.Resources.UpdateMessageLambdaFunction = update('10000');
    expect(templateProblems(broken)).toEqual([]);
    broken.Resources.UpdateMessageLambdaFunction = update('60000');
    expect(templateProblems(broken)).toEqual([
      'UpdateMessageLambdaFunction: B24_TIMEOUT_MS (60000) + DEADLINE_MARGIN_MS (1000) + one AWS request (3000 ms) ' +
        "must fit in its timeout (15000 ms): lower b24TimeoutMs or raise the function's timeout",
    ]);
  });

  it('checks the deadline budget of the reconcile function, and not of the drain, which calls no portal', () => {
    const broken = template(360, 2);
    const slow = { B24_TIMEOUT_MS: '58000', DEADLINE_MARGIN_MS: '1000' };
    broken.Resources.ReconcilePortalsLambdaFunction = fn(60, slow);
    broken.Resources.DrainEditsLambdaFunction = fn(60, { ...slow, DRAIN_MAX_CONCURRENCY: '2' });
    expect(templateProblems(broken)).toEqual([
      'ReconcilePortalsLambdaFunction: B24_TIMEOUT_MS (58000) + DEADLINE_MARGIN_MS (1000) + one AWS request (3000 ms) ' +
        "must fit in its timeout (60000 ms): lower b24TimeoutMs or raise the function's timeout",
    ]);
  });

  it('names a template without the ledger table, and a function not pointed at it', () => {
    const broken: { Resources: Record<string, unknown> } = template(360, 2);
    delete broken.Resources.LedgerTable;
    broken.Resources.SweepLambdaFunction = {
      Type: 'AWS::Lambda::Function',
      Properties: { Environment: { Variables: { STATE_TABLE_NAME: 'ledger' } } },
    };
    expect(templateProblems(broken)).toEqual([
      'the template has no LedgerTable resource (infra/ledger.yml)',
      'SweepLambdaFunction must get STATE_TABLE_NAME { Ref: LedgerTable }, got "ledger"',
    ]);
  });
});
