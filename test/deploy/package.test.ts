import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../lib/config.ts';
import { DIRTY_INDEX, LEDGER_TABLE, TTL_ATTRIBUTE, WAKE_INDEX } from '../../lib/ledger/table.ts';
import { REFRESH_METRICS } from '../../lib/status/refresh.ts';
import { assertValidStatusSpecs } from '../../lib/status/spec.ts';
import { unzip } from '../../scripts/package/zip.ts';
import {
  conditionHolds,
  type Json,
  type Resource,
  render,
  resolveIf,
  resourcesOfType,
  type Statement,
  statementsOf,
  type Template,
} from './cfn.ts';

const root = new URL('../..', import.meta.url).pathname;
const fixture = join(root, 'test/deploy/fixtures/status-messages.yml');
const ALARM_TOPIC = 'arn:aws:sns:eu-central-1:123456789012:b24-alerts';
const DRAIN_CONCURRENCY = 5;
const RECONCILE_CONCURRENCY = 12;
const RECONCILE_RESERVED = 15;

const FUNCTIONS = [
  { name: 'updateMessage', id: 'UpdateMessage', artifact: 'update-message', timeout: 15 },
  { name: 'webhook', id: 'Webhook', artifact: 'webhook', timeout: 15 },
  { name: 'drainEdits', id: 'DrainEdits', artifact: 'drain-edits', timeout: 60 },
  { name: 'reconcilePortals', id: 'ReconcilePortals', artifact: 'reconcile-portals', timeout: 60 },
  { name: 'refreshStatus', id: 'RefreshStatus', artifact: 'refresh-status', timeout: 60 },
  { name: 'sweep', id: 'Sweep', artifact: 'sweep', timeout: 60 },
  { name: 'getMessage', id: 'GetMessage', artifact: 'get-message', timeout: 10 },
] as const;
/** The functions that call Bitrix24, and so read portal secrets (the drain and the sweep call none). */
const PORTAL_CALLERS = FUNCTIONS.filter(({ id }) =>
  ['UpdateMessage', 'Webhook', 'ReconcilePortals', 'RefreshStatus'].includes(id),
);
const TABLE_ARN = '{LedgerTable.Arn}';
const DIRTY_INDEX_ARN = `{LedgerTable.Arn}/index/${DIRTY_INDEX}`;
const WAKE_INDEX_ARN = `{LedgerTable.Arn}/index/${WAKE_INDEX}`;
const ITEM_ACTIONS = ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:UpdateItem'];

/** Every environment variable lib/config.ts reads, found by watching it read. */
function configVariables(): string[] {
  const read = new Set<string>();
  loadConfig(
    new Proxy({} as Record<string, string | undefined>, {
      get: (_target, key) => {
        if (typeof key === 'string') read.add(key);
        return undefined;
      },
    }),
  );
  return [...read].sort();
}

const scratch = mkdtempSync(join(tmpdir(), 'b24-deploy-test-'));

// A clean environment: no AWS credentials, profile or config file within reach.
function offlineEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('AWS_')));
  return { ...env, HOME: mkdtempSync(join(scratch, 'home-')), ...extra };
}

function runPackager(args: string[], env: NodeJS.ProcessEnv): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [join(root, 'scripts/package.ts'), ...args], {
    cwd: root,
    env,
    encoding: 'utf8',
    timeout: 110_000,
  });
}

let outDir: string;
let distDir: string;
let packaging: SpawnSyncReturns<string>;
let parsed: Template | undefined;

beforeAll(() => {
  outDir = mkdtempSync(join(scratch, 'package-'));
  distDir = mkdtempSync(join(scratch, 'dist-'));
  packaging = runPackager(
    [
      '--dist',
      distDir,
      '--stage',
      'prod',
      '--param',
      'tracing=Active',
      '--param',
      `alarmTopicArn=${ALARM_TOPIC}`,
      '--param',
      `drainMaxConcurrency=${DRAIN_CONCURRENCY}`,
      '--param',
      `reconcileMaxConcurrency=${RECONCILE_CONCURRENCY}`,
      '--param',
      'updateMessageReservedConcurrency=20',
      '--param',
      `reconcilePortalsReservedConcurrency=${RECONCILE_RESERVED}`,
      '--param',
      'apiThrottleRateLimit=75',
      '--package',
      outDir,
    ],
    offlineEnv({ STATUS_MESSAGES_FILE: fixture }),
  );
  const templatePath = join(outDir, 'cloudformation-template-update-stack.json');
  if (packaging.status === 0 && existsSync(templatePath)) {
    parsed = JSON.parse(readFileSync(templatePath, 'utf8')) as Template;
  }
}, 120_000);

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function template(): Template {
  if (!parsed) {
    throw new Error(
      `npm run package failed (exit ${packaging.status}), so there is no template:\n${packaging.stderr}\n${packaging.stdout.slice(-2000)}`,
    );
  }
  return parsed;
}

function resource(id: string): Resource {
  const found = template().Resources[id];
  if (!found)
    throw new Error(`the template has no ${id}; it has ${Object.keys(template().Resources).join(', ')}`);
  return found;
}

function lambda(id: string): Json {
  return resource(`${id}LambdaFunction`).Properties;
}

function envOf(id: string): Record<string, unknown> {
  return (lambda(id).Environment as { Variables: Record<string, unknown> }).Variables;
}

function roleStatements(id: string): Statement[] {
  const role = lambda(id).Role as { 'Fn::GetAtt': [string, string] };
  return statementsOf(resource(role['Fn::GetAtt'][0]));
}

const statementsFor = (service: string, statements: Statement[]) =>
  statements.filter((s) => s.Action.some((a) => a.startsWith(`${service}:`)));
const sqsStatements = (statements: Statement[]) => statementsFor('sqs', statements);

describe('npm run package', () => {
  it('writes the CloudFormation template offline, with no AWS credentials', () => {
    expect(packaging.status, `${packaging.stderr}\n${packaging.stdout}`).toBe(0);
    expect(parsed).toBeDefined();
  });

  it("writes the zips and the schedules to --dist, leaving the repository's dist/ alone", () => {
    expect(existsSync(join(distDir, 'refresh-status.schedules.json'))).toBe(true);
    expect(packaging.stdout).toContain(join(distDir, 'update-message.zip'));
    expect(packaging.stdout).not.toMatch(/^dist\//m);
    const schedules = readFileSync(join(distDir, 'refresh-status.schedules.json'), 'utf8');
    expect(schedules).toContain('status.example.com');
  });

  it('says nothing about silent alarms when alarmTopicArn names a topic', () => {
    expect(packaging.stderr).not.toContain('notify nobody');
  });

  it.each(FUNCTIONS)('points $name at its own zipped esbuild bundle', ({ id, artifact }) => {
    const fn = lambda(id);
    expect(fn.Runtime).toBe('nodejs24.x');
    expect(fn.Architectures).toEqual(['arm64']);
    expect(fn.Handler).toBe('index.handler');
    expect((fn.Code as { S3Key: string }).S3Key).toMatch(new RegExp(`/${artifact}\\.zip$`));
    const entries = unzip(readFileSync(join(distDir, `${artifact}.zip`)));
    expect(entries.map((e) => e.name)).toEqual(['index.mjs']);
    expect(entries[0]?.data.equals(readFileSync(join(distDir, artifact, 'index.mjs')))).toBe(true);
  });

  it.each(FUNCTIONS)(
    'gives $name a $timeout s timeout, X-Ray when asked, and logs kept for a while',
    ({ id, timeout }) => {
      expect(lambda(id).Timeout).toBe(timeout);
      expect(lambda(id).TracingConfig).toEqual({ Mode: 'Active' });
      expect(resource(`${id}LogGroup`).Properties.RetentionInDays).toBe(90);
    },
  );

  it.each(FUNCTIONS)('sets every variable lib/config.ts reads on $name, with values it accepts', ({ id }) => {
    const env = envOf(id);
    for (const name of configVariables()) expect(env, name).toHaveProperty(name);
    expect(env.EDITS_QUEUE_URL).toEqual({ Ref: 'EditsQueue' });
    expect(env.PORTAL_QUEUE_URL).toEqual({ Ref: 'PortalWorkQueue' });
    expect(env.STATE_TABLE_NAME).toEqual({ Ref: 'LedgerTable' });
    expect([
      env.BATCH_LINGER_MS,
      env.MESSAGE_MIN_INTERVAL_MS,
      env.AMBIGUOUS_SETTLE_MS,
      env.INDEX_LAG_MS,
    ]).toEqual(['1000', '1000', '65000', '1000']);
    expect(env.FAILED_EDITS_QUEUE_URL).toEqual({ Ref: 'FailedEditsQueue' });
    expect(env.SECRET_PREFIX).toBe('b24/portals/');
    expect(env.B24_ALLOW_HTTP).toBe('false');
    const literal = Object.fromEntries(
      Object.entries(env).map(([k, v]) => [k, typeof v === 'string' ? v : 'https://sqs.example/q.fifo']),
    );
    expect(() => loadConfig(literal)).not.toThrow();
  });

  it('makes the edits queue and its failed-edits dead-letter queue FIFO, encrypted, kept 4 and 14 days', () => {
    const edits = resource('EditsQueue').Properties;
    const failed = resource('FailedEditsQueue').Properties;
    for (const queue of [edits, failed]) {
      expect(queue.FifoQueue).toBe(true);
      expect(queue.SqsManagedSseEnabled).toBe(true);
      expect(queue.ContentBasedDeduplication).toBe(false);
    }
    expect(edits.QueueName).toMatch(/\.fifo$/);
    expect(failed.QueueName).toMatch(/\.fifo$/);
    expect(edits.MessageRetentionPeriod).toBe(4 * 24 * 3600);
    expect(failed.MessageRetentionPeriod).toBe(14 * 24 * 3600);
  });

  it('makes the portal work queue and its dead-letter queue standard (not FIFO), encrypted, kept 4 and 14 days', () => {
    const work = resource('PortalWorkQueue').Properties;
    const dead = resource('PortalWorkDeadLetterQueue').Properties;
    for (const queue of [work, dead]) {
      expect(queue.FifoQueue).toBeUndefined();
      expect(queue.QueueName).not.toMatch(/\.fifo$/);
      expect(queue.SqsManagedSseEnabled).toBe(true);
    }
    expect(work.QueueName).toBe('b24-message-editor-prod-portal-work');
    expect(work.MessageRetentionPeriod).toBe(4 * 24 * 3600);
    expect(work.ReceiveMessageWaitTimeSeconds).toBe(20);
    expect(dead.MessageRetentionPeriod).toBe(14 * 24 * 3600);
  });

  it('redrives edits to the failed-edits queue after maxReceiveCount receives, and from the edits queue only', () => {
    const redrive = resource('EditsQueue').Properties.RedrivePolicy as Json;
    expect(redrive.deadLetterTargetArn).toEqual({ 'Fn::GetAtt': ['FailedEditsQueue', 'Arn'] });
    expect(redrive.maxReceiveCount).toBe(10);
    const allow = resource('FailedEditsQueue').Properties.RedriveAllowPolicy as Json;
    expect(allow.redrivePermission).toBe('byQueue');
    expect((allow.sourceQueueArns as unknown[]).map(render)).toEqual([
      `arn:{AWS::Partition}:sqs:{AWS::Region}:{AWS::AccountId}:${resource('EditsQueue').Properties.QueueName}`,
    ]);
  });

  it('moves a wake-up to the portal work dead-letter queue after 10 receives, and only from the portal work queue', () => {
    const redrive = resource('PortalWorkQueue').Properties.RedrivePolicy as Json;
    expect(redrive.deadLetterTargetArn).toEqual({ 'Fn::GetAtt': ['PortalWorkDeadLetterQueue', 'Arn'] });
    expect(redrive.maxReceiveCount).toBe(10);
    const allow = resource('PortalWorkDeadLetterQueue').Properties.RedriveAllowPolicy as Json;
    expect(allow.redrivePermission).toBe('byQueue');
    expect((allow.sourceQueueArns as unknown[]).map(render)).toEqual([
      `arn:{AWS::Partition}:sqs:{AWS::Region}:{AWS::AccountId}:${resource('PortalWorkQueue').Properties.QueueName}`,
    ]);
  });

  it.each([
    ['an edit', 'EditsQueue', 'DrainEdits'],
    ['a wake-up', 'PortalWorkQueue', 'ReconcilePortals'],
  ])('keeps %s invisible for at least six times its consumer timeout', (_what, queue, consumer) => {
    const visibility = Number(resource(queue).Properties.VisibilityTimeout);
    expect(visibility).toBe(360);
    expect(visibility).toBeGreaterThanOrEqual(6 * Number(lambda(consumer).Timeout));
  });

  /** The event source mapping of a function (its only one). */
  function mappingOf(id: string): Json {
    const mappings = resourcesOfType(template(), 'AWS::Lambda::EventSourceMapping')
      .map(([, m]) => m.Properties)
      .filter((m) => render(m.FunctionName) === `{${id}LambdaFunction.Arn}`);
    expect(mappings, id).toHaveLength(1);
    return mappings[0] as Json;
  }

  it('has exactly two queue event sources: the edits queue for the drain, the portal work queue for the reconcile function', () => {
    const sources = resourcesOfType(template(), 'AWS::Lambda::EventSourceMapping').map(([, m]) => [
      render(m.Properties.EventSourceArn),
      render(m.Properties.FunctionName),
    ]);
    expect(sources.sort()).toEqual([
      ['{EditsQueue.Arn}', '{DrainEditsLambdaFunction.Arn}'],
      ['{PortalWorkQueue.Arn}', '{ReconcilePortalsLambdaFunction.Arn}'],
    ]);
  });

  it('feeds the drain from the edits queue in batches of 10 with partial batch failures and capped concurrency', () => {
    const mapping = mappingOf('DrainEdits');
    expect(mapping.BatchSize).toBe(10);
    expect(mapping.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
    expect(mapping.ScalingConfig).toEqual({ MaximumConcurrency: DRAIN_CONCURRENCY });
    expect(envOf('DrainEdits').DRAIN_MAX_CONCURRENCY).toBe(String(DRAIN_CONCURRENCY));
  });

  it('feeds the reconcile function wake-ups in batches of reconcileBatchSize, with partial batch failures and reconcileMaxConcurrency', () => {
    const mapping = mappingOf('ReconcilePortals');
    expect(mapping.BatchSize).toBe(10);
    expect(mapping.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
    expect(mapping.ScalingConfig).toEqual({ MaximumConcurrency: RECONCILE_CONCURRENCY });
    expect(lambda('ReconcilePortals').MemorySize).toBe(512);
  });

  it('documents the scheduling parameters with their defaults in serverless.yml', () => {
    const params = (
      parse(readFileSync(join(root, 'serverless.yml'), 'utf8')) as { params: { default: Json } }
    ).params.default;
    expect({
      reconcileMaxConcurrency: params.reconcileMaxConcurrency,
      reconcileBatchSize: params.reconcileBatchSize,
      reconcilePortalsReservedConcurrency: params.reconcilePortalsReservedConcurrency,
      indexLagMs: params.indexLagMs,
      drainMaxConcurrency: params.drainMaxConcurrency,
    }).toEqual({
      reconcileMaxConcurrency: 10,
      reconcileBatchSize: 10,
      reconcilePortalsReservedConcurrency: '',
      indexLagMs: 1000,
      drainMaxConcurrency: 2,
    });
  });

  it('routes POST /rest/imbot.v2.Chat.Message.update to updateMessage, GET /messages/… to getMessage, and requires IAM (SigV4) on every route but the webhook form', () => {
    const routes = resourcesOfType(template(), 'AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties);
    expect(routes.map((r) => r.RouteKey).sort()).toEqual([
      'ANY /rest/{user}/{key}/{method}',
      'GET /messages/{portal}/{botId}/{messageId}',
      'POST /rest/imbot.v2.Chat.Message.update',
      'POST /rest/imbot.v2.Chat.Message.update.json',
    ]);
    for (const route of routes.filter((r) => !String(r.RouteKey).startsWith('ANY ')))
      expect(route.AuthorizationType).toBe('AWS_IAM');
    // The webhook form carries a caller key, checked by its function before anything else.
    const webhook = routes.find((r) => String(r.RouteKey).startsWith('ANY '));
    expect(webhook?.AuthorizationType ?? 'NONE').toBe('NONE');
    expect(render(webhook?.Target)).toBe('integrations/{HttpApiIntegrationWebhook}');
    const integration = resource('HttpApiIntegrationUpdateMessage').Properties;
    expect(integration.IntegrationUri).toEqual({ 'Fn::GetAtt': ['UpdateMessageLambdaFunction', 'Arn'] });
    const fate = routes.find((r) => String(r.RouteKey).startsWith('GET '));
    expect(render(fate?.Target)).toBe('integrations/{HttpApiIntegrationGetMessage}');
    expect(resource('HttpApiIntegrationGetMessage').Properties.IntegrationUri).toEqual({
      'Fn::GetAtt': ['GetMessageLambdaFunction', 'Arn'],
    });
  });

  it('lets API callers invoke the update and fate routes through the managed policy', () => {
    const [statement, ...others] = statementsOf(resource('InvokeUpdateApiPolicy'));
    expect(others).toEqual([]);
    expect(statement?.Action).toEqual(['execute-api:Invoke']);
    expect(statement?.Resource.map(render)).toEqual([
      'arn:{AWS::Partition}:execute-api:{AWS::Region}:{AWS::AccountId}:{HttpApi}/*/POST/rest/imbot.v2.Chat.Message.update*',
      'arn:{AWS::Partition}:execute-api:{AWS::Region}:{AWS::AccountId}:{HttpApi}/*/GET/messages/*',
    ]);
  });

  it('defines the ledger table exactly as LEDGER_TABLE, on demand, encrypted, with PITR and TTL on', () => {
    const table = resource('LedgerTable').Properties;
    expect(table.BillingMode).toBe('PAY_PER_REQUEST');
    expect(table.AttributeDefinitions).toEqual(LEDGER_TABLE.AttributeDefinitions);
    expect(table.KeySchema).toEqual(LEDGER_TABLE.KeySchema);
    expect(table.GlobalSecondaryIndexes).toEqual(LEDGER_TABLE.GlobalSecondaryIndexes);
    expect(table.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(table.TimeToLiveSpecification).toEqual({ AttributeName: TTL_ATTRIBUTE, Enabled: true });
    expect(table.SSESpecification).toEqual({ SSEEnabled: true });
    expect(table.TableName).toBe('b24-message-editor-prod-ledger');
  });

  it('grants each function only the DynamoDB actions it uses, on the table and the dirty and wakeups indexes', () => {
    const dynamo = (id: string) =>
      statementsFor('dynamodb', roleStatements(id)).map((s) => ({
        actions: [...s.Action].sort(),
        on: s.Resource.map(render),
      }));
    const items = { actions: ITEM_ACTIONS, on: [TABLE_ARN] };
    const dirtySet = { actions: ['dynamodb:Query'], on: [DIRTY_INDEX_ARN] };
    for (const id of ['UpdateMessage', 'Webhook']) {
      expect(dynamo(id)).toEqual([
        items,
        { actions: ['dynamodb:DeleteItem', 'dynamodb:PutItem'], on: [TABLE_ARN] },
        dirtySet,
      ]);
    }
    // The drain reads an event's items in one batch, merges by key and touches portal items: no index.
    expect(dynamo('DrainEdits')).toEqual([items]);
    expect(dynamo('ReconcilePortals')).toEqual([items, dirtySet]);
    expect(dynamo('RefreshStatus')).toEqual([items, dirtySet]);
    // The sweep reads only the overdue wake-ups.
    expect(dynamo('Sweep')).toEqual([{ actions: ['dynamodb:Query'], on: [WAKE_INDEX_ARN] }]);
    expect(dynamo('GetMessage')).toEqual([{ actions: ['dynamodb:GetItem'], on: [TABLE_ARN] }]);
    for (const { id } of FUNCTIONS) {
      for (const statement of statementsFor('dynamodb', roleStatements(id))) {
        expect(statement.Action, id).not.toContain('dynamodb:Scan');
      }
    }
    for (const [id, policy] of resourcesOfType(template(), 'AWS::IAM::ManagedPolicy')) {
      expect(statementsFor('dynamodb', statementsOf(policy)), id).toEqual([]);
    }
  });

  it('lets updateMessage and webhook put and delete Idempotency-Key items only (idem#), never a message or portal item', () => {
    for (const id of ['UpdateMessageRole', 'WebhookRole']) {
      const role = resource(id);
      const raw = (role.Properties.Policies as Array<{ PolicyDocument: { Statement: Json[] } }>)
        .flatMap((p) => p.PolicyDocument.Statement)
        .filter((s) => JSON.stringify(s.Action ?? null).includes('dynamodb:PutItem'));
      expect(
        raw.map((s) => s.Condition),
        id,
      ).toEqual([{ 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['idem#*'] } }]);
    }
  });

  it('lets only the functions that refresh OAuth tokens write back portal secrets (PutSecretValue)', () => {
    const writers = FUNCTIONS.filter(({ id }) =>
      roleStatements(id).some((s) => s.Action.includes('secretsmanager:PutSecretValue')),
    ).map(({ name }) => name);
    expect(writers).toEqual(PORTAL_CALLERS.map(({ name }) => name));
    for (const [id, policy] of resourcesOfType(template(), 'AWS::IAM::ManagedPolicy')) {
      expect(statementsFor('secretsmanager', statementsOf(policy)), id).toEqual([]);
    }
  });

  it('throttles the HTTP API stage by the stage parameters (defaults 250 requests/s, burst 500: room for 20 streams at 10 edits/s)', () => {
    const settings = resource('HttpApiStage').Properties.DefaultRouteSettings as Json;
    expect(Number(settings.ThrottlingRateLimit)).toBe(75);
    expect(Number(settings.ThrottlingBurstLimit)).toBe(500);
    const params = (
      parse(readFileSync(join(root, 'serverless.yml'), 'utf8')) as { params: { default: Json } }
    ).params.default;
    expect([params.apiThrottleRateLimit, params.apiThrottleBurstLimit]).toEqual([250, 500]);
    expect(Number(params.apiThrottleRateLimit)).toBeGreaterThanOrEqual(20 * 10);
  });

  it('reserves concurrency only for the functions given a value, the reconcile function at least its mapping concurrency', () => {
    const reserved = (id: string) => resolveIf(template(), lambda(id).ReservedConcurrentExecutions);
    expect(Number(reserved('UpdateMessage'))).toBe(20);
    expect(Number(reserved('ReconcilePortals'))).toBe(RECONCILE_RESERVED);
    expect(Number(reserved('ReconcilePortals'))).toBeGreaterThanOrEqual(
      Number((mappingOf('ReconcilePortals').ScalingConfig as Json).MaximumConcurrency),
    );
    for (const { id } of FUNCTIONS.filter(({ id }) => !['UpdateMessage', 'ReconcilePortals'].includes(id))) {
      expect(reserved(id), id).toBeUndefined();
    }
  });

  it('runs the sweep every minute with a 60 s timeout', () => {
    const rules = resourcesOfType(template(), 'AWS::Events::Rule')
      .map(([, r]) => r.Properties)
      .filter((rule) => render((rule.Targets as Json[])[0]?.Arn) === '{SweepLambdaFunction.Arn}');
    expect(rules.map((rule) => [rule.ScheduleExpression, rule.State])).toEqual([
      ['rate(1 minute)', 'ENABLED'],
    ]);
    expect(lambda('Sweep').Timeout).toBe(60);
    const permissions = resourcesOfType(template(), 'AWS::Lambda::Permission')
      .map(([, p]) => p.Properties)
      .filter((p) => p.Principal === 'events.amazonaws.com');
    expect(permissions.map((p) => p.FunctionName)).toContainEqual({
      'Fn::GetAtt': ['SweepLambdaFunction', 'Arn'],
    });
  });

  it('gives each function its own role and none the shared default role', () => {
    expect(template().Resources.IamRoleLambdaExecution).toBeUndefined();
    const roles = FUNCTIONS.map(({ id }) => (lambda(id).Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]);
    expect(new Set(roles).size).toBe(FUNCTIONS.length);
  });

  it.each(FUNCTIONS.filter((fn) => !PORTAL_CALLERS.includes(fn)))(
    'lets $name, which calls no portal, read no portal secret',
    ({ id }) => {
      expect(statementsFor('secretsmanager', roleStatements(id))).toEqual([]);
    },
  );

  it.each(PORTAL_CALLERS)(
    'lets $name read portal secrets and write back refreshed tokens under the prefix only',
    ({ id }) => {
      const secrets = roleStatements(id).filter((s) => s.Action.some((a) => a.startsWith('secretsmanager:')));
      expect(secrets).toHaveLength(1);
      expect([...(secrets[0]?.Action ?? [])].sort()).toEqual([
        'secretsmanager:GetSecretValue',
        'secretsmanager:PutSecretValue',
      ]);
      expect(secrets[0]?.Resource.map(render)).toEqual([
        'arn:{AWS::Partition}:secretsmanager:{AWS::Region}:{AWS::AccountId}:secret:b24/portals/*',
      ]);
    },
  );

  it('grants each function only the SQS actions it uses, on its queues', () => {
    const sqs = (id: string) =>
      sqsStatements(roleStatements(id))
        .map((s) => `${[...s.Action].sort().join(' ')} on ${s.Resource.map(render).join(' ')}`)
        .sort();
    const consume = (queue: string) =>
      `sqs:ChangeMessageVisibility sqs:DeleteMessage sqs:GetQueueAttributes sqs:ReceiveMessage on {${queue}.Arn}`;
    const wake = 'sqs:SendMessage on {PortalWorkQueue.Arn}';
    const fail = 'sqs:SendMessage on {FailedEditsQueue.Arn}';
    expect(sqs('UpdateMessage')).toEqual([fail, wake]);
    expect(sqs('DrainEdits')).toEqual([consume('EditsQueue'), fail, wake]);
    expect(sqs('ReconcilePortals')).toEqual([consume('PortalWorkQueue'), fail, wake]);
    expect(sqs('RefreshStatus')).toEqual([fail, wake]);
    expect(sqs('Sweep')).toEqual([wake]);
    expect(sqs('GetMessage')).toEqual([]);
  });

  it('lets no function send to the edits queue; only the producers and replay policies may', () => {
    for (const { id } of FUNCTIONS) {
      const sends = sqsStatements(roleStatements(id)).filter((s) => s.Action.includes('sqs:SendMessage'));
      expect(
        sends.flatMap((s) => s.Resource.map(render)),
        id,
      ).not.toContain('{EditsQueue.Arn}');
    }
    for (const policy of ['SendEditsPolicy', 'ReplayFailedEditsPolicy']) {
      const sends = statementsOf(resource(policy)).filter((s) => s.Action.includes('sqs:SendMessage'));
      expect(
        sends.flatMap((s) => s.Resource.map(render)),
        policy,
      ).toEqual(['{EditsQueue.Arn}']);
    }
  });

  it('lets each function write only to its own log group', () => {
    for (const { id } of FUNCTIONS) {
      const logs = roleStatements(id).filter((s) => s.Action.some((a) => a.startsWith('logs:')));
      expect(logs).toEqual([
        {
          Effect: 'Allow',
          Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          Resource: [{ 'Fn::GetAtt': [`${id}LogGroup`, 'Arn'] }],
        },
      ]);
    }
  });

  it('uses Resource "*" only for X-Ray, and only while tracing is Active', () => {
    const policies = [
      ...resourcesOfType(template(), 'AWS::IAM::Role'),
      ...resourcesOfType(template(), 'AWS::IAM::ManagedPolicy'),
    ];
    expect(policies.length).toBeGreaterThanOrEqual(FUNCTIONS.length);
    for (const [id, policy] of policies) {
      for (const statement of statementsOf(policy)) {
        expect(statement.Effect, id).toBe('Allow');
        if (!statement.Resource.includes('*')) continue;
        expect([...statement.Action].sort(), id).toEqual([
          'xray:PutTelemetryRecords',
          'xray:PutTraceSegments',
        ]);
        expect(statement.condition, id).toBe('TracingActive');
      }
      for (const statement of statementsOf(policy)) {
        for (const action of statement.Action) expect(action, id).not.toContain('*');
      }
    }
    expect(conditionHolds(template(), 'TracingActive')).toBe(true);
    for (const { id } of FUNCTIONS) {
      expect(roleStatements(id).some((s) => s.Action.includes('xray:PutTraceSegments'))).toBe(true);
      expect(roleStatements(id).some((s) => s.Action.includes('cloudwatch:PutMetricData'))).toBe(false);
    }
  });

  it('alarms on failed edits, the oldest edit age, open portal circuits, drain and reconcile errors and dead wake-ups, to the SNS topic', () => {
    const alarms = new Map(resourcesOfType(template(), 'AWS::CloudWatch::Alarm'));
    const dimension = (id: string) => (resource(id).Properties.Dimensions as Json[])[0];

    const failed = resource('FailedEditsAlarm').Properties;
    expect([failed.Namespace, failed.MetricName]).toEqual(['AWS/SQS', 'ApproximateNumberOfMessagesVisible']);
    expect(dimension('FailedEditsAlarm')).toEqual({
      Name: 'QueueName',
      Value: { 'Fn::GetAtt': ['FailedEditsQueue', 'QueueName'] },
    });
    expect([failed.ComparisonOperator, failed.Threshold]).toEqual(['GreaterThanThreshold', 0]);

    const age = resource('OldestEditAgeAlarm').Properties;
    expect([age.Namespace, age.MetricName]).toEqual(['AWS/SQS', 'ApproximateAgeOfOldestMessage']);
    expect(dimension('OldestEditAgeAlarm')).toEqual({
      Name: 'QueueName',
      Value: { 'Fn::GetAtt': ['EditsQueue', 'QueueName'] },
    });
    expect(age.Threshold).toBeGreaterThan(0);

    const circuit = resource('PortalCircuitOpenAlarm').Properties;
    const [query] = circuit.Metrics as Json[];
    expect(query?.Expression).toBe(
      "SELECT MAX(PortalCircuitOpen) FROM B24MessageEditor WHERE service = 'b24-message-editor-prod'",
    );

    for (const [alarm, fn] of [
      ['DrainErrorsAlarm', 'DrainEditsLambdaFunction'],
      ['ReconcileErrorsAlarm', 'ReconcilePortalsLambdaFunction'],
    ]) {
      const errors = resource(alarm as string).Properties;
      expect([errors.Namespace, errors.MetricName], alarm).toEqual(['AWS/Lambda', 'Errors']);
      expect(dimension(alarm as string), alarm).toEqual({ Name: 'FunctionName', Value: { Ref: fn } });
      expect([errors.ComparisonOperator, errors.Threshold], alarm).toEqual(['GreaterThanThreshold', 0]);
    }

    const dead = resource('PortalWorkDeadLetterAlarm').Properties;
    expect([dead.Namespace, dead.MetricName]).toEqual(['AWS/SQS', 'ApproximateNumberOfMessagesVisible']);
    expect(dimension('PortalWorkDeadLetterAlarm')).toEqual({
      Name: 'QueueName',
      Value: { 'Fn::GetAtt': ['PortalWorkDeadLetterQueue', 'QueueName'] },
    });
    expect([dead.ComparisonOperator, dead.Threshold]).toEqual(['GreaterThanThreshold', 0]);

    // The circuit opens in the reconcile function, which emits the metric: its logs are where to look.
    expect(String(circuit.AlarmDescription)).toContain('reconcile function');

    expect(alarms.size).toBe(6);
    for (const [id, alarm] of alarms) {
      expect(alarm.Properties.TreatMissingData, id).toBe('notBreaching');
      expect(resolveIf(template(), alarm.Properties.AlarmActions), id).toEqual([ALARM_TOPIC]);
      expect(resolveIf(template(), alarm.Properties.OKActions), id).toEqual([ALARM_TOPIC]);
    }
  });

  it('schedules refreshStatus once per rate of status-messages.yml, each input a valid status spec', () => {
    const entries = parse(readFileSync(fixture, 'utf8')) as Array<{
      rate: string | string[];
      input: unknown;
    }>;
    const expected = entries.flatMap((entry) =>
      (Array.isArray(entry.rate) ? entry.rate : [entry.rate]).map((rate) => ({ rate, input: entry.input })),
    );
    const rules = resourcesOfType(template(), 'AWS::Events::Rule')
      .map(([, r]) => r.Properties)
      .filter((rule) => render((rule.Targets as Json[])[0]?.Arn) !== '{SweepLambdaFunction.Arn}');
    expect(rules).toHaveLength(expected.length);
    const actual = rules.map((rule) => {
      const [target] = rule.Targets as Json[];
      expect(target?.Arn).toEqual({ 'Fn::GetAtt': ['RefreshStatusLambdaFunction', 'Arn'] });
      const input = JSON.parse(String(target?.Input));
      expect(() => assertValidStatusSpecs(input, 'schedule input')).not.toThrow();
      return { rate: rule.ScheduleExpression, input };
    });
    expect(actual).toEqual(expected);
    expect(rules.map((rule) => rule.State)).toEqual(['ENABLED', 'DISABLED', 'DISABLED']);
  });

  it('outputs the API URL, the URLs and ARNs of the edit queues, the portal work queue URLs and the ledger table', () => {
    const outputs = template().Outputs ?? {};
    for (const name of [
      'ApiUrl',
      'UpdateMessageUrl',
      'EditsQueueUrl',
      'EditsQueueArn',
      'FailedEditsQueueUrl',
      'FailedEditsQueueArn',
      'PortalWorkQueueUrl',
      'PortalWorkDeadLetterQueueUrl',
      'LedgerTableName',
    ]) {
      expect(outputs, name).toHaveProperty(name);
    }
    expect(render(outputs.ApiUrl?.Value)).toBe(
      'https://{HttpApi}.execute-api.{AWS::Region}.{AWS::URLSuffix}',
    );
    expect(outputs.EditsQueueUrl?.Value).toEqual({ Ref: 'EditsQueue' });
    expect(outputs.FailedEditsQueueArn?.Value).toEqual({ 'Fn::GetAtt': ['FailedEditsQueue', 'Arn'] });
    expect(outputs.PortalWorkQueueUrl?.Value).toEqual({ Ref: 'PortalWorkQueue' });
    expect(outputs.PortalWorkDeadLetterQueueUrl?.Value).toEqual({ Ref: 'PortalWorkDeadLetterQueue' });
    expect(outputs.LedgerTableName?.Value).toEqual({ Ref: 'LedgerTable' });
  });
});

/** The project's EMF namespace (lib/observability/metrics.ts). */
const EMF_NAMESPACE = 'B24MessageEditor';

/**
 * The metrics AWS publishes for the kinds of resource this stack creates, by namespace: the one
 * dimension that names the resource, the resource type it must name, and the attribute CloudFormation
 * gives the dimension's value through (none: the Ref). HTTP APIs publish by ApiId without detailed
 * metrics (API Gateway's "Monitor CloudWatch metrics for HTTP APIs").
 */
const AWS_METRICS: Record<string, { dimension: string; type: string; attribute?: string; names: string[] }> =
  {
    'AWS/SQS': {
      dimension: 'QueueName',
      type: 'AWS::SQS::Queue',
      attribute: 'QueueName',
      names: [
        'ApproximateAgeOfOldestMessage',
        'ApproximateNumberOfMessagesDelayed',
        'ApproximateNumberOfMessagesNotVisible',
        'ApproximateNumberOfMessagesVisible',
        'NumberOfMessagesSent',
        'NumberOfMessagesReceived',
        'NumberOfMessagesDeleted',
      ],
    },
    'AWS/Lambda': {
      dimension: 'FunctionName',
      type: 'AWS::Lambda::Function',
      names: ['Invocations', 'Errors', 'Throttles', 'Duration', 'ConcurrentExecutions'],
    },
    'AWS/ApiGateway': {
      dimension: 'ApiId',
      type: 'AWS::ApiGatewayV2::Api',
      names: ['Count', '4xx', '5xx', 'Latency', 'IntegrationLatency', 'DataProcessed'],
    },
  };

/** Every .ts file under lib/ and functions/, with its text. */
function sourceFiles(): Array<{ path: string; text: string }> {
  return ['lib', 'functions'].flatMap((dir) =>
    (readdirSync(join(root, dir), { recursive: true }) as string[])
      .filter((file) => file.endsWith('.ts'))
      .map((file) => ({ path: `${dir}/${file}`, text: readFileSync(join(root, dir, file), 'utf8') })),
  );
}

/** The metric names the code publishes: each literal `addMetric('Name', …)`, and the refresh summary's. */
function publishedMetricNames(): Set<string> {
  const names = new Set<string>(Object.values(REFRESH_METRICS));
  for (const { text } of sourceFiles()) {
    for (const match of text.matchAll(/addMetric\(\s*'(\w+)'/g)) names.add(match[1] as string);
  }
  return names;
}

interface DashboardMetric {
  widget: string;
  namespace: string;
  name: string;
  dimensions: Array<[string, string]>;
  stat: string | undefined;
}

interface Widget {
  type: string;
  properties: Json & { title?: string; metrics?: unknown[][]; query?: string; region?: string };
}

/**
 * The dashboard body, parsed, with each Fn::Sub reference written as render() writes references:
 * `{EditsQueue.QueueName}`, `{HttpApi}`, `{AWS::Region}`.
 */
function dashboardWidgets(): Widget[] {
  const body = resource('OperatorDashboard').Properties.DashboardBody as Json;
  const text = body['Fn::Sub'];
  if (typeof text !== 'string')
    throw new Error(`DashboardBody is not an Fn::Sub string: ${JSON.stringify(body)}`);
  return (JSON.parse(text.replace(/\$\{([^}!]+)\}/g, '{$1}')) as { widgets: Widget[] }).widgets;
}

function dashboardMetrics(): DashboardMetric[] {
  return dashboardWidgets().flatMap((widget) =>
    (widget.properties.metrics ?? []).map((row) => {
      const options = (typeof row.at(-1) === 'object' ? row.at(-1) : {}) as Json;
      const [namespace, name, ...rest] = (
        typeof row.at(-1) === 'object' ? row.slice(0, -1) : row
      ) as string[];
      const dimensions: Array<[string, string]> = [];
      for (let i = 0; i < rest.length; i += 2) dimensions.push([rest[i] as string, rest[i + 1] as string]);
      return {
        widget: String(widget.properties.title),
        namespace: String(namespace),
        name: String(name),
        dimensions,
        stat: (options.stat ?? widget.properties.stat) as string | undefined,
      };
    }),
  );
}

/** `{Resource}` or `{Resource.Attribute}` to [Resource, Attribute]. */
function reference(value: string): [string, string | undefined] {
  const match = /^\{([A-Za-z0-9]+)(?:\.([A-Za-z]+))?\}$/.exec(value);
  if (!match) throw new Error(`${value} is not a reference to a resource of the stack`);
  return [match[1] as string, match[2]];
}

const shown = (namespace: string, name: string, dimension?: string) =>
  dashboardMetrics().some(
    (m) =>
      m.namespace === namespace &&
      m.name === name &&
      (dimension === undefined || m.dimensions.some(([, value]) => value === dimension)),
  );

describe('the operator dashboard', () => {
  it("is one CloudWatch dashboard named after the stage, every widget in the stack's region", () => {
    const dashboards = resourcesOfType(template(), 'AWS::CloudWatch::Dashboard');
    expect(dashboards.map(([id]) => id)).toEqual(['OperatorDashboard']);
    expect(resource('OperatorDashboard').Properties.DashboardName).toBe('b24-message-editor-prod');
    const widgets = dashboardWidgets();
    expect(widgets.length).toBeGreaterThan(5);
    for (const widget of widgets.filter((w) => w.type !== 'text')) {
      expect(widget.properties.region, widget.properties.title).toBe('{AWS::Region}');
    }
  });

  it("names only metrics the code publishes, under this stage's service dimension", () => {
    const published = publishedMetricNames();
    expect(published).toContain('EditsApplied');
    const own = dashboardMetrics().filter((m) => m.namespace === EMF_NAMESPACE);
    expect(own.length).toBeGreaterThan(0);
    const service = envOf('ReconcilePortals').POWERTOOLS_SERVICE_NAME;
    expect(service).toBe('b24-message-editor-prod');
    for (const metric of own) {
      expect(published, `${metric.widget}: ${metric.name}`).toContain(metric.name);
      expect(metric.dimensions, `${metric.widget}: ${metric.name}`).toEqual([['service', service]]);
    }
    // Every function publishes under the same service, so one dimension covers them all.
    for (const { id } of FUNCTIONS) expect(envOf(id).POWERTOOLS_SERVICE_NAME, id).toBe(service);
  });

  it('names only metrics AWS publishes for the queues, functions and HTTP API of this stack', () => {
    const others = dashboardMetrics().filter((m) => m.namespace !== EMF_NAMESPACE);
    expect(others.length).toBeGreaterThan(0);
    for (const metric of others) {
      const where = `${metric.widget}: ${metric.namespace} ${metric.name}`;
      const kind = AWS_METRICS[metric.namespace];
      expect(kind, where).toBeDefined();
      expect(kind?.names, where).toContain(metric.name);
      expect(
        metric.dimensions.map(([name]) => name),
        where,
      ).toEqual([kind?.dimension]);
      const [id, attribute] = reference(metric.dimensions[0]?.[1] ?? '');
      expect(resource(id).Type, where).toBe(kind?.type);
      expect(attribute, where).toBe(kind?.attribute);
    }
  });

  it('shows edits applied and failed, Bitrix24 calls and commands per call', () => {
    for (const name of ['EditsMerged', 'EditsApplied', 'EditsFailed', 'BitrixCalls', 'CommandsPerCall']) {
      expect(shown(EMF_NAMESPACE, name), name).toBe(true);
    }
    const perCall = dashboardMetrics().filter((m) => m.name === 'CommandsPerCall');
    expect(perCall.map((m) => m.stat).sort()).toEqual(['Average', 'Maximum']);
  });

  it("shows the backlog in front of the ledger and the portals due, as the queues' depth and age", () => {
    const edits = '{EditsQueue.QueueName}';
    const work = '{PortalWorkQueue.QueueName}';
    expect(shown('AWS/SQS', 'ApproximateNumberOfMessagesVisible', edits)).toBe(true);
    expect(shown('AWS/SQS', 'ApproximateAgeOfOldestMessage', edits)).toBe(true);
    expect(shown('AWS/SQS', 'ApproximateNumberOfMessagesVisible', work)).toBe(true);
    expect(shown('AWS/SQS', 'ApproximateNumberOfMessagesNotVisible', work)).toBe(true);
    // The age widget marks the oldest-edit-age alarm's threshold.
    const ageWidget = dashboardWidgets().find((w) =>
      (w.properties.metrics ?? []).some((row) => row[1] === 'ApproximateAgeOfOldestMessage'),
    );
    const marks =
      (ageWidget?.properties.annotations as { horizontal?: Json[] } | undefined)?.horizontal ?? [];
    expect(marks.map((mark) => mark.value)).toEqual([resource('OldestEditAgeAlarm').Properties.Threshold]);
  });

  it('shows the failed-edits and portal work dead-letter queues, and counts failed edits by code from the log lines that carry it', () => {
    expect(shown('AWS/SQS', 'ApproximateNumberOfMessagesVisible', '{FailedEditsQueue.QueueName}')).toBe(true);
    expect(
      shown('AWS/SQS', 'ApproximateNumberOfMessagesVisible', '{PortalWorkDeadLetterQueue.QueueName}'),
    ).toBe(true);
    const logs = dashboardWidgets().filter((w) => w.type === 'log');
    expect(logs).toHaveLength(1);
    const query = String(logs[0]?.properties.query);
    const sources = [...query.matchAll(/SOURCE '([^']+)'/g)].map((m) => reference(m[1] as string)[0]);
    expect(sources.sort()).toEqual(
      [
        'DrainEditsLogGroup',
        'ReconcilePortalsLogGroup',
        'RefreshStatusLogGroup',
        'UpdateMessageLogGroup',
        'WebhookLogGroup',
      ].sort(),
    );
    for (const id of sources) {
      expect(resource(id).Type).toBe('AWS::Logs::LogGroup');
      expect(resource(id).Properties.LogGroupName).toMatch(/^\/aws\/lambda\/b24-message-editor-prod-/);
    }
    expect(query).toMatch(/stats count\(\*\) as failed by code/);
    // Each message the query filters on is one the code logs, with the code beside it.
    const messages = [...query.matchAll(/"([^"]+)"/g)].map((m) => m[1] as string);
    expect(messages).toHaveLength(2);
    const code = sourceFiles()
      .map((f) => f.text)
      .join('\n');
    for (const message of messages) expect(code, message).toContain(`'${message}'`);
  });

  it.each(FUNCTIONS)("shows $name's errors, throttles and duration", ({ id }) => {
    for (const name of ['Errors', 'Throttles', 'Duration']) {
      expect(shown('AWS/Lambda', name, `{${id}LambdaFunction}`), name).toBe(true);
    }
  });

  it("shows the HTTP API's 4xx, 5xx and latency", () => {
    for (const name of ['4xx', '5xx', 'Latency'])
      expect(shown('AWS/ApiGateway', name, '{HttpApi}'), name).toBe(true);
  });

  it("outputs the dashboard's console URL", () => {
    expect(render(template().Outputs?.DashboardUrl?.Value)).toBe(
      'https://console.aws.amazon.com/cloudwatch/home?region={AWS::Region}#dashboards/dashboard/{OperatorDashboard}',
    );
  });
});

describe('npm run package with a broken status spec', () => {
  it('fails before building, naming the schedule, the spec and the field', () => {
    const dir = mkdtempSync(join(scratch, 'status-'));
    const file = join(dir, 'status-messages.yml');
    writeFileSync(
      file,
      [
        '- rate: rate(1 minute)',
        '  input: { portal: acme, botId: 1, messageId: 2, source: { type: none }, template: ok }',
        '- description: build board',
        '  rate: rate(5 minutes)',
        '  input:',
        '    messages:',
        '      - { portal: acme, botId: 1, messageId: 3, source: { type: none }, template: fine }',
        '      - { portal: acme, botId: 1, messageId: 4, source: { type: http-json, url: "http://x.example" }, template: t }',
      ].join('\n'),
    );
    try {
      const started = Date.now();
      const result = runPackager(['--status-file', file], offlineEnv());
      expect(result.status).toBe(1);
      expect(result.stderr).toContain(`${file}[1] ("build board") input`);
      expect(result.stderr).toContain('messages[1].source.url: must be an https URL');
      expect(result.stdout).not.toContain('dist/');
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
