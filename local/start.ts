// `npm start`: the whole system on 127.0.0.1 (local/stack/stack.ts), until Ctrl-C.
import { type CommandSpec, helpCommand, parseCommandLine, UsageError } from '../scripts/cli.ts';
import {
  banner,
  drainLine,
  drainSwitchLine,
  reconcileLine,
  requestLine,
  statusRunLine,
  sweepLine,
} from './stack/banner.ts';
import {
  DEFAULT_PORTS,
  DEFAULT_SWEEP_INTERVAL_SECONDS,
  LocalConfigError,
  loadLocalConfig,
} from './stack/config.ts';
import { PortUnavailableError } from './stack/ports.ts';
import { type LocalStack, startLocalStack } from './stack/stack.ts';
import { StatusSchedulesError } from './stack/status-schedules.ts';

// A stop that takes longer than this is stuck: say so and leave anyway.
const STOP_DEADLINE_MS = 8_000;
const started = performance.now();

const COMMAND: CommandSpec = {
  name: 'npm start',
  summary:
    'Runs the whole system on 127.0.0.1 (Bitrix24 emulator, SQS, Secrets Manager, DynamoDB, the API, the drain,\n' +
    'the reconcile, the sweep, status schedules and the sandbox page) with the production handlers, until Ctrl-C.',
  usage: '[-- --paused] [-- --help]',
  options: {
    paused: {
      type: 'boolean',
      description:
        'start with the drain, the reconcile, the sweep and the status schedules paused: edits pile up until Resume on the sandbox page',
    },
  },
  notes: [
    'It is configured by environment variables (docs/local-stack.md, "Local stack variables"):',
    ...Object.entries(DEFAULT_PORTS).map(
      ([name, port]) => `  ${name.padEnd(22)} ${port} (0 picks a free port)`,
    ),
    `  ${'SWEEP_INTERVAL_SECONDS'.padEnd(22)} ${DEFAULT_SWEEP_INTERVAL_SECONDS}`,
    `  ${'STATUS_SPECS_FILE'.padEnd(22)} local/status-messages.local.yml (off with a real portal); "off" turns it off`,
    `  ${'B24_PORTAL_URL'.padEnd(22)} unset: the emulator; set: a real portal, with B24_WEBHOOK_USER_ID,`,
    `  ${''.padEnd(22)} B24_WEBHOOK_CODE, B24_BOT_ID, B24_BOT_TOKEN and B24_PLAN (standard)`,
  ],
  examples: ['npm start', 'npm start -- --paused', 'API_PORT=3001 SANDBOX_PORT=0 npm start'],
};

function explain(error: unknown): string {
  if (
    error instanceof PortUnavailableError ||
    error instanceof LocalConfigError ||
    error instanceof StatusSchedulesError
  ) {
    return error.message;
  }
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

let stack: LocalStack | undefined;
let stopping = false;

async function stop(signal: string): Promise<void> {
  if (stopping) {
    console.log(`${signal} again: leaving without waiting.`);
    process.exit(130);
  }
  stopping = true;
  console.log(`\n${signal}: stopping the local stack…`);
  const watchdog = setTimeout(() => {
    console.error(`Still stopping after ${STOP_DEADLINE_MS / 1000} s; leaving anyway.`);
    process.exit(1);
  }, STOP_DEADLINE_MS);
  watchdog.unref();
  await stack?.close();
  clearTimeout(watchdog);
  console.log('Stopped.');
  process.exit(0);
}

// Installed first, so that a Ctrl-C during start-up also stops what has started.
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));

let args: ReturnType<typeof parseCommandLine>;
try {
  args = parseCommandLine(COMMAND, process.argv.slice(2));
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  console.error(`npm start: ${error.message}. See ${helpCommand(COMMAND)}.`);
  process.exit(2);
}
if (!args) process.exit(0);

try {
  const config = loadLocalConfig(process.env);
  stack = await startLocalStack(
    config,
    {
      onRequest: (activity) => console.log(requestLine(activity)),
      onStatusRun: (run) => {
        const line = statusRunLine(run);
        if (line) console.log(line);
      },
      onDrainInvocation: (invocation) => console.log(drainLine(invocation)),
      onDrainError: (error) =>
        console.error(`drain poller: ${error instanceof Error ? error.name : String(error)}`),
      onReconcileInvocation: (invocation) => {
        // Quiet when a wake-up found nothing to do (a duplicate, or one that came early).
        const { outcomes } = invocation;
        const idle = outcomes && !outcomes.applied && !outcomes.calls && invocation.leftInQueue === 0;
        if (!idle || invocation.error) console.log(reconcileLine(invocation));
      },
      onReconcileError: (error) =>
        console.error(`reconcile poller: ${error instanceof Error ? error.name : String(error)}`),
      onSweep: (run) => {
        const line = sweepLine(run);
        if (line) console.log(line);
      },
      onDrainSwitch: (view) => console.log(drainSwitchLine(view)),
    },
    { paused: args.values.paused === true },
  );
  if (stopping) await stack.close();
  else console.log(banner(stack.info, config, Math.round(performance.now() - started)));
} catch (error) {
  console.error(`npm start failed: ${explain(error)}`);
  process.exit(1);
}
