import { ConfigError } from '../../lib/errors.ts';

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
 * Relations between settings that serverless variables cannot express, checked on the generated
 * CloudFormation template: the redrive net sits above the drain's own attempt limit, the queue's
 * visibility timeout is at least six times the drain's timeout, and the drain's concurrency setting
 * matches its event source mapping. Returns the problems found (empty when all hold).
 */
export function templateProblems(template: Json): string[] {
  const problems: string[] = [];
  const resources = (template.Resources ?? {}) as Record<string, Json>;
  const queue = resources.EditsQueue;
  const drain = resources.DrainEditsLambdaFunction;
  if (!queue) return ['the template has no EditsQueue resource'];
  if (!drain) return problems;

  const env = (at(drain, 'Properties', 'Environment', 'Variables') ?? {}) as Json;
  const maxAttempts = Number(env.MAX_ATTEMPTS);
  const maxReceiveCount = Number(at(queue, 'Properties', 'RedrivePolicy', 'maxReceiveCount'));
  if (!(maxReceiveCount > maxAttempts)) {
    problems.push(
      `the edits queue's maxReceiveCount (${maxReceiveCount}) must be above MAX_ATTEMPTS (${maxAttempts}): ` +
        'the drain moves an edit out with its reason after MAX_ATTEMPTS receives; the redrive is the net for crashes',
    );
  }

  const timeout = Number(at(drain, 'Properties', 'Timeout'));
  const visibility = Number(at(queue, 'Properties', 'VisibilityTimeout'));
  if (!(visibility >= 6 * timeout)) {
    problems.push(
      `the edits queue's VisibilityTimeout (${visibility} s) must be at least 6 × the drain timeout (${timeout} s)`,
    );
  }

  const mapping = resourcesOfType(template, 'AWS::Lambda::EventSourceMapping').find(
    (m) => at(m, 'Properties', 'FunctionName', 'Fn::GetAtt', '0') === 'DrainEditsLambdaFunction',
  );
  const maximumConcurrency = Number(at(mapping, 'Properties', 'ScalingConfig', 'MaximumConcurrency'));
  if (Number(env.DRAIN_MAX_CONCURRENCY) !== maximumConcurrency) {
    problems.push(
      `DRAIN_MAX_CONCURRENCY (${env.DRAIN_MAX_CONCURRENCY}) must equal the drain's event source mapping ` +
        `MaximumConcurrency (${maximumConcurrency}): the drain divides each portal's rate by it`,
    );
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
