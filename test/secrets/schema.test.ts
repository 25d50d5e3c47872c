import { describe, expect, it } from 'vitest';
import { redactString } from '../../lib/observability/redact.ts';
import { enterprisePlan, standardPlan } from '../../lib/pacing/policies.ts';
import {
  DEFAULT_OAUTH_URL,
  type PortalSecret,
  parsePortalSecret,
  SecretInvalidError,
  serializePortalSecret,
  withOAuthTokens,
} from '../../lib/secrets/index.ts';

const NAME = 'b24/portals/acme';
const WEBHOOK_CODE = 'whk7Secret9code';
const BOT_TOKEN = 'botTok3nSecretValue';
const CLIENT_SECRET = 'cl1entSecretValue';
const ACCESS_TOKEN = 'acc3ssTokenValue';
const REFRESH_TOKEN = 'refr3shTokenValue';
const SECRET_VALUES = [WEBHOOK_CODE, BOT_TOKEN, CLIENT_SECRET, ACCESS_TOKEN, REFRESH_TOKEN];

const webhook = () => ({
  portalUrl: 'https://acme.bitrix24.com',
  auth: { type: 'webhook', userId: 1, code: WEBHOOK_CODE },
  bots: { '456': { botToken: BOT_TOKEN } },
  plan: 'standard',
});

const oauth = () => ({
  portalUrl: 'https://acme.bitrix24.com',
  auth: {
    type: 'oauth',
    clientId: 'local.abc123',
    clientSecret: CLIENT_SECRET,
    accessToken: ACCESS_TOKEN,
    refreshToken: REFRESH_TOKEN,
    expiresAt: 1_900_000_000,
  },
  bots: { '456': {} },
});

const parse = (value: unknown): PortalSecret => parsePortalSecret('acme', NAME, JSON.stringify(value));

function invalid(value: unknown): SecretInvalidError {
  try {
    parse(value);
  } catch (error) {
    expect(error).toBeInstanceOf(SecretInvalidError);
    return error as SecretInvalidError;
  }
  throw new Error('expected the secret to be refused');
}

type Json = Record<string, unknown>;
const withAuth = (patch: Json) => ({ ...webhook(), auth: { ...webhook().auth, ...patch } });
const withOAuth = (patch: Json) => ({ ...oauth(), auth: { ...oauth().auth, ...patch } });
const without = (value: Json, key: string) =>
  Object.fromEntries(Object.entries(value).filter(([k]) => k !== key));

describe('parsePortalSecret', () => {
  it('reads a webhook secret with its bot tokens and the standard plan', () => {
    const secret = parse(webhook());
    expect(secret).toMatchObject({
      portal: 'acme',
      secretName: NAME,
      portalUrl: 'https://acme.bitrix24.com',
      auth: { type: 'webhook', userId: 1, code: WEBHOOK_CODE },
      plan: 'standard',
      limits: standardPlan,
    });
    expect([...secret.bots]).toEqual([[456, { botToken: BOT_TOKEN }]]);
    expect(secret.versionId).toBeUndefined();
  });

  it('reads an OAuth secret whose bots carry no token and defaults the token endpoint', () => {
    const secret = parse(oauth());
    expect(secret.auth).toEqual({ ...oauth().auth, oauthUrl: DEFAULT_OAUTH_URL });
    expect([...secret.bots]).toEqual([[456, {}]]);
  });

  it('keeps an explicit OAuth token endpoint, which may be plain HTTP for a local emulator', () => {
    const secret = parse(withOAuth({ oauthUrl: 'http://127.0.0.1:9000/oauth/token/' }));
    expect(secret.auth.type === 'oauth' && secret.auth.oauthUrl).toBe('http://127.0.0.1:9000/oauth/token/');
  });

  it('defaults to the standard plan when the secret names none', () => {
    const secret = parse(without(webhook(), 'plan'));
    expect(secret.plan).toBe('standard');
    expect(secret.limits).toEqual(standardPlan);
  });

  it('gives the enterprise plan burst 250 at 5 per second', () => {
    const secret = parse({ ...webhook(), plan: 'enterprise' });
    expect(secret.plan).toBe('enterprise');
    expect(secret.limits).toEqual(enterprisePlan);
  });

  it('lets explicit limits win over the plan and calls the plan custom', () => {
    const secret = parse({ ...webhook(), plan: 'enterprise', limits: { burst: 10, perSecond: 0.5 } });
    expect(secret.plan).toBe('custom');
    expect(secret.limits).toEqual({ burst: 10, perSecond: 0.5 });
  });

  it('normalises the portal URL to its origin without a trailing slash', () => {
    expect(parse({ ...webhook(), portalUrl: 'https://ACME.bitrix24.com:443/' }).portalUrl).toBe(
      'https://acme.bitrix24.com',
    );
    expect(parse({ ...webhook(), portalUrl: 'http://127.0.0.1:8080' }).portalUrl).toBe(
      'http://127.0.0.1:8080',
    );
  });

  it('accepts a bot token of exactly 40 characters', () => {
    const token = 'x'.repeat(40);
    expect(parse({ ...webhook(), bots: { '456': { botToken: token } } }).bots.get(456)).toEqual({
      botToken: token,
    });
  });

  it('accepts a bot token on an OAuth secret', () => {
    expect(parse({ ...oauth(), bots: { '7': { botToken: BOT_TOKEN } } }).bots.get(7)).toEqual({
      botToken: BOT_TOKEN,
    });
  });

  it('registers every credential with the log redactor', () => {
    parse(webhook());
    parse(oauth());
    for (const value of SECRET_VALUES) expect(redactString(`saw ${value} here`)).toBe('saw [redacted] here');
  });

  it('refuses text that is not JSON without quoting any of it', () => {
    let error: unknown;
    try {
      parsePortalSecret('acme', NAME, `{"auth": {"code": "${WEBHOOK_CODE}"`);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(SecretInvalidError);
    expect((error as SecretInvalidError).message).toBe(
      `Secret "${NAME}" is invalid: the secret string is not valid JSON`,
    );
    expect((error as SecretInvalidError).message).not.toContain(WEBHOOK_CODE);
    expect((error as SecretInvalidError).cause).toBeUndefined();
    expect(error as SecretInvalidError).toMatchObject({ code: 'SECRET_INVALID', status: 502 });
  });

  it('refuses JSON that is not an object', () => {
    expect(invalid([webhook()]).message).toBe(
      `Secret "${NAME}" is invalid: the secret string must be a JSON object`,
    );
  });

  const rules: [string, unknown, string, string][] = [
    ['a missing portal URL', without(webhook(), 'portalUrl'), 'portalUrl', 'is required'],
    [
      'a portal URL that is not a string',
      { ...webhook(), portalUrl: 42 },
      'portalUrl',
      'must be an absolute http(s) URL',
    ],
    [
      'a relative portal URL',
      { ...webhook(), portalUrl: 'acme.bitrix24.com' },
      'portalUrl',
      'must be an absolute http(s) URL',
    ],
    [
      'a portal URL of another scheme',
      { ...webhook(), portalUrl: 'ftp://acme.bitrix24.com' },
      'portalUrl',
      'must be an absolute http(s) URL',
    ],
    [
      'a portal URL with a path',
      { ...webhook(), portalUrl: 'https://acme.bitrix24.com/rest/' },
      'portalUrl',
      'must not have a path, query or fragment',
    ],
    [
      'a portal URL with a query',
      { ...webhook(), portalUrl: 'https://acme.bitrix24.com/?a=1' },
      'portalUrl',
      'must not have a path, query or fragment',
    ],
    [
      'a portal URL with credentials',
      { ...webhook(), portalUrl: `https://u:${WEBHOOK_CODE}@acme.bitrix24.com` },
      'portalUrl',
      'must not contain credentials',
    ],
    ['a missing auth block', without(webhook(), 'auth'), 'auth', 'is required'],
    [
      'an auth block that is not an object',
      { ...webhook(), auth: WEBHOOK_CODE },
      'auth',
      'must be an object',
    ],
    ['an unknown auth type', withAuth({ type: 'password' }), 'auth.type', 'must be "webhook" or "oauth"'],
    ['a webhook user id of zero', withAuth({ userId: 0 }), 'auth.userId', 'must be a positive integer'],
    [
      'a webhook user id given as a string',
      withAuth({ userId: '1' }),
      'auth.userId',
      'must be a positive integer',
    ],
    ['a fractional webhook user id', withAuth({ userId: 1.5 }), 'auth.userId', 'must be a positive integer'],
    [
      'a missing webhook code',
      { ...webhook(), auth: { type: 'webhook', userId: 1 } },
      'auth.code',
      'is required',
    ],
    ['an empty webhook code', withAuth({ code: '' }), 'auth.code', 'must be a non-empty string'],
    [
      'a webhook code with a slash',
      withAuth({ code: `${WEBHOOK_CODE}/x` }),
      'auth.code',
      'must not contain slashes, whitespace, "?", "#" or "%"',
    ],
    ['an unknown auth field', withAuth({ password: WEBHOOK_CODE }), 'auth.password', 'is not a known field'],
    [
      'an empty client secret',
      withOAuth({ clientSecret: '' }),
      'auth.clientSecret',
      'must be a non-empty string',
    ],
    [
      'a missing client id',
      { ...oauth(), auth: without(oauth().auth, 'clientId') },
      'auth.clientId',
      'is required',
    ],
    [
      'a missing access token',
      { ...oauth(), auth: without(oauth().auth, 'accessToken') },
      'auth.accessToken',
      'is required',
    ],
    [
      'a refresh token that is not a string',
      withOAuth({ refreshToken: 12345 }),
      'auth.refreshToken',
      'must be a non-empty string',
    ],
    [
      'a negative expiry',
      withOAuth({ expiresAt: -1 }),
      'auth.expiresAt',
      'must be a non-negative integer (unix seconds)',
    ],
    [
      'an expiry given as a date string',
      withOAuth({ expiresAt: '2030-01-01' }),
      'auth.expiresAt',
      'must be a non-negative integer (unix seconds)',
    ],
    [
      'a token endpoint that is not a URL',
      withOAuth({ oauthUrl: 'oauth.bitrix.info' }),
      'auth.oauthUrl',
      'must be an absolute http(s) URL',
    ],
    ['a missing bot list', without(webhook(), 'bots'), 'bots', 'is required'],
    [
      'a bot list that is an array',
      { ...webhook(), bots: [456] },
      'bots',
      'must be an object keyed by bot id',
    ],
    ['an empty bot list', { ...webhook(), bots: {} }, 'bots', 'must list at least one bot'],
    [
      'a bot id that is not a number',
      { ...webhook(), bots: { bot: { botToken: BOT_TOKEN } } },
      'bots.bot',
      'is not a positive integer bot id',
    ],
    [
      'a bot id of zero',
      { ...webhook(), bots: { '0': { botToken: BOT_TOKEN } } },
      'bots.0',
      'is not a positive integer bot id',
    ],
    [
      'a bot id with a leading zero',
      { ...webhook(), bots: { '0456': { botToken: BOT_TOKEN } } },
      'bots.0456',
      'is not a positive integer bot id',
    ],
    [
      'a webhook bot without a token',
      { ...webhook(), bots: { '456': {} } },
      'bots.456.botToken',
      'is required with webhook auth',
    ],
    [
      'an empty bot token',
      { ...webhook(), bots: { '456': { botToken: '' } } },
      'bots.456.botToken',
      'must not be empty',
    ],
    [
      'a bot token longer than 40 characters',
      { ...webhook(), bots: { '456': { botToken: `${BOT_TOKEN}${'y'.repeat(30)}` } } },
      'bots.456.botToken',
      'must be at most 40 characters',
    ],
    [
      'a bot entry that is not an object',
      { ...webhook(), bots: { '456': BOT_TOKEN } },
      'bots.456',
      'must be an object',
    ],
    ['an unknown plan', { ...webhook(), plan: 'professional' }, 'plan', 'must be "standard" or "enterprise"'],
    ['limits that are not an object', { ...webhook(), limits: 50 }, 'limits', 'must be an object'],
    [
      'a zero burst',
      { ...webhook(), limits: { burst: 0, perSecond: 2 } },
      'limits.burst',
      'must be a number from 1 to 10,000 (requests)',
    ],
    [
      'a burst below one request, which the pacer cannot use',
      { ...webhook(), limits: { burst: 0.5, perSecond: 2 } },
      'limits.burst',
      'must be a number from 1 to 10,000 (requests)',
    ],
    [
      'a burst no Bitrix24 plan comes near',
      { ...webhook(), limits: { burst: 1e9, perSecond: 2 } },
      'limits.burst',
      'must be a number from 1 to 10,000 (requests)',
    ],
    [
      'a negative rate',
      { ...webhook(), limits: { burst: 50, perSecond: -2 } },
      'limits.perSecond',
      'must be a number from 0.01 to 100 (requests a second)',
    ],
    [
      'a rate that would park the portal for years',
      { ...webhook(), limits: { burst: 50, perSecond: 1e-9 } },
      'limits.perSecond',
      'must be a number from 0.01 to 100 (requests a second)',
    ],
    [
      'a rate that would turn the pacer off',
      { ...webhook(), limits: { burst: 50, perSecond: 1e308 } },
      'limits.perSecond',
      'must be a number from 0.01 to 100 (requests a second)',
    ],
    ['a missing rate', { ...webhook(), limits: { burst: 50 } }, 'limits.perSecond', 'is required'],
    ['an unknown top-level field', { ...webhook(), plans: 'enterprise' }, 'plans', 'is not a known field'],
  ];

  it.each(rules)('refuses %s, naming the field and the rule but no secret value', (_, value, field, rule) => {
    const error = invalid(value);
    expect(error.field).toBe(field);
    expect(error.message).toBe(`Secret "${NAME}" is invalid: ${field} ${rule}`);
    expect(error).toMatchObject({ name: 'SecretInvalidError', code: 'SECRET_INVALID', status: 502 });
    for (const secretValue of SECRET_VALUES) expect(error.message).not.toContain(secretValue);
  });
});

describe('serializePortalSecret', () => {
  it.each([
    ['a webhook secret', webhook()],
    ['an OAuth secret', oauth()],
    ['an enterprise secret', { ...webhook(), plan: 'enterprise' }],
    ['a secret with explicit limits', { ...webhook(), limits: { burst: 10, perSecond: 1 } }],
  ])('round-trips %s through parse and serialize', (_, value) => {
    const secret = parse(value);
    const text = serializePortalSecret(secret);
    expect(parsePortalSecret('acme', NAME, text)).toEqual(secret);
    expect(serializePortalSecret(parsePortalSecret('acme', NAME, text))).toBe(text);
  });

  it('writes the documented format: plan by name, origin URL, bots keyed by id', () => {
    const text = serializePortalSecret(parse({ ...webhook(), portalUrl: 'https://acme.bitrix24.com/' }));
    expect(JSON.parse(text)).toEqual({
      portalUrl: 'https://acme.bitrix24.com',
      auth: { type: 'webhook', userId: 1, code: WEBHOOK_CODE },
      bots: { '456': { botToken: BOT_TOKEN } },
      plan: 'standard',
    });
  });

  it('writes explicit limits instead of a plan for a custom plan', () => {
    const text = serializePortalSecret(
      parse({ ...webhook(), plan: 'enterprise', limits: { burst: 9, perSecond: 3 } }),
    );
    expect(JSON.parse(text)).toMatchObject({ limits: { burst: 9, perSecond: 3 } });
    expect(JSON.parse(text)).not.toHaveProperty('plan');
  });
});

describe('withOAuthTokens', () => {
  const tokens = {
    accessToken: 'newAccessToken1',
    refreshToken: 'newRefreshToken1',
    expiresAt: 1_900_003_600,
  };

  it('replaces the token pair and expiry and keeps everything else', () => {
    const secret = { ...parse(oauth()), versionId: 'v1' };
    const updated = withOAuthTokens(secret, tokens);
    expect(updated.auth).toEqual({ ...secret.auth, ...tokens });
    expect(updated.bots).toBe(secret.bots);
    expect(updated.versionId).toBeUndefined();
    expect(secret.auth).toMatchObject({ accessToken: ACCESS_TOKEN });
  });

  it('registers the new tokens with the log redactor', () => {
    withOAuthTokens(parse(oauth()), tokens);
    expect(redactString(`${tokens.accessToken} ${tokens.refreshToken}`)).toBe('[redacted] [redacted]');
  });

  it('refuses an empty access token without quoting the refresh token', () => {
    let error: unknown;
    try {
      withOAuthTokens(parse(oauth()), { ...tokens, accessToken: '' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(SecretInvalidError);
    expect((error as SecretInvalidError).field).toBe('auth.accessToken');
    expect((error as SecretInvalidError).message).not.toContain(tokens.refreshToken);
  });

  it('refuses a webhook secret', () => {
    expect(() => withOAuthTokens(parse(webhook()), tokens)).toThrow(/does not use OAuth/);
  });
});
