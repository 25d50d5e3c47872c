/**
 * Everything `npm start` reads from the environment, normalised once with loud, specific errors.
 * The production handlers read their own variables through lib/config.ts; the stack sets those.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PortSetting {
  /** 0 picks a free port. */
  port: number;
  /** The variable that changes it, named in every message about the port. */
  variable: string;
  /** What listens there, for messages. */
  what: string;
}

/** A real Bitrix24 portal to use instead of the emulator (webhook auth). */
export interface RealPortal {
  url: string;
  webhookUserId: number;
  webhookCode: string;
  botId: number;
  botToken: string;
  plan: 'standard' | 'enterprise';
}

export interface LocalStackConfig {
  api: PortSetting;
  /** The same API over HTTPS, for Bitrix24's SDKs (they refuse a webhook URL that is not https). */
  apiTls: PortSetting;
  sandbox: PortSetting;
  emulator: PortSetting;
  sqs: PortSetting;
  secretsManager: PortSetting;
  dynamodb: PortSetting;
  /** Key of the local portal; its secret is `${secretPrefix}${portal}` and it is the DEFAULT_PORTAL. */
  portal: string;
  secretPrefix: string;
  /** Set when B24_PORTAL_URL is given: the emulator is not started. */
  realPortal: RealPortal | undefined;
  /** YAML or JSON file of scheduled status specs; undefined when off. */
  statusSpecsFile: string | undefined;
  /** Receives of one edit before the drain sends it to the failed-edits queue (the handlers' MAX_ATTEMPTS). */
  maxAttempts: number;
  /** Concurrent drain invocations, like the event source mapping's maximum concurrency (DRAIN_MAX_CONCURRENCY). */
  drainMaxConcurrency: number;
  /** How often the sweep runs (SWEEP_INTERVAL_SECONDS; deployed, once a minute). Default 10 s here. */
  sweepIntervalMs: number;
  /** The handlers' log level (Powertools). Default WARN here, so the console stays readable. */
  handlerLogLevel: string;
  /** Powertools' switch for EMF metrics on stdout. Default true (off) here. */
  metricsDisabled: string;
}

/** Default ports: documented, so that the README's commands work as written. */
export const DEFAULT_PORTS = {
  API_PORT: 3000,
  API_TLS_PORT: 3443,
  SANDBOX_PORT: 8024,
  EMULATOR_PORT: 8025,
  SQS_PORT: 8026,
  SECRETS_MANAGER_PORT: 8027,
  DYNAMODB_PORT: 8028,
} as const;

/** The local sweep runs more often than the deployed one (every minute), so a lost signal shows quickly. */
export const DEFAULT_SWEEP_INTERVAL_SECONDS = 10;
const MAX_SWEEP_INTERVAL_SECONDS = 3_600;

/**
 * Where the stack whose HTTPS API listens on `port` writes that API's certificate (PEM, public), for
 * clients to trust (`NODE_EXTRA_CA_CERTS`); named after the port, so `caller add --local` finds it too.
 */
export function tlsCertificateFile(port: number): string {
  return join(tmpdir(), `b24-message-editor-${port}.pem`);
}

export const DEFAULT_STATUS_SPECS_FILE = 'local/status-messages.local.yml';
const PORTAL_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

export class LocalConfigError extends Error {
  override name = 'LocalConfigError';
  readonly variable: string;

  constructor(variable: string, message: string) {
    super(message);
    this.variable = variable;
  }
}

type Env = Record<string, string | undefined>;

function read(env: Env, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw ? raw : undefined;
}

function readPort(env: Env, variable: keyof typeof DEFAULT_PORTS, what: string): PortSetting {
  const raw = read(env, variable);
  if (raw === undefined) return { port: DEFAULT_PORTS[variable], variable, what };
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65_535) {
    throw new LocalConfigError(
      variable,
      `Expected ${variable} to be a port number from 0 to 65535 (0 picks a free one), got ${JSON.stringify(raw)}`,
    );
  }
  return { port, variable, what };
}

function readPositiveInteger(env: Env, name: string): number {
  const raw = read(env, name);
  const value = Number(raw);
  if (raw === undefined || !/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < 1) {
    throw new LocalConfigError(
      name,
      `Expected ${name} to be a positive integer, got ${JSON.stringify(raw ?? '')}`,
    );
  }
  return value;
}

function readSweepInterval(env: Env): number {
  const name = 'SWEEP_INTERVAL_SECONDS';
  if (read(env, name) === undefined) return DEFAULT_SWEEP_INTERVAL_SECONDS;
  const seconds = readPositiveInteger(env, name);
  if (seconds > MAX_SWEEP_INTERVAL_SECONDS) {
    throw new LocalConfigError(
      name,
      `Expected ${name} to be a positive integer up to ${MAX_SWEEP_INTERVAL_SECONDS}, got "${seconds}"`,
    );
  }
  return seconds;
}

function readRequired(env: Env, name: string): string {
  const value = read(env, name);
  if (value === undefined) {
    throw new LocalConfigError(name, `${name} is required when B24_PORTAL_URL is set`);
  }
  return value;
}

function readRealPortal(env: Env): RealPortal | undefined {
  const url = read(env, 'B24_PORTAL_URL');
  if (url === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new LocalConfigError(
      'B24_PORTAL_URL',
      `Expected B24_PORTAL_URL to be a URL, got ${JSON.stringify(url)}`,
    );
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new LocalConfigError(
      'B24_PORTAL_URL',
      `Expected B24_PORTAL_URL to start with https://, got ${parsed.protocol}`,
    );
  }
  const plan = read(env, 'B24_PLAN') ?? 'standard';
  if (plan !== 'standard' && plan !== 'enterprise') {
    throw new LocalConfigError(
      'B24_PLAN',
      `Expected B24_PLAN to be standard or enterprise, got ${JSON.stringify(plan)}`,
    );
  }
  return {
    url: parsed.origin,
    webhookUserId: readPositiveInteger(env, 'B24_WEBHOOK_USER_ID'),
    webhookCode: readRequired(env, 'B24_WEBHOOK_CODE'),
    botId: readPositiveInteger(env, 'B24_BOT_ID'),
    botToken: readRequired(env, 'B24_BOT_TOKEN'),
    plan,
  };
}

/** `acme` for https://acme.bitrix24.com; `demo` when the host gives no usable key. */
function portalKey(realPortal: RealPortal | undefined): string {
  if (!realPortal) return 'demo';
  const host = new URL(realPortal.url).hostname;
  if (/^[\d.]+$/.test(host) || host.includes(':') || host.startsWith('[')) return 'demo';
  const label = host.split('.')[0]?.toLowerCase() ?? '';
  return PORTAL_PATTERN.test(label) ? label : 'demo';
}

export function loadLocalConfig(env: Env): LocalStackConfig {
  const realPortal = readRealPortal(env);
  const statusFile = read(env, 'STATUS_SPECS_FILE');
  const off = statusFile !== undefined && ['off', 'none', 'false', '0'].includes(statusFile.toLowerCase());
  const optional = (name: string, fallback: number) =>
    read(env, name) === undefined ? fallback : readPositiveInteger(env, name);
  return {
    api: readPort(env, 'API_PORT', 'the update API'),
    apiTls: readPort(env, 'API_TLS_PORT', 'the API over HTTPS'),
    sandbox: readPort(env, 'SANDBOX_PORT', 'the sandbox page'),
    emulator: readPort(env, 'EMULATOR_PORT', 'the Bitrix24 emulator'),
    sqs: readPort(env, 'SQS_PORT', 'the SQS emulator'),
    secretsManager: readPort(env, 'SECRETS_MANAGER_PORT', 'the local Secrets Manager'),
    dynamodb: readPort(env, 'DYNAMODB_PORT', 'the local DynamoDB'),
    portal: portalKey(realPortal),
    secretPrefix: env.SECRET_PREFIX ?? 'b24/portals/',
    realPortal,
    // The demo specs edit the emulator's chat; against a real portal, specs are opt-in.
    statusSpecsFile: off ? undefined : (statusFile ?? (realPortal ? undefined : DEFAULT_STATUS_SPECS_FILE)),
    maxAttempts: optional('MAX_ATTEMPTS', 8),
    drainMaxConcurrency: optional('DRAIN_MAX_CONCURRENCY', 2),
    sweepIntervalMs: readSweepInterval(env) * 1_000,
    handlerLogLevel: read(env, 'POWERTOOLS_LOG_LEVEL') ?? 'WARN',
    metricsDisabled: read(env, 'POWERTOOLS_METRICS_DISABLED') ?? 'true',
  };
}
