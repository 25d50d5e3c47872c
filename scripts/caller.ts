// npm run b24 -- caller add|list|revoke: the keys Bitrix24 SDKs use in place of a webhook code.
// The commands only; scripts/b24.ts opens the ledger they work on (--local or STATE_TABLE_NAME).
import {
  CALLER_KEY_SETTINGS,
  type CallerKeys,
  type CallerRecord,
  checkCallerInput,
  checkKeyId,
} from '../lib/callers/index.ts';
import { ValidationError } from '../lib/errors.ts';
import { DEFAULT_PORTS, tlsCertificateFile } from '../local/stack/config.ts';
import { type CommandSpec, type ParsedCommandLine, UsageError } from './cli.ts';

type Env = Record<string, string | undefined>;
/** What a caller command is given: its arguments, the environment, and the caller keys, opened on first use. */
export type CallerCommand = (args: ParsedCommandLine, env: Env, keys: () => CallerKeys) => Promise<void>;

const CACHE_SECONDS = CALLER_KEY_SETTINGS.cacheTtlMs.default / 1000;
const LEDGER_NOTE = [
  'Without --local it uses the deployed ledger through the AWS SDK (AWS_PROFILE / AWS_REGION, and',
  'STATE_TABLE_NAME: the LedgerTableName output). --local uses the ledger of `npm start` on 127.0.0.1',
  '(DYNAMODB_PORT as `npm start` reads it), which lasts only as long as `npm start` runs.',
];
const local = { type: 'boolean', description: 'use the ledger of `npm start`' } as const;

export const CALLER_ADD: CommandSpec = {
  name: 'npm run b24 -- caller add',
  summary:
    'Issues a caller key for a portal: the code a Bitrix24 SDK puts in its webhook URL to call this API.\n' +
    'The key is printed once; the ledger keeps only its hash.',
  usage: '[--local] --portal <portal> --name <name> [--api <url>]',
  options: {
    local,
    portal: { type: 'string', value: '<portal>', description: 'the portal the key may edit (required)' },
    name: {
      type: 'string',
      value: '<name>',
      description: 'who holds the key, e.g. the calling service; 1 to 64 characters (required)',
    },
    api: {
      type: 'string',
      value: '<url>',
      description:
        "the API's base URL (the ApiUrl output) for the webhook URL printed; --local: `npm start`'s",
    },
  },
  notes: [
    'With --local and no --api it prints the webhook URL of `npm start` over HTTPS (API_TLS_PORT), for the',
    'SDKs, with the certificate file to trust, and over plain HTTP (API_PORT), for CRest and curl.',
    'Rotation: add a new key, switch the caller to it, then revoke the old one (caller revoke).',
    ...LEDGER_NOTE,
  ],
  examples: [
    'npm run b24 -- caller add --portal acme --name build-service --api https://abc123.execute-api.eu-central-1.amazonaws.com',
  ],
};

export const CALLER_LIST: CommandSpec = {
  name: 'npm run b24 -- caller list',
  summary:
    'Lists the caller keys, revoked ones too, oldest first: keyId, portal, name, when added and revoked.',
  usage: '[--local]',
  options: { local },
  notes: LEDGER_NOTE,
  examples: ['npm run b24 -- caller list --local'],
};

export const CALLER_REVOKE: CommandSpec = {
  name: 'npm run b24 -- caller revoke',
  summary: 'Revokes a caller key (by the keyId caller list shows); exits 1 when no live key has that keyId.',
  usage: '[--local] <keyId>',
  options: { local },
  positionals: ['keyId'],
  notes: [
    `API containers that checked the key lately may still accept it for up to ${CACHE_SECONDS} s: they keep`,
    'what they read of a key that long (the default key cache time).',
    'Rotation: add a new key, switch the caller to it, then revoke the old one.',
    ...LEDGER_NOTE,
  ],
  examples: ['npm run b24 -- caller revoke k3j4h5g6'],
};

/** A rule of lib/callers broken by an argument: the same message, naming the flag. */
function asUsage(check: () => void, flag: (field: string) => string): void {
  try {
    check();
  } catch (error) {
    if (error instanceof ValidationError)
      throw new UsageError(error.message.replace(error.field, flag(error.field)));
    throw error;
  }
}

function text(values: ParsedCommandLine['values'], name: string): string {
  const value = values[name];
  return typeof value === 'string' ? value : '';
}

/** Where `npm start` serves the API, as it reads its ports: HTTPS with its certificate, and plain HTTP. */
function localApi(env: Env): { https: string; certificate: string; http: string } {
  const port = (name: 'API_PORT' | 'API_TLS_PORT') => env[name]?.trim() || String(DEFAULT_PORTS[name]);
  return {
    https: `https://127.0.0.1:${port('API_TLS_PORT')}`,
    certificate: tlsCertificateFile(Number(port('API_TLS_PORT'))),
    http: `http://127.0.0.1:${port('API_PORT')}`,
  };
}

/** The API's base URL the SDK is pointed at: --api, else a placeholder (undefined: `npm start`'s, with --local). */
function apiBase(values: ParsedCommandLine['values']): string | undefined {
  const api = text(values, 'api');
  if (!api) return values.local === true ? undefined : 'https://<api-host>';
  let url: URL | undefined;
  try {
    url = new URL(api);
  } catch {}
  if (!url || !['http:', 'https:'].includes(url.protocol) || url.search || url.hash)
    throw new UsageError(
      `--api must be an http(s) URL without query or fragment, got ${JSON.stringify(api)}`,
    );
  return url.href.replace(/\/+$/, '');
}

export const addCaller: CallerCommand = async ({ values }, env, keys) => {
  const portal = text(values, 'portal').trim();
  const name = text(values, 'name').trim();
  if (!portal) throw new UsageError('--portal is required: the portal the key may edit');
  if (!name) throw new UsageError('--name is required: who holds the key, e.g. the calling service');
  asUsage(
    () => checkCallerInput({ portal, name }),
    (field) => `--${field}`,
  );
  // Before the key exists: a bad --api must not leave a key nobody saw.
  const base = apiBase(values);
  const { key, keyId } = await keys().add({ portal, name });
  console.log(`Caller key ${keyId} added for portal ${portal} (${name}).`);
  console.log('');
  console.log(`  key          ${key}`);
  if (base) {
    console.log(`  webhook URL  ${base}/rest/1/${key}/`);
  } else {
    const local = localApi(env);
    console.log(`  webhook URL  ${local.https}/rest/1/${key}/`);
    console.log(`  certificate  ${local.certificate}   (npm start's, for NODE_EXTRA_CA_CERTS)`);
    console.log(`  over HTTP    ${local.http}/rest/1/${key}/   (CRest, curl: the SDKs want HTTPS)`);
  }
  console.log('');
  console.log('This is the only time the key is shown: the ledger keeps only its hash. Put it in the');
  console.log("caller's secret store now; a lost key is replaced by a new one (add, switch, revoke).");
};

const isoTime = (at: number | undefined) => (at === undefined ? '-' : new Date(at).toISOString());

function table(records: readonly CallerRecord[]): string {
  const rows = [
    ['KEY ID', 'PORTAL', 'NAME', 'ADDED', 'REVOKED'],
    ...records.map((r) => [r.keyId, r.portal, r.name, isoTime(r.createdAt), isoTime(r.revokedAt)]),
  ];
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0))) ?? [];
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export const listCallers: CallerCommand = async (_args, _env, keys) => {
  const records = await keys().list();
  console.log(records.length === 0 ? 'No caller keys.' : table(records));
};

export const revokeCaller: CallerCommand = async ({ positionals }, _env, keys) => {
  const keyId = positionals[0] ?? '';
  asUsage(
    () => checkKeyId(keyId),
    () => '<keyId>',
  );
  if (await keys().revoke(keyId)) {
    console.log(
      `Caller key ${keyId} revoked. API containers that checked it lately may accept it for up to ${CACHE_SECONDS} s more (the default key cache time).`,
    );
    return;
  }
  console.error(`${CALLER_REVOKE.name}: no live caller key ${keyId} (unknown, or revoked already).`);
  process.exitCode = 1;
};
