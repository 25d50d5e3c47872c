// Small readers for a generated CloudFormation template, enough to assert on it without AWS.

export type Json = Record<string, unknown>;

export interface Resource {
  Type: string;
  Properties: Json;
  Condition?: string;
  DependsOn?: string | string[];
}

export interface Template {
  Resources: Record<string, Resource>;
  Conditions?: Record<string, unknown>;
  Outputs?: Record<string, Json>;
}

/** An IAM statement with its Action and Resource normalised to arrays. */
export interface Statement {
  Effect: string;
  Action: string[];
  Resource: unknown[];
  /** The condition the statement depends on (from an Fn::If), if any. */
  condition?: string;
}

export function resourcesOfType(template: Template, type: string): Array<[string, Resource]> {
  return Object.entries(template.Resources).filter(([, resource]) => resource.Type === type);
}

function toArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [value];
}

/** The statements of a role's inline policies or a managed policy; Fn::If branches are unwrapped. */
export function statementsOf(resource: Resource): Statement[] {
  const documents =
    resource.Type === 'AWS::IAM::Role'
      ? ((resource.Properties.Policies ?? []) as Array<{ PolicyDocument: { Statement: unknown[] } }>).map(
          (p) => p.PolicyDocument,
        )
      : [resource.Properties.PolicyDocument as { Statement: unknown[] }];
  const statements: Statement[] = [];
  for (const raw of documents.flatMap((d) => d.Statement)) {
    const branches: Array<[unknown, string | undefined]> = [];
    const cfIf = (raw as Json)['Fn::If'] as [string, unknown, unknown] | undefined;
    if (cfIf) {
      branches.push([cfIf[1], cfIf[0]], [cfIf[2], cfIf[0]]);
    } else {
      branches.push([raw, undefined]);
    }
    for (const [branch, condition] of branches) {
      const statement = branch as Json;
      if (statement.Ref === 'AWS::NoValue') continue;
      statements.push({
        Effect: String(statement.Effect),
        Action: toArray(statement.Action) as string[],
        Resource: toArray(statement.Resource),
        ...(condition ? { condition } : {}),
      });
    }
  }
  return statements;
}

/**
 * A string from Fn::Join / Fn::Sub / plain values, with pseudo parameters and references written as
 * `{AWS::Region}`, `{EditsQueue}`, so that a test can read an ARN pattern.
 */
export function render(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  const json = value as Json;
  if (typeof json.Ref === 'string') return `{${json.Ref}}`;
  if (Array.isArray(json['Fn::GetAtt'])) return `{${(json['Fn::GetAtt'] as string[]).join('.')}}`;
  if (Array.isArray(json['Fn::Join'])) {
    const [separator, parts] = json['Fn::Join'] as [string, unknown[]];
    return parts.map(render).join(separator);
  }
  throw new Error(`cannot render ${JSON.stringify(value)}`);
}

/** Evaluates a template condition made of Fn::Equals / Fn::Not / Fn::And / Fn::Or on literals. */
export function conditionHolds(template: Template, name: string): boolean {
  const evaluate = (expression: unknown): boolean => {
    const json = expression as Json;
    if (json.Condition) return evaluate(template.Conditions?.[json.Condition as string]);
    if (json['Fn::Equals']) {
      const [a, b] = json['Fn::Equals'] as [unknown, unknown];
      return render(a) === render(b);
    }
    if (json['Fn::Not']) return !evaluate((json['Fn::Not'] as unknown[])[0]);
    if (json['Fn::And']) return (json['Fn::And'] as unknown[]).every(evaluate);
    if (json['Fn::Or']) return (json['Fn::Or'] as unknown[]).some(evaluate);
    throw new Error(`cannot evaluate ${JSON.stringify(expression)}`);
  };
  const condition = template.Conditions?.[name];
  if (condition === undefined) throw new Error(`no condition ${name}`);
  return evaluate(condition);
}

/** The value of an Fn::If given its condition's outcome in this template. */
export function resolveIf(template: Template, value: unknown): unknown {
  const cfIf = (value as Json | undefined)?.['Fn::If'] as [string, unknown, unknown] | undefined;
  if (!cfIf) return value;
  const chosen = conditionHolds(template, cfIf[0]) ? cfIf[1] : cfIf[2];
  return (chosen as Json | undefined)?.Ref === 'AWS::NoValue' ? undefined : chosen;
}
