import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { isRecord } from '../../lib/is-record.ts';
import { parseStatusInput } from '../../lib/status/index.ts';

/** One EventBridge schedule of the local stack: the status handler's input, sent every `everyMs`. */
export interface StatusSchedule {
  name: string;
  everyMs: number;
  /** One status spec or `{messages: [spec, ...]}`, as the schedule's constant input. */
  input: unknown;
  /** The messages the input keeps current, for the banner and the sandbox page. */
  messageIds: number[];
}

export class StatusSchedulesError extends Error {
  override name = 'StatusSchedulesError';
}

const UNITS: Record<string, number> = {
  second: 1_000,
  seconds: 1_000,
  minute: 60_000,
  minutes: 60_000,
  hour: 3_600_000,
  hours: 3_600_000,
  day: 86_400_000,
  days: 86_400_000,
};

/**
 * EventBridge's `rate(1 minute)`, `rate(5 minutes)`, ..., plus `rate(N seconds)`, which only the
 * local stack accepts (so that the demo moves while you watch). Undefined for anything else.
 */
export function parseRate(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const match = /^rate\(\s*(\d+)\s+([a-z]+)\s*\)$/i.exec(value.trim());
  const unit = match ? UNITS[match[2]?.toLowerCase() ?? ''] : undefined;
  if (!match || unit === undefined) return undefined;
  const ms = Number(match[1]) * unit;
  return ms >= 1_000 ? ms : undefined;
}

/** Replaces `${NAME}` with `vars[NAME]`; a name with no value is an error, never an empty string. */
export function substitute(text: string, vars: Readonly<Record<string, string>>, file: string): string {
  return text.replace(/\$\{([A-Z0-9_]+)\}/g, (_, name: string) => {
    const value = vars[name];
    if (value === undefined) {
      throw new StatusSchedulesError(
        `${file}: unknown variable \${${name}} (known: ${Object.keys(vars).join(', ')})`,
      );
    }
    return value;
  });
}

/**
 * Reads a status-messages file in the format of the deployed one (status-messages.yml: a YAML list of
 * `{rate, input, description?, enabled?}`). Every input is checked with the status handler's own
 * schema (http sources allowed), so a mistake stops `npm start` naming the schedule and the field.
 */
export async function loadStatusSchedules(
  file: string,
  vars: Readonly<Record<string, string>>,
): Promise<StatusSchedule[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new StatusSchedulesError(
      code === 'ENOENT'
        ? `${file} does not exist (STATUS_SPECS_FILE names the status schedules; STATUS_SPECS_FILE=off turns them off)`
        : `${file} could not be read (${code ?? String(error)})`,
    );
  }
  let document: unknown;
  try {
    document = parseYaml(substitute(text, vars, file));
  } catch (error) {
    if (error instanceof StatusSchedulesError) throw error;
    throw new StatusSchedulesError(`${file} is not valid YAML or JSON: ${(error as Error).message}`);
  }
  if (document === null || document === undefined) return [];
  if (!Array.isArray(document)) {
    throw new StatusSchedulesError(`${file}: expected a list of schedules ({rate, input}); use [] for none`);
  }
  const schedules: StatusSchedule[] = [];
  document.forEach((entry: unknown, index: number) => {
    const where = `${file}[${index}]`;
    if (!isRecord(entry)) throw new StatusSchedulesError(`${where} must be an object with rate and input`);
    if (entry.enabled === false) return;
    const rates = Array.isArray(entry.rate) ? entry.rate : [entry.rate];
    const intervals = rates.map(parseRate);
    const everyMs = Math.min(...intervals.map((ms) => ms ?? Number.NaN));
    if (rates.length === 0 || Number.isNaN(everyMs)) {
      throw new StatusSchedulesError(
        `${where}.rate must be rate(N seconds|minutes|hours|days) here (cron schedules run only when deployed), ` +
          `got ${JSON.stringify(entry.rate)}`,
      );
    }
    const { specs, invalid } = parseStatusInput(entry.input, { allowHttp: true });
    const first = invalid[0];
    if (first) {
      const field = first.field ? `.input.${first.field}` : '.input';
      throw new StatusSchedulesError(`${where}${field} ${first.message}`);
    }
    schedules.push({
      name:
        typeof entry.description === 'string' && entry.description
          ? entry.description
          : `schedule ${index + 1}`,
      everyMs,
      input: entry.input,
      messageIds: specs.map(({ spec }) => spec.messageId),
    });
  });
  return schedules;
}
