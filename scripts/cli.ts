// The one way the project's commands read their arguments: `--help` prints usage, options with their
// defaults and an example, and a bad argument becomes one line naming it (exit 2), never a stack trace.
import { parseArgs } from 'node:util';
import { AppError } from '../lib/errors.ts';

/** One option of a command, as `node:util` parseArgs takes it plus what `--help` says about it. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** May be given more than once; the value is then a list. */
  multiple?: boolean;
  /** Shown in `--help` as the default; strings are also returned when the option is absent. */
  default?: string | boolean;
  /** Placeholder of the value in `--help`, e.g. `<port>`. */
  value?: string;
  description: string;
}

export interface CommandSpec {
  /** How the user runs it, e.g. `npm start` or `npm run b24 -- send`. */
  name: string;
  summary: string;
  /** The part after the name in the usage line, e.g. `[options] <portal> <botId>`. */
  usage: string;
  options: Record<string, OptionSpec>;
  /** Extra lines after the options (environment variables, notes). */
  notes?: string[];
  examples: string[];
  /** Positional arguments the command requires, named for the error line; no others are accepted. */
  positionals?: string[];
}

/** How to ask the command for its help, e.g. `npm start -- --help`. */
export function helpCommand(spec: CommandSpec): string {
  return spec.name.startsWith('npm ') && !spec.name.includes(' -- ')
    ? `${spec.name} -- --help`
    : `${spec.name} --help`;
}

/** A command line the command cannot run: the message names the argument and the rule. */
export class UsageError extends AppError {
  override name = 'UsageError';

  constructor(message: string) {
    super('INVALID_ARGUMENTS', message, 400);
  }
}

/** A child process failed; it has printed its own message, so nothing is added after it. */
export class ChildProcessFailed extends AppError {
  override name = 'ChildProcessFailed';
  readonly exitCode: number;

  constructor(command: string, exitCode: number) {
    super('CHILD_PROCESS_FAILED', `${command} failed (exit ${exitCode})`);
    this.exitCode = exitCode;
  }
}

export function helpText(spec: CommandSpec): string {
  const rows = Object.entries(spec.options).map(([name, option]) => {
    const flag = `${option.short ? `-${option.short}, ` : '    '}--${name}${option.value ? ` ${option.value}` : ''}`;
    const fallback =
      option.default === undefined || option.default === false ? '' : ` (default: ${String(option.default)})`;
    return [flag, `${option.description}${fallback}`] as const;
  });
  rows.push(['-h, --help', 'print this help and exit']);
  const width = Math.max(...rows.map(([flag]) => flag.length));
  return [
    `${spec.summary}`,
    '',
    `Usage: ${spec.name} ${spec.usage}`.trimEnd(),
    '',
    'Options:',
    ...rows.map(([flag, text]) => `  ${flag.padEnd(width)}  ${text}`),
    ...(spec.notes?.length ? ['', ...spec.notes] : []),
    '',
    spec.examples.length > 1 ? 'Examples:' : 'Example:',
    ...spec.examples.map((example) => `  ${example}`),
    '',
  ].join('\n');
}

export interface ParsedCommandLine {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export function wantsHelp(argv: readonly string[]): boolean {
  return argv.some((arg) => arg === '--help' || arg === '-h');
}

/**
 * Parses `argv` against `spec`. Returns undefined after printing the help when asked for it; throws
 * UsageError for an unknown option, a missing value or a missing positional argument.
 */
export function parseCommandLine(spec: CommandSpec, argv: readonly string[]): ParsedCommandLine | undefined {
  if (wantsHelp(argv)) {
    process.stdout.write(helpText(spec));
    return undefined;
  }
  const options = Object.fromEntries(
    Object.entries(spec.options).map(([name, option]) => [
      name,
      {
        type: option.type,
        ...(option.short ? { short: option.short } : {}),
        ...(option.multiple ? { multiple: true } : {}),
        ...(option.default !== undefined ? { default: option.default } : {}),
      },
    ]),
  );
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    // node:util's messages already name the option; drop its advice about `--` to keep one line.
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new UsageError(String(message).replace(/\. To specify a positional argument.*$/, ''));
  }
  const required = spec.positionals ?? [];
  if (parsed.positionals.length < required.length) {
    throw new UsageError(`missing <${required[parsed.positionals.length]}>`);
  }
  const extra = parsed.positionals[required.length];
  if (extra !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(extra)}`);
  return {
    values: parsed.values as ParsedCommandLine['values'],
    positionals: parsed.positionals,
  };
}

/** An integer option's value, or a UsageError naming the option, its range and what was given. */
export function integerOption(
  values: ParsedCommandLine['values'],
  name: string,
  min: number,
  max: number,
): number {
  const given = values[name];
  const number = typeof given === 'string' && /^-?\d+$/.test(given.trim()) ? Number(given) : Number.NaN;
  if (!Number.isInteger(number) || number < min || number > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(given)}`);
  }
  return number;
}

/** Runs a command's main, turning UsageError into one line and exit 2, other thrown errors into exit 1. */
export async function runCommand(
  spec: CommandSpec,
  main: () => Promise<void> | void,
  explain: (error: unknown) => string | undefined = () => undefined,
): Promise<void> {
  try {
    await main();
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${spec.name}: ${error.message}. See ${helpCommand(spec)}.`);
      process.exitCode = 2;
      return;
    }
    if (error instanceof ChildProcessFailed) {
      process.exitCode = error.exitCode;
      return;
    }
    const known = explain(error);
    console.error(
      `${spec.name} failed: ${known ?? (error instanceof Error ? (error.stack ?? error.message) : String(error))}`,
    );
    process.exitCode = 1;
  }
}
