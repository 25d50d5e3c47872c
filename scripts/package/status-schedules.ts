import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { ConfigError } from '../../lib/errors.ts';
import { isRecord } from '../../lib/is-record.ts';
import { assertValidStatusSpecs } from '../../lib/status/spec.ts';

/** One serverless `schedule` event for the refreshStatus function. */
export interface ScheduleEvent {
  schedule: {
    rate: string[];
    input: unknown;
    description?: string;
    enabled?: boolean;
  };
}

// The same syntax osls accepts; checked here so that the error names the schedule.
const RATE = /^rate\((?:1 (?:minute|hour|day)|(?:1\d+|[2-9]\d*) (?:minute|hour|day)s)\)$/;
const CRON = /^cron\(\S+ \S+ \S+ \S+ \S+ \S+\)$/;
/** EventBridge refuses a rule target input longer than this. */
export const SCHEDULE_INPUT_MAX_CHARS = 8_192;
const ENTRY_KEYS = ['rate', 'input', 'description', 'enabled'];

function fail(label: string, problems: string[]): never {
  const noun = problems.length === 1 ? 'problem' : 'problems';
  throw new ConfigError(
    label,
    `${label}: ${problems.length} ${noun}:\n${problems.map((p) => `  ${p}`).join('\n')}`,
  );
}

function scheduleLabel(file: string, index: number, entry: Record<string, unknown>): string {
  const description = typeof entry.description === 'string' ? ` ("${entry.description}")` : '';
  return `${file}[${index}]${description}`;
}

function rateProblems(rate: unknown): string[] {
  const rates = Array.isArray(rate) ? rate : [rate];
  if (rate === undefined) return ['rate: is required'];
  if (rates.length === 0) return ['rate: must not be an empty list'];
  return rates.flatMap((r) =>
    typeof r === 'string' && (RATE.test(r) || CRON.test(r))
      ? []
      : [`rate: ${JSON.stringify(r)} is not rate(1 minute), rate(N minutes|hours|days) or cron(6 fields)`],
  );
}

/** Which message each spec keeps current, so that two schedules never fight over one message. */
function targetOf(spec: { portal: string; botId: number; messageId: number }): string {
  return `portal ${spec.portal}, bot ${spec.botId}, message ${spec.messageId}`;
}

/**
 * Reads a status-messages file (a YAML list of `{rate, input, description?, enabled?}`), checks every
 * input with the refresh handler's own spec schema, and returns the refreshStatus schedule events.
 * Throws one ConfigError per bad schedule naming the file, the schedule and every bad field.
 * `label` is how the file is named in messages (default: the path as given).
 */
export function loadStatusSchedules(path: string, label = path): ScheduleEvent[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      label,
      `${label}: cannot read the status messages file (${(error as Error).message})`,
    );
  }
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    throw new ConfigError(label, `${label}: not valid YAML: ${(error as Error).message}`);
  }
  if (document === null || document === undefined) return [];
  if (!Array.isArray(document)) {
    fail(label, ['(file): must be a list of schedules ({rate, input}); use [] for none']);
  }

  const targets = new Map<string, string>();
  return document.map((entry: unknown, index): ScheduleEvent => {
    if (!isRecord(entry)) fail(`${label}[${index}]`, ['(schedule): must be an object with rate and input']);
    const name = scheduleLabel(label, index, entry);
    const problems = [
      ...Object.keys(entry)
        .filter((key) => !ENTRY_KEYS.includes(key))
        .map((key) => `${key}: unknown key; expected one of ${ENTRY_KEYS.join(', ')}`),
      ...rateProblems(entry.rate),
    ];
    if (entry.description !== undefined && typeof entry.description !== 'string') {
      problems.push('description: must be a string');
    }
    if (entry.enabled !== undefined && typeof entry.enabled !== 'boolean') {
      problems.push('enabled: must be true or false');
    }
    if (entry.input === undefined) problems.push('input: is required');
    if (problems.length > 0) fail(name, problems);

    // Source URLs must be https, as the deployed handler (B24_ALLOW_HTTP=false) requires.
    const specs = assertValidStatusSpecs(entry.input, `${name} input`);
    const size = JSON.stringify(entry.input).length;
    if (size > SCHEDULE_INPUT_MAX_CHARS) {
      fail(name, [
        `input: is ${size.toLocaleString('en-US')} characters as JSON; EventBridge allows ` +
          `${SCHEDULE_INPUT_MAX_CHARS.toLocaleString('en-US')}: split its messages over several schedules`,
      ]);
    }
    specs.forEach((spec, i) => {
      const field = Array.isArray((entry.input as Record<string, unknown>).messages)
        ? `input.messages[${i}]`
        : 'input';
      const first = targets.get(targetOf(spec));
      if (first !== undefined) {
        fail(name, [
          `${field}: ${targetOf(spec)} already has a spec (${first}); one message can have only one`,
        ]);
      }
      targets.set(targetOf(spec), `${name} ${field}`);
    });

    const schedule: ScheduleEvent['schedule'] = {
      rate: Array.isArray(entry.rate) ? (entry.rate as string[]) : [entry.rate as string],
      input: entry.input,
    };
    if (typeof entry.description === 'string') schedule.description = entry.description;
    if (typeof entry.enabled === 'boolean') schedule.enabled = entry.enabled;
    return { schedule };
  });
}
