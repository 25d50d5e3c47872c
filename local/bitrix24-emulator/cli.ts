import { parseArgs } from 'node:util';
import { seedDemoPortal } from './demo.ts';
import { startBitrix24Emulator } from './emulator.ts';

// Usage: npx node local/bitrix24-emulator/cli.ts [--port 8080] [--shape flat|nested] [--no-limits]
const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    shape: { type: 'string', default: 'nested' },
    'no-limits': { type: 'boolean', default: false },
  },
});

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65_535) {
  console.error(`Expected --port to be an integer 0..65535, got "${values.port}"`);
  process.exit(2);
}
if (values.shape !== 'flat' && values.shape !== 'nested') {
  console.error(`Expected --shape to be flat or nested, got "${values.shape}"`);
  process.exit(2);
}

const emulator = await startBitrix24Emulator({
  port,
  successShape: values.shape,
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
