import * as v from 'valibot';
import type { RateLimits } from '../bitrix24/types.ts';
import { AppError } from '../errors.ts';
import { registerCredentialPair, registerSecret } from '../observability/redact.ts';
import { PLANS, type PlanName } from '../pacing/policies.ts';
import { SecretInvalidError } from './errors.ts';

/** An incoming webhook: calls go to `${portalUrl}/rest/${userId}/${code}/${method}`. */
export interface WebhookCredentials {
  type: 'webhook';
  userId: number;
  code: string;
}

/** A local or marketplace application's OAuth pair, refreshed through `oauthUrl`. */
export interface OAuthCredentials {
  type: 'oauth';
  clientId: string;
  clientSecret: string;
  accessToken: string;
  refreshToken: string;
  /** Unix seconds when `accessToken` expires. */
  expiresAt: number;
  /** Token endpoint. Default `https://oauth.bitrix.info/oauth/token/`. */
  oauthUrl: string;
  /**
   * The portal's install id (`member_id`), learned from the first token answer that names it: a
   * token answer naming another portal address moves `portalUrl` only for the same install.
   */
  memberId?: string | undefined;
}

/** One allow-listed bot. `botToken` is required with webhook auth (the token given at Bot.register). */
export interface BotCredentials {
  botToken?: string;
}

/** Everything the service knows about one portal, read from the secret `${prefix}${portal}`. */
export interface PortalSecret {
  portal: string;
  secretName: string;
  /** Origin of the portal, without a trailing slash: `https://acme.bitrix24.com`. */
  portalUrl: string;
  auth: WebhookCredentials | OAuthCredentials;
  /** The bots this service may edit messages of, by bot id. */
  bots: ReadonlyMap<number, BotCredentials>;
  limits: RateLimits;
  /** `custom` when the secret gives explicit `limits`. */
  plan: PlanName | 'custom';
  /** Secrets Manager VersionId when known. */
  versionId?: string;
}

export const DEFAULT_OAUTH_URL = 'https://oauth.bitrix.info/oauth/token/';
export const MAX_BOT_TOKEN_LENGTH = 40;

const text = (rule = 'must be a non-empty string') => v.pipe(v.string(rule), v.nonEmpty(rule));
const positiveInteger = (rule = 'must be a positive integer') =>
  v.pipe(v.number(rule), v.safeInteger(rule), v.minValue(1, rule));
/** The range a secret's `limits` may name. */
export const LIMITS = {
  burst: { min: 1, max: 10_000 },
  perSecond: { min: 0.01, max: 100 },
} as const;
const ranged = (range: { min: number; max: number }, unit: string) => {
  const rule = `must be a number from ${range.min} to ${range.max.toLocaleString('en-US')} (${unit})`;
  return v.pipe(v.number(rule), v.finite(rule), v.minValue(range.min, rule), v.maxValue(range.max, rule));
};
// Unknown keys are refused: a misspelt "plans" or "limit" would otherwise silently fall back to defaults.
const strict = <T extends v.ObjectEntries>(entries: T) =>
  v.strictObject(entries, (issue) =>
    issue.expected === 'never' ? 'is not a known field' : 'must be an object',
  );

function urlProblem(value: string, originOnly: boolean): string | undefined {
  if (!URL.canParse(value)) return 'must be an absolute http(s) URL';
  const url = new URL(value);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must be an absolute http(s) URL';
  if (url.username || url.password) return 'must not contain credentials';
  if (originOnly && (url.pathname !== '/' || url.search || url.hash)) {
    return 'must not have a path, query or fragment';
  }
  return undefined;
}

const httpUrl = (originOnly: boolean) =>
  v.pipe(
    v.string('must be an absolute http(s) URL'),
    v.rawCheck(({ dataset, addIssue }) => {
      const problem = dataset.typed ? urlProblem(dataset.value, originOnly) : undefined;
      if (problem) addIssue({ message: problem });
    }),
    v.transform((value) => (originOnly ? new URL(value).origin : new URL(value).href)),
  );

const botToken = v.pipe(
  v.string('must be a string'),
  v.nonEmpty('must not be empty'),
  v.maxLength(MAX_BOT_TOKEN_LENGTH, `must be at most ${MAX_BOT_TOKEN_LENGTH} characters`),
);

const unixSeconds = v.pipe(
  v.number('must be a non-negative integer (unix seconds)'),
  v.safeInteger('must be a non-negative integer (unix seconds)'),
  v.minValue(0, 'must be a non-negative integer (unix seconds)'),
);

const webhookSchema = strict({
  type: v.literal('webhook'),
  userId: positiveInteger(),
  // The code is a URL path segment between the user id and the method.
  code: v.pipe(text(), v.regex(/^[^\s/?#%]+$/, 'must not contain slashes, whitespace, "?", "#" or "%"')),
});

const oauthSchema = strict({
  type: v.literal('oauth'),
  clientId: text(),
  clientSecret: text(),
  accessToken: text(),
  refreshToken: text(),
  expiresAt: unixSeconds,
  oauthUrl: v.optional(httpUrl(false), DEFAULT_OAUTH_URL),
  memberId: v.optional(text()),
});

const botId = v.pipe(
  v.string(),
  v.regex(/^[1-9]\d*$/, 'is not a positive integer bot id'),
  v.check((key) => Number.isSafeInteger(Number(key)), 'is not a positive integer bot id'),
);

const secretSchema = strict({
  portalUrl: httpUrl(true),
  auth: v.variant('type', [webhookSchema, oauthSchema], (issue) =>
    issue.expected === 'Object' ? 'must be an object' : 'must be "webhook" or "oauth"',
  ),
  bots: v.pipe(
    // A record schema alone would take an array for an object keyed "0", "1"…
    v.custom<object>(
      (value) => typeof value === 'object' && value !== null && !Array.isArray(value),
      'must be an object keyed by bot id',
    ),
    v.record(botId, strict({ botToken: v.optional(botToken) }), 'must be an object keyed by bot id'),
    v.check((bots) => Object.keys(bots).length > 0, 'must list at least one bot'),
  ),
  plan: v.optional(v.picklist(['standard', 'enterprise'], 'must be "standard" or "enterprise"')),
  // The pacer needs a burst of at least one request (normaliseLimits in lib/pacing/leaky-bucket.ts).
  // Bitrix24's plans allow 50 or 250 requests at once and 2 or 5 a second; the bounds leave room for
  // a portal's own limits while refusing what can only be a typo (a rate of 1e-9 would park the
  // portal for years, one of 1e308 would turn the pacer off).
  limits: v.optional(
    strict({
      burst: ranged(LIMITS.burst, 'requests'),
      perSecond: ranged(LIMITS.perSecond, 'requests a second'),
    }),
  ),
});

const fallbackConfig: v.Config<v.BaseIssue<unknown>> = {
  abortEarly: true,
  // Valibot's own messages quote the value received; ours must never contain one.
  message: (issue) => `is invalid (expected ${issue.expected ?? 'another value'})`,
};

function fieldOf(issue: v.BaseIssue<unknown>): string {
  return (issue.path ?? []).map((item) => String(item.key)).join('.');
}

// JSON has no undefined: an undefined input is always a missing key.
function ruleOf(issue: v.BaseIssue<unknown>): string {
  return issue.input === undefined ? 'is required' : issue.message;
}

// Registered before validation so that even a secret we then refuse cannot leak through a log line.
function registerCredentials(raw: unknown): void {
  if (typeof raw !== 'object' || raw === null) return;
  const { auth, bots } = raw as { auth?: unknown; bots?: unknown };
  if (typeof auth === 'object' && auth !== null) {
    const fields = auth as Record<string, unknown>;
    for (const key of ['code', 'clientSecret', 'accessToken', 'refreshToken']) {
      const value = fields[key];
      if (typeof value === 'string') registerSecret(value);
    }
    // The pairs a Basic authorization would carry: the webhook's user and code, the app's id and secret.
    const text = (value: unknown) =>
      typeof value === 'string' || typeof value === 'number' ? value : undefined;
    const code = text(fields.code);
    const secret = text(fields.clientSecret);
    if (code !== undefined) registerCredentialPair(text(fields.userId) ?? '', String(code));
    if (secret !== undefined) registerCredentialPair(text(fields.clientId) ?? '', String(secret));
  }
  if (typeof bots === 'object' && bots !== null) {
    for (const bot of Object.values(bots)) {
      const token =
        typeof bot === 'object' && bot !== null ? (bot as { botToken?: unknown }).botToken : undefined;
      if (typeof token === 'string') registerSecret(token);
    }
  }
}

/**
 * Reads a portal secret's JSON. Throws `SecretInvalidError` naming the first field that breaks a rule;
 * registers every credential with the log redactor.
 */
export function parsePortalSecret(portal: string, secretName: string, json: string): PortalSecret {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    // JSON.parse quotes the text around the error, which may be a credential: keep neither message nor cause.
    throw new SecretInvalidError(secretName, '', 'the secret string is not valid JSON');
  }
  registerCredentials(raw);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new SecretInvalidError(secretName, '', 'the secret string must be a JSON object');
  }
  const result = v.safeParse(secretSchema, raw, fallbackConfig);
  if (!result.success) {
    const [issue] = result.issues;
    throw new SecretInvalidError(secretName, fieldOf(issue), ruleOf(issue));
  }
  const { portalUrl, auth, plan, limits } = result.output;
  const bots = new Map<number, BotCredentials>();
  for (const [id, bot] of Object.entries(result.output.bots)) {
    if (auth.type === 'webhook' && bot.botToken === undefined) {
      throw new SecretInvalidError(secretName, `bots.${id}.botToken`, 'is required with webhook auth');
    }
    bots.set(Number(id), Object.freeze(bot.botToken === undefined ? {} : { botToken: bot.botToken }));
  }
  return Object.freeze({
    portal,
    secretName,
    portalUrl,
    auth: Object.freeze(auth),
    bots,
    limits: limits ? Object.freeze({ ...limits }) : PLANS[plan ?? 'standard'],
    plan: limits ? 'custom' : (plan ?? 'standard'),
  });
}

/** The secret's JSON, in the format `parsePortalSecret` reads (portal, name and version are not part of it). */
export function serializePortalSecret(secret: PortalSecret): string {
  const bots: Record<string, BotCredentials> = {};
  for (const [id, bot] of secret.bots) {
    bots[String(id)] = bot.botToken === undefined ? {} : { botToken: bot.botToken };
  }
  const { auth } = secret;
  return JSON.stringify({
    portalUrl: secret.portalUrl,
    auth:
      auth.type === 'webhook'
        ? { type: auth.type, userId: auth.userId, code: auth.code }
        : {
            type: auth.type,
            clientId: auth.clientId,
            clientSecret: auth.clientSecret,
            accessToken: auth.accessToken,
            refreshToken: auth.refreshToken,
            expiresAt: auth.expiresAt,
            oauthUrl: auth.oauthUrl,
            ...(auth.memberId === undefined ? {} : { memberId: auth.memberId }),
          },
    bots,
    ...(secret.plan === 'custom'
      ? { limits: { burst: secret.limits.burst, perSecond: secret.limits.perSecond } }
      : { plan: secret.plan }),
  });
}

const tokensSchema = v.object({
  accessToken: text(),
  refreshToken: text(),
  expiresAt: unixSeconds,
  oauthUrl: v.optional(httpUrl(false)),
  portalUrl: v.optional(httpUrl(true)),
  memberId: v.optional(text()),
});

/**
 * A copy of an OAuth portal secret carrying a freshly refreshed token pair, the auth server the
 * token answer named (`oauthUrl`, when given: the next refresh goes there), and the portal's address
 * it named (`portalUrl`, from `client_endpoint`: a renamed portal) when the answer names the same
 * install (`memberId`) as the secret, or the secret has none yet. The copy has no `versionId` until
 * it is stored.
 */
export function withOAuthTokens(
  secret: PortalSecret,
  tokens: {
    accessToken: string;
    refreshToken: string;
    expiresAt: number;
    oauthUrl?: string | undefined;
    portalUrl?: string | undefined;
    memberId?: string | undefined;
  },
): PortalSecret {
  const { auth } = secret;
  if (auth.type !== 'oauth') {
    throw new AppError('SECRET_NOT_OAUTH', `Secret "${secret.secretName}" does not use OAuth auth`, 500);
  }
  registerSecret(tokens.accessToken);
  registerSecret(tokens.refreshToken);
  const result = v.safeParse(tokensSchema, tokens, fallbackConfig);
  if (!result.success) {
    const [issue] = result.issues;
    throw new SecretInvalidError(secret.secretName, `auth.${fieldOf(issue)}`, ruleOf(issue));
  }
  const { oauthUrl, portalUrl, memberId, ...pair } = result.output;
  const sameInstall = memberId !== undefined && (auth.memberId === undefined || auth.memberId === memberId);
  const moved = portalUrl !== undefined && portalUrl !== secret.portalUrl && sameInstall;
  const { versionId: _stored, ...rest } = secret;
  return Object.freeze({
    ...rest,
    ...(moved ? { portalUrl } : {}),
    auth: Object.freeze({
      ...auth,
      ...pair,
      ...(oauthUrl === undefined ? {} : { oauthUrl }),
      ...(sameInstall ? { memberId } : {}),
    }),
  });
}
