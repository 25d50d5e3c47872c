import {
  type CommandSpec,
  integerOption,
  parseCommandLine,
  runCommand,
  UsageError,
} from '../../scripts/cli.ts';
import { seedDemoPortal } from './demo.ts';
import { startBitrix24Emulator } from './emulator.ts';

const COMMAND: CommandSpec = {
  name: 'npx node local/bitrix24-emulator/cli.ts',
  summary:
    'Runs the Bitrix24 emulator alone on 127.0.0.1, seeded with the demo portal, until Ctrl-C.\n' +
    'The first stdout line is its URL (read by scripts); the demo portal is described on stderr.',
  usage: '[options]',
  options: {
    port: {
      type: 'string',
      value: '<port>',
      default: '0',
      description: 'port to listen on, 0 = any free port',
    },
    shape: {
      type: 'string',
      value: '<flat|nested>',
      default: 'nested',
      description: 'shape of successful answers: nested ({"result":{"result":…}}) or flat',
    },
    billing: {
      type: 'string',
      value: '<per-method|per-batch>',
      default: 'per-method',
      description:
        'what a batch call is billed to in operating time: each command per method, or the call as batch',
    },
    'no-limits': { type: 'boolean', description: 'turn the leaky bucket and operating-time limits off' },
  },
  examples: ['npx node local/bitrix24-emulator/cli.ts --port 8080 --no-limits'],
};

let requestedPort = 0;

async function main(): Promise<void> {
  const args = parseCommandLine(COMMAND, process.argv.slice(2));
  if (!args) return;
  const { values } = args;
  const port = integerOption(values, 'port', 0, 65_535);
  requestedPort = port;
  if (values.shape !== 'flat' && values.shape !== 'nested') {
    throw new UsageError(`--shape must be flat or nested, got "${values.shape}"`);
  }
  if (values.billing !== 'per-method' && values.billing !== 'per-batch') {
    throw new UsageError(`--billing must be per-method or per-batch, got "${values.billing}"`);
  }

  const emulator = await startBitrix24Emulator({
    port,
    successShape: values.shape,
    operatingBilling: values.billing,
    ...(values['no-limits'] ? { limits: null } : {}),
  });
  const demo = seedDemoPortal(emulator);
  // The first line is machine-read by tests and scripts that start the CLI as a child process.
  console.log(emulator.url);
  console.error(
    `Bitrix24 emulator on ${emulator.url}: webhook user ${demo.webhook.userId} (code in demo.ts), ` +
      `bot ${demo.botId}, chat ${demo.chatId}, messages ${demo.botMessageIds.join(', ')}. Ctrl-C stops it.`,
  );

  let stopping = false;
  async function stop(): Promise<void> {
    if (stopping) return;
    stopping = true;
    await emulator.close();
    process.exit(0);
  }
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

await runCommand(COMMAND, main, (error) =>
  error instanceof Error && 'code' in error && error.code === 'EADDRINUSE'
    ? `port ${requestedPort} is taken; choose another with --port (0 picks a free one)`
    : undefined,
);
