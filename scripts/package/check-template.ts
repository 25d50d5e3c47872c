import { isDeepStrictEqual } from 'node:util';
import { AWS_CLIENT_LIMITS } from '../../lib/aws.ts';
import { ConfigError } from '../../lib/errors.ts';
import { LEDGER_TABLE, TTL_ATTRIBUTE } from '../../lib/ledger/table.ts';

type Json = Record<string, unknown>;

function at(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Json)[key];
  }
  return current;
}

function resourcesOfType(template: Json, type: string): Json[] {
  const resources = (template.Resources ?? {}) as Record<string, Json>;
  return Object.values(resources).filter((resource) => resource.Type === type);
}

/**
 * The ledger table of the template against LEDGER_TABLE (lib/ledger/table.ts), the definition the
 * code queries and the local table is made from: a key or index that differs would fail at run time.
 */
function ledgerProblems(table: Json | undefined): string[] {
  if (!table) return ['the template has no LedgerTable resource (infra/ledger.yml)'];
  const problems: string[] = [];
  for (const [key, expected] of Object.entries(LEDGER_TABLE)) {
    const actual = at(table, 'Properties', key);
    if (!isDeepStrictEqual(actual, expected)) {
      problems.push(
        `LedgerTable ${key} must be ${JSON.stringify(expected)} as in lib/ledger/table.ts, got ${JSON.stringify(actual)}`,
      );
    }
  }
  const ttl = at(table, 'Properties', 'TimeToLiveSpecification') as Json | undefined;
  if (ttl?.AttributeName !== TTL_ATTRIBUTE || ttl.Enabled !== true) {
    problems.push(
      `LedgerTable must enable TTL on the "${TTL_ATTRIBUTE}" attribute, got ${JSON.stringify(ttl)}`,
    );
  }
  return problems;
}

/** Each SQS event source: its queue, and the function whose timeout its visibility timeout covers. */
const EVENT_SOURCES = [
  { queue: 'EditsQueue', fn: 'DrainEditsLambdaFunction', name: 'the edits queue', consumer: 'the drain' },
  {
    queue: 'PortalWorkQueue',
    fn: 'ReconcilePortalsLambdaFunction',
    name: 'the portal work queue',
    consumer: 'the reconcile function',
  },
];

/**
 * Relations between settings that serverless variables cannot express, checked on the generated
 * CloudFormation template: each event source queue's visibility timeout is at least six times its
 * function's timeout, the drain's concurrency setting matches its event source mapping, every
 * Bitrix24 caller's deadline budget fits in its timeout, and the ledger table is the one
 * lib/ledger/table.ts defines. Returns the problems found (empty when all hold).
 */
export function templateProblems(template: Json): string[] {
  const resources = (template.Resources ?? {}) as Record<string, Json>;
  const problems: string[] = ledgerProblems(resources.LedgerTable);
  for (const [id, fn] of Object.entries(resources)) {
    if (fn.Type !== 'AWS::Lambda::Function') continue;
    const table = at(fn, 'Properties', 'Environment', 'Variables', 'STATE_TABLE_NAME');
    if (!isDeepStrictEqual(table, { Ref: 'LedgerTable' })) {
      problems.push(`${id} must get STATE_TABLE_NAME { Ref: LedgerTable }, got ${JSON.stringify(table)}`);
    }
  }
  problems.push(...deadlineProblems(resources));
  for (const source of EVENT_SOURCES) {
    const queue = resources[source.queue];
    const fn = resources[source.fn];
    if (!queue) {
      problems.push(`the template has no ${source.queue} resource`);
      continue;
    }
    if (!fn) continue;
    const timeout = Number(at(fn, 'Properties', 'Timeout'));
    const visibility = Number(at(queue, 'Properties', 'VisibilityTimeout'));
    if (!(visibility >= 6 * timeout)) {
      problems.push(
        `${source.name}'s VisibilityTimeout (${visibility} s) must be at least 6 × ${source.consumer}'s timeout (${timeout} s)`,
      );
    }
  }

  const drain = resources.DrainEditsLambdaFunction;
  if (!drain) return problems;
  const env = (at(drain, 'Properties', 'Environment', 'Variables') ?? {}) as Json;
  const mapping = resourcesOfType(template, 'AWS::Lambda::EventSourceMapping').find(
    (m) => at(m, 'Properties', 'FunctionName', 'Fn::GetAtt', '0') === 'DrainEditsLambdaFunction',
  );
  const maximumConcurrency = Number(at(mapping, 'Properties', 'ScalingConfig', 'MaximumConcurrency'));
  if (Number(env.DRAIN_MAX_CONCURRENCY) !== maximumConcurrency) {
    problems.push(
      `DRAIN_MAX_CONCURRENCY (${env.DRAIN_MAX_CONCURRENCY}) must equal the drain's event source mapping ` +
        `MaximumConcurrency (${maximumConcurrency}): the variable tells the code how many drains run at once`,
    );
  }
  return problems;
}

/**
 * The functions that call Bitrix24 (the others get B24_TIMEOUT_MS from the provider but never use it):
 * the API, the reconcile of woken portals and the status refresher. The drain and the sweep call none.
 */
const CALLERS = [
  'UpdateMessageLambdaFunction',
  'ReconcilePortalsLambdaFunction',
  'RefreshStatusLambdaFunction',
];

/**
 * One deadline budget per function that calls Bitrix24: a whole call (B24_TIMEOUT_MS), the margin kept
 * before the deadline (DEADLINE_MARGIN_MS) and one AWS request around it (the SDK's request timeout)
 * must fit in the function's timeout, or no call could ever start (edits would wait in the ledger,
 * never applied) and a slow one would be cut by the runtime.
 */
function deadlineProblems(resources: Record<string, Json>): string[] {
  const problems: string[] = [];
  const awsMs = AWS_CLIENT_LIMITS.requestHandler.requestTimeout;
  for (const id of CALLERS) {
    const fn = resources[id];
    const env = (at(fn, 'Properties', 'Environment', 'Variables') ?? {}) as Json;
    if (!fn || env.B24_TIMEOUT_MS === undefined) continue;
    const callMs = Number(env.B24_TIMEOUT_MS);
    const marginMs = Number(env.DEADLINE_MARGIN_MS ?? 0);
    const timeoutMs = Number(at(fn, 'Properties', 'Timeout') ?? 3) * 1000;
    if (!(callMs + marginMs + awsMs <= timeoutMs)) {
      problems.push(
        `${id}: B24_TIMEOUT_MS (${callMs}) + DEADLINE_MARGIN_MS (${marginMs}) + one AWS request (${awsMs} ms) ` +
          `must fit in its timeout (${timeoutMs} ms): lower b24TimeoutMs or raise the function's timeout`,
      );
    }
  }
  return problems;
}

/** Throws a ConfigError listing every problem `templateProblems` finds. */
export function assertTemplateConsistent(template: Json, label: string): void {
  const problems = templateProblems(template);
  if (problems.length > 0) {
    throw new ConfigError(label, `${label}:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}

/** Evaluates a template condition made of Fn::Equals/Not/And/Or on literals; undefined when it cannot tell. */
function conditionValue(template: Json, expression: unknown): boolean | undefined {
  if (typeof expression !== 'object' || expression === null) return undefined;
  const [fn, args] = Object.entries(expression)[0] ?? [];
  const list = Array.isArray(args) ? args : [];
  const all = () => list.map((arg) => conditionValue(template, arg));
  switch (fn) {
    case 'Fn::Equals':
      return list.every((arg) => typeof arg === 'string') ? list[0] === list[1] : undefined;
    case 'Fn::Not': {
      const inner = conditionValue(template, list[0]);
      return inner === undefined ? undefined : !inner;
    }
    case 'Fn::And':
      return all().includes(false) ? false : all().includes(undefined) ? undefined : true;
    case 'Fn::Or':
      return all().includes(true) ? true : all().includes(undefined) ? undefined : false;
    case 'Condition':
      return conditionValue(template, at(template, 'Conditions', String(args)));
    default:
      return undefined;
  }
}

/** The ids of the template's alarms that notify nobody (no AlarmActions once conditions are resolved). */
export function alarmsWithoutActions(template: Json): string[] {
  const resources = (template.Resources ?? {}) as Record<string, Json>;
  return Object.entries(resources)
    .filter(([, resource]) => resource.Type === 'AWS::CloudWatch::Alarm')
    .filter(([, alarm]) => {
      let actions = at(alarm, 'Properties', 'AlarmActions');
      const choice = at(actions, 'Fn::If');
      if (Array.isArray(choice)) {
        const holds = conditionValue(template, at(template, 'Conditions', String(choice[0])));
        if (holds === undefined) return false;
        actions = holds ? choice[1] : choice[2];
      }
      return !Array.isArray(actions) || actions.length === 0;
    })
    .map(([id]) => id);
}
