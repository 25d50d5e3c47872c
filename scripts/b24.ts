// npm run b24 -- <command>: from zero to a real bot message, and a look at what became of its edits.
//   register-bot   imbot.v2.Bot.register through the portal's inbound webhook (Bot.update for a new token)
//   send           imbot.v2.Chat.Message.send as that bot: the message id to edit
//   status         what the ledger knows of a message (as GET /messages/{portal}/{botId}/{messageId})
//   replay-failed  failed edits back from the failed-edits queue to the edits queue
//   caller add|list|revoke  the keys Bitrix24 SDKs use in place of a webhook code (scripts/caller.ts)
//   check          the documented imbot.v2 sequence on the portal and on the emulator, compared (scripts/check.ts)
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import { getMessage } from '../lib/api/get-message.ts';
import { type Bitrix24Client, createBitrix24Client } from '../lib/bitrix24/client.ts';
import { isBitrix24Error } from '../lib/bitrix24/errors.ts';
import type { PortalAuth } from '../lib/bitrix24/types.ts';
import { CallerKeys } from '../lib/callers/index.ts';
import { loadConfig } from '../lib/config.ts';
import { replayFailedEdits } from '../lib/edits/failed.ts';
import { AppError } from '../lib/errors.ts';
import { LedgerTable } from '../lib/ledger/access.ts';
import { Ledger } from '../lib/ledger/messages.ts';
import { DEFAULT_PORTS } from '../local/stack/config.ts';
import { LEDGER_TABLE_NAME, LOCAL_AWS, QUEUES } from '../local/stack/local-aws.ts';
import {
  addCaller,
  CALLER_ADD,
  CALLER_LIST,
  CALLER_REVOKE,
  type CallerCommand,
  listCallers,
  revokeCaller,
} from './caller.ts';
import { CHECK, check } from './check.ts';
import {
  type CommandSpec,
  helpText,
  type ParsedCommandLine,
  parseCommandLine,
  runCommand,
  UsageError,
} from './cli.ts';

type Env = Record<string, string | undefined>;

const PORTAL_NOTE = [
  'The portal comes from the environment, the variables `npm start` uses for a real portal:',
  '  B24_PORTAL_URL        https://<portal>.bitrix24.<zone>',
  '  B24_WEBHOOK_USER_ID   the user id in the inbound webhook URL (/rest/<user id>/<code>/)',
  '  B24_WEBHOOK_CODE      the code in that URL; the webhook needs the imbot scope',
];
const LOCAL_NOTE = [
  'Without --local it uses the deployed stack through the AWS SDK (AWS_PROFILE / AWS_REGION and the',
  "stack's outputs in STATE_TABLE_NAME, EDITS_QUEUE_URL, FAILED_EDITS_QUEUE_URL). --local reads the",
  '`npm start` stack on 127.0.0.1 (DYNAMODB_PORT and SQS_PORT as `npm start` reads them).',
];

const REGISTER: CommandSpec = {
  name: 'npm run b24 -- register-bot',
  summary:
    'Registers a chat bot (imbot.v2.Bot.register) owned by the webhook, or gives a registered one a new token.\n' +
    'Registering the same code again with its token is harmless (it sets the name given).',
  usage: '--code <code> --name <name>',
  options: {
    code: { type: 'string', value: '<code>', description: 'the bot code, unique in the portal (required)' },
    name: { type: 'string', value: '<name>', description: 'the name people see (required)' },
  },
  notes: [
    ...PORTAL_NOTE,
    '  B24_BOT_TOKEN         a secret of your choosing, up to 40 characters, e.g. $(openssl rand -hex 16);',
    '                        keep it: it goes in the portal secret (bots.<id>.botToken) and is never printed',
    '  B24_OLD_BOT_TOKEN     only to replace the token of a bot the code already names: its current token',
    '                        (imbot.v2.Bot.update); the old token stops working at once',
    '',
    'A code already registered keeps its bot and that bot its token: with another B24_BOT_TOKEN and no',
    'B24_OLD_BOT_TOKEN the command says so and exits 1, changing nothing.',
  ],
  examples: [
    'B24_BOT_TOKEN=$(openssl rand -hex 16) npm run b24 -- register-bot --code build_bot --name "Build bot"',
    'B24_OLD_BOT_TOKEN=<its token> B24_BOT_TOKEN=<new token> npm run b24 -- register-bot --code build_bot --name "Build bot"',
  ],
};

const SEND: CommandSpec = {
  name: 'npm run b24 -- send',
  summary: 'Posts a message as the bot (imbot.v2.Chat.Message.send) and prints its id: the message to edit.',
  usage: '--dialog <dialogId> <text>',
  options: {
    dialog: {
      type: 'string',
      value: '<dialogId>',
      description: 'where to post: chat<id> for a group chat, or a user id for a private chat (required)',
    },
  },
  positionals: ['text'],
  notes: [...PORTAL_NOTE, '  B24_BOT_ID, B24_BOT_TOKEN  the bot, as register-bot printed and you chose'],
  examples: ['B24_BOT_ID=457 npm run b24 -- send --dialog chat12 "Build #42: running"'],
};

const STATUS: CommandSpec = {
  name: 'npm run b24 -- status',
  summary:
    'Prints what the ledger knows of a message: desired and applied fields, pending edits, the last error.',
  usage: '[--local] <portal> <botId> <messageId>',
  options: { local: { type: 'boolean', description: 'read the ledger of `npm start`' } },
  positionals: ['portal', 'botId', 'messageId'],
  notes: LOCAL_NOTE,
  examples: ['npm run b24 -- status --local demo 456 789'],
};

const REPLAY: CommandSpec = {
  name: 'npm run b24 -- replay-failed',
  summary:
    'Moves failed edits back to the edits queue once their cause is fixed, filtered by error code.\n' +
    'Each keeps its message group; INVALID_EDIT stays unless named with --code.',
  usage: '[--local] [--code <errorCode>]…',
  options: {
    local: { type: 'boolean', description: 'use the queues of `npm start`' },
    code: {
      type: 'string',
      multiple: true,
      value: '<errorCode>',
      description: 'replay only edits that failed with this code (repeatable); default: all but INVALID_EDIT',
    },
    max: {
      type: 'string',
      value: '<n>',
      default: '1000',
      description: 'read at most this many failed edits',
    },
  },
  notes: LOCAL_NOTE,
  examples: ['npm run b24 -- replay-failed --code PORTAL_NOT_FOUND --code BOT_NOT_FOUND'],
};

const COMMANDS: Record<
  string,
  { spec: CommandSpec; run: (args: ParsedCommandLine, env: Env) => Promise<void> }
> = {
  'register-bot': { spec: REGISTER, run: registerBot },
  send: { spec: SEND, run: send },
  status: { spec: STATUS, run: status },
  'replay-failed': { spec: REPLAY, run: replay },
  'caller add': { spec: CALLER_ADD, run: onCallerKeys(addCaller) },
  'caller list': { spec: CALLER_LIST, run: onCallerKeys(listCallers) },
  'caller revoke': { spec: CALLER_REVOKE, run: onCallerKeys(revokeCaller) },
  check: { spec: CHECK, run: (args, env) => check(args, () => webhookPortal(env)) },
};

const TOP: CommandSpec = {
  name: 'npm run b24 --',
  summary: 'The project CLI: from zero to a real bot message, and what became of its edits.',
  usage: '<command> [options]',
  options: {},
  notes: [
    'Commands:',
    ...Object.entries(COMMANDS).map(
      ([name, { spec }]) => `  ${name.padEnd(14)} ${spec.summary.split('\n')[0]}`,
    ),
    '',
    '`npm run b24 -- <command> --help` describes each one.',
  ],
  examples: [
    'npm run b24 -- register-bot --code build_bot --name "Build bot"',
    'npm run b24 -- send --dialog chat12 "Build #42: running"',
    'npm run b24 -- status --local demo 456 789',
    'npm run b24 -- check',
  ],
};

function required(env: Env, name: string, rule: string): string {
  const value = env[name]?.trim();
  if (!value) throw new UsageError(`${name} is required: ${rule}`);
  return value;
}

function positiveInteger(text: string, name: string): number {
  if (!/^[1-9]\d{0,15}$/.test(text))
    throw new UsageError(`${name} must be a positive integer, got "${text}"`);
  return Number(text);
}

/** The portal's webhook from the environment; plain http only for a portal on this machine. */
function webhookPortal(env: Env) {
  const portalUrl = required(env, 'B24_PORTAL_URL', 'the portal, e.g. https://acme.bitrix24.com');
  const userId = positiveInteger(
    required(env, 'B24_WEBHOOK_USER_ID', 'the user id of the inbound webhook URL'),
    'B24_WEBHOOK_USER_ID',
  );
  const code = required(env, 'B24_WEBHOOK_CODE', 'the code of the inbound webhook URL');
  let loopback = false;
  try {
    loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(portalUrl).hostname);
  } catch {
    throw new UsageError(`B24_PORTAL_URL must be a URL, got "${portalUrl}"`);
  }
  const client = createBitrix24Client({ portalUrl, allowHttp: loopback });
  const auth: PortalAuth = { type: 'webhook', userId, code };
  return { client, auth };
}

function botToken(env: Env, name = 'B24_BOT_TOKEN'): string {
  const token = required(env, name, 'a secret of your choosing, up to 40 characters');
  if (token.length > 40) throw new UsageError(`${name} must be at most 40 characters, got ${token.length}`);
  return token;
}

/**
 * Whether `token` is the bot's: Bot.register answers a code already registered with its bot as it
 * is, token included, so only a call made with the token can tell. Bot.update is the documented call
 * that refuses another token (BOT_OWNERSHIP_ERROR); it also sets the name given, which a repeated
 * register leaves as it was.
 */
async function holdsToken(
  client: Bitrix24Client,
  auth: PortalAuth,
  bot: { id: number; token: string; name: string },
): Promise<boolean> {
  try {
    await client.call(
      'imbot.v2.Bot.update',
      { botId: bot.id, botToken: bot.token, fields: { properties: { name: bot.name } } },
      { auth },
    );
    return true;
  } catch (error) {
    if (isBitrix24Error(error) && error.code === 'BOT_OWNERSHIP_ERROR') return false;
    throw error;
  }
}

async function registerBot({ values }: ParsedCommandLine, env: Env): Promise<void> {
  const code = typeof values.code === 'string' ? values.code.trim() : '';
  const name = typeof values.name === 'string' ? values.name.trim() : '';
  if (!code) throw new UsageError('--code is required: the bot code, unique in the portal');
  if (!name) throw new UsageError('--name is required: the name people see');
  const token = botToken(env);
  const oldToken = env.B24_OLD_BOT_TOKEN?.trim() ? botToken(env, 'B24_OLD_BOT_TOKEN') : undefined;
  const { client, auth } = webhookPortal(env);
  const { result } = await client.call<{ bot?: { id?: number } }>(
    'imbot.v2.Bot.register',
    { fields: { code, botToken: token, type: 'bot', properties: { name } } },
    { auth },
  );
  const id = result.bot?.id;
  if (typeof id !== 'number') throw new Error('imbot.v2.Bot.register answered without bot.id');
  const bot = `Bot ${id} (code ${code}) on ${client.host}`;
  if (await holdsToken(client, auth, { id, token, name })) {
    console.log(`Bot ${id} registered on ${client.host} (code ${code}).`);
  } else if (!oldToken) {
    throw new AppError(
      'BOT_TOKEN_DIFFERS',
      `${bot} already exists with another token, which it keeps (send with B24_BOT_TOKEN would fail with BOT_OWNERSHIP_ERROR): use its current token as B24_BOT_TOKEN, or give it this one by running again with its current token in B24_OLD_BOT_TOKEN, or choose another --code`,
    );
  } else {
    await replaceToken(client, auth, { id, oldToken, token, bot });
    console.log(`${bot} now has the token in B24_BOT_TOKEN; its old token no longer works.`);
    console.log(
      `Put it in the portal secret too (bots.${id}.botToken): until then the service's edits of bot ${id} fail with BOT_OWNERSHIP_ERROR.`,
    );
  }
  console.log(`Next: B24_BOT_ID=${id} npm run b24 -- send --dialog chat<id> "Hello"`);
}

/** Bot.update's documented rotation: authorised with the old token, the new one in `fields.botToken`. */
async function replaceToken(
  client: Bitrix24Client,
  auth: PortalAuth,
  { id, oldToken, token, bot }: { id: number; oldToken: string; token: string; bot: string },
): Promise<void> {
  try {
    await client.call(
      'imbot.v2.Bot.update',
      { botId: id, botToken: oldToken, fields: { botToken: token } },
      { auth },
    );
  } catch (error) {
    if (isBitrix24Error(error) && error.code === 'BOT_OWNERSHIP_ERROR') {
      throw new AppError(
        'BOT_TOKEN_DIFFERS',
        `${bot} holds neither B24_BOT_TOKEN nor B24_OLD_BOT_TOKEN (BOT_OWNERSHIP_ERROR): its token is unchanged; give its current token in B24_OLD_BOT_TOKEN`,
      );
    }
    throw error;
  }
}

async function send({ values, positionals }: ParsedCommandLine, env: Env): Promise<void> {
  const dialogId = typeof values.dialog === 'string' ? values.dialog.trim() : '';
  if (!dialogId) throw new UsageError('--dialog is required: chat<id> for a group chat, or a user id');
  const text = positionals[0] ?? '';
  const botId = positiveInteger(required(env, 'B24_BOT_ID', 'the bot id register-bot printed'), 'B24_BOT_ID');
  const token = botToken(env);
  const { client, auth } = webhookPortal(env);
  const { result } = await client.call<{ id?: number }>(
    'imbot.v2.Chat.Message.send',
    { botId, botToken: token, dialogId, fields: { message: text } },
    { auth },
  );
  if (typeof result.id !== 'number') throw new Error('imbot.v2.Chat.Message.send answered without id');
  console.log(`Message ${result.id} sent by bot ${botId} to ${dialogId} on ${client.host}.`);
  console.log(
    `Edit it: {"botId":${botId},"messageId":${result.id},"fields":{"message":"…"}} to POST …/rest/imbot.v2.Chat.Message.update`,
  );
}

/** The ledger and queue settings: the `npm start` stack with --local, else the deployed one's from the environment. */
function aws(local: boolean, env: Env) {
  const config = loadConfig(env);
  const port = (name: keyof typeof DEFAULT_PORTS) => env[name]?.trim() || String(DEFAULT_PORTS[name]);
  const timing = {
    messageMinIntervalMs: config.messageMinIntervalMs,
    ambiguousSettleMs: config.ambiguousSettleMs,
  };
  if (local) {
    const sqsEndpoint = `http://127.0.0.1:${port('SQS_PORT')}`;
    return {
      timing,
      tableName: LEDGER_TABLE_NAME,
      dynamo: new DynamoDBClient({ ...LOCAL_AWS, endpoint: `http://127.0.0.1:${port('DYNAMODB_PORT')}` }),
      sqs: new SQSClient({ ...LOCAL_AWS, endpoint: sqsEndpoint }),
      sqsEndpoint,
      editsQueueUrl: undefined,
      failedEditsQueueUrl: undefined,
    };
  }
  return {
    timing,
    tableName: config.stateTableName,
    dynamo: new DynamoDBClient({}),
    sqs: new SQSClient({}),
    sqsEndpoint: undefined,
    editsQueueUrl: config.editsQueueUrl,
    failedEditsQueueUrl: config.failedEditsQueueUrl,
  };
}

async function status({ values, positionals }: ParsedCommandLine, env: Env): Promise<void> {
  const [portal = '', botId = '', messageId = ''] = positionals;
  const setup = aws(values.local === true, env);
  try {
    const tableName =
      setup.tableName ?? required(env, 'STATE_TABLE_NAME', 'the LedgerTableName output (or --local)');
    const ledger = new Ledger({ tableName, client: setup.dynamo });
    const answer = await getMessage({ portal, botId, messageId }, { ledger, timing: setup.timing });
    const body = JSON.parse(answer.body) as { error?: string; error_description?: string };
    if (answer.statusCode === 400) throw new UsageError(body.error_description ?? 'bad arguments');
    if (answer.statusCode >= 500) {
      throw new AppError(
        body.error ?? 'ERROR',
        `${body.error}: ${body.error_description}`,
        answer.statusCode,
      );
    }
    console.log(JSON.stringify(body, null, 2));
    if (answer.statusCode !== 200) process.exitCode = 1;
  } finally {
    setup.dynamo.destroy();
    setup.sqs.destroy();
  }
}

/** A caller command on the caller keys of the ledger `aws` names, opened once the command asks. */
function onCallerKeys(run: CallerCommand) {
  return async (args: ParsedCommandLine, env: Env): Promise<void> => {
    const setup = aws(args.values.local === true, env);
    try {
      await run(args, env, () => {
        const tableName =
          setup.tableName ?? required(env, 'STATE_TABLE_NAME', 'the LedgerTableName output (or --local)');
        return new CallerKeys(new LedgerTable({ tableName, client: setup.dynamo }));
      });
    } finally {
      setup.dynamo.destroy();
      setup.sqs.destroy();
    }
  };
}

/** A queue of the `npm start` stack, on 127.0.0.1 whatever host the SQS emulator names. */
async function localQueueUrl(sqs: SQSClient, endpoint: string, name: string): Promise<string> {
  const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
  return `${endpoint}${new URL(QueueUrl ?? '').pathname}`;
}

async function replay({ values }: ParsedCommandLine, env: Env): Promise<void> {
  const codes = Array.isArray(values.code) ? values.code : [];
  const max = positiveInteger(String(values.max), '--max');
  const setup = aws(values.local === true, env);
  try {
    const failedQueueUrl = setup.sqsEndpoint
      ? await localQueueUrl(setup.sqs, setup.sqsEndpoint, QUEUES.failedEdits)
      : (setup.failedEditsQueueUrl ??
        required(env, 'FAILED_EDITS_QUEUE_URL', 'the FailedEditsQueueUrl output'));
    const editsQueueUrl = setup.sqsEndpoint
      ? await localQueueUrl(setup.sqs, setup.sqsEndpoint, QUEUES.edits)
      : (setup.editsQueueUrl ?? required(env, 'EDITS_QUEUE_URL', 'the EditsQueueUrl output'));
    const { replayed, kept } = await replayFailedEdits({
      failedQueueUrl,
      editsQueueUrl,
      client: setup.sqs,
      maxMessages: max,
      ...(codes.length > 0 ? { include: (edit) => codes.includes(edit.errorCode) } : {}),
    });
    const filter = codes.length > 0 ? ` (codes ${codes.join(', ')})` : ' (all but INVALID_EDIT)';
    console.log(`Replayed ${replayed} failed edit(s)${filter}; ${kept} left in the failed-edits queue.`);
  } finally {
    setup.dynamo.destroy();
    setup.sqs.destroy();
  }
}

/**
 * What went wrong, in one line: the portal's or the configuration's answer, or the AWS SDK's or the
 * network's error. Only a programming error (TypeError and the like) keeps its stack trace.
 */
function explain(error: unknown): string | undefined {
  if (error instanceof AppError) return error.message;
  if (!(error instanceof Error)) return undefined;
  const programming = [TypeError, RangeError, ReferenceError, SyntaxError].some(
    (kind) => error instanceof kind,
  );
  return programming ? undefined : `${error.name}: ${error.message}`;
}

const argv = process.argv.slice(2);
// A command of two words (`caller add`) is looked up by both.
const words = argv.length > 1 && COMMANDS[`${argv[0]} ${argv[1]}`] ? 2 : 1;
const command = argv.length > 0 ? argv.slice(0, words).join(' ') : undefined;
const rest = argv.slice(words);
const chosen = command === undefined ? undefined : COMMANDS[command];
if (!chosen) {
  if (command === '--help' || command === '-h') process.stdout.write(helpText(TOP));
  else {
    const what = command === undefined ? 'no command given' : `unknown command "${command}"`;
    console.error(
      `npm run b24: ${what}. Commands: ${Object.keys(COMMANDS).join(', ')}. See npm run b24 -- --help.`,
    );
    process.exitCode = 2;
  }
} else {
  await runCommand(
    chosen.spec,
    async () => {
      const args = parseCommandLine(chosen.spec, rest);
      if (args) await chosen.run(args, process.env);
    },
    explain,
  );
}
