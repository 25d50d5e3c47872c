// npm run b24 -- check: runs the documented imbot.v2 sequence on the user's portal and on this
// checkout's emulator, and prints where their answers differ. The command; scripts/b24.ts gives it
// the portal's webhook (the same environment as register-bot and send).
import type { Bitrix24Client } from '../lib/bitrix24/client.ts';
import type { PortalAuth } from '../lib/bitrix24/types.ts';
import { redactString, registerCredentialPair, registerSecret } from '../lib/observability/redact.ts';
import { LeakyBucket } from '../lib/pacing/leaky-bucket.ts';
import { standardPlan } from '../lib/pacing/policies.ts';
import { differences, type Row, renderReport } from './check/report.ts';
import { CHECK_BOT_CODE, PortalRun, startReference } from './check/setup.ts';
import { STEPS } from './check/steps.ts';
import { type CommandSpec, type ParsedCommandLine, UsageError } from './cli.ts';

/** The portal's client and webhook, from the environment (scripts/b24.ts reads it). */
export type CheckPortal = () => { client: Bitrix24Client; auth: PortalAuth };

export const CHECK: CommandSpec = {
  name: 'npm run b24 -- check',
  summary:
    'Runs the documented imbot.v2 sequence on your portal and on the emulator, and compares the answers.\n' +
    'Prints a markdown table (exit 0: all the same, 1: some differ). Registers a bot and makes a chat for\n' +
    'the run, and removes them and the messages it sent when done.',
  usage: '[--code <code>]',
  options: {
    code: {
      type: 'string',
      value: '<code>',
      default: CHECK_BOT_CODE,
      description: 'the code of the bot the check registers for its run',
    },
  },
  notes: [
    'The portal comes from the environment, as for register-bot and send:',
    '  B24_PORTAL_URL        https://<portal>.bitrix24.<zone>',
    '  B24_WEBHOOK_USER_ID   the user id in the inbound webhook URL (/rest/<user id>/<code>/)',
    '  B24_WEBHOOK_CODE      the code in that URL; the webhook needs the imbot scope',
    '',
    `About ${STEPS.length + 10} calls, paced to the standard plan's limit (2 a second past a burst of 50).`,
    'No token or webhook code is printed.',
  ],
  examples: [
    'B24_PORTAL_URL=https://acme.bitrix24.com B24_WEBHOOK_USER_ID=1 B24_WEBHOOK_CODE=… npm run b24 -- check',
  ],
};

export async function check({ values }: ParsedCommandLine, portal: CheckPortal): Promise<void> {
  const code = typeof values.code === 'string' ? values.code.trim() : '';
  if (!code) throw new UsageError('--code must not be empty: the code of the bot the check registers');
  const { client, auth } = portal();
  if (auth.type !== 'webhook') throw new UsageError('the check calls the portal through its inbound webhook');
  registerSecret(auth.code);
  registerCredentialPair(auth.userId, auth.code);

  // Ctrl-C stops the sequence, not the cleanup; a second one ends the process.
  const interrupt = new AbortController();
  const stop = () => interrupt.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  const run = new PortalRun({ client, auth, code, bucket: new LeakyBucket(standardPlan) });
  const rows: Row[] = [];
  let failure: unknown;
  try {
    const side = await run.setUp();
    const reference = await startReference({ userId: auth.userId, code, side });
    try {
      for (const step of STEPS) {
        if (interrupt.signal.aborted) break;
        const portalAnswer = await side.run(step, interrupt.signal);
        rows.push({ step: step.name, portal: portalAnswer, emulator: await reference.side.run(step) });
      }
    } finally {
      await reference.close();
    }
  } catch (error) {
    failure = error;
  }
  const cleanup = await run.cleanUp();
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  if (failure !== undefined) {
    for (const line of cleanup) console.error(redactString(`Cleanup: ${line.replace(/`/g, '')}`));
    throw failure;
  }

  const report = renderReport({
    host: client.host,
    revision: run.revision,
    at: new Date(),
    setup: run.notes,
    rows,
    steps: STEPS.length,
    cleanup,
  });
  process.stdout.write(redactString(report));
  if (differences(rows) > 0 || rows.length < STEPS.length) process.exitCode = 1;
}
