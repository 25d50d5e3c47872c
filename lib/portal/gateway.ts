import { randomUUID } from 'node:crypto';
import { type BatchCommand, buildBatchCmd } from '../bitrix24/batch.ts';
import { type Bitrix24Client, createBitrix24Client } from '../bitrix24/client.ts';
import { findErrorRow, LocalCode } from '../bitrix24/error-table.ts';
import { Bitrix24Error, isBitrix24Error } from '../bitrix24/errors.ts';
import { isBooleanSuccess, UPDATE_METHOD, updateParams } from '../bitrix24/imbot.ts';
import { refreshOAuthTokens } from '../bitrix24/oauth.ts';
import type { CallOutcome, PortalAuth } from '../bitrix24/types.ts';
import { type Clock, systemClock } from '../clock.ts';
import type { EditFields } from '../edits/types.ts';
import { AppError, ValidationError } from '../errors.ts';
import { logger } from '../observability/logger.ts';
import { PORTAL_PATTERN } from '../portal-name.ts';
import {
  type PortalSecret,
  SecretInvalidError,
  type SecretStore,
  withOAuthTokens,
} from '../secrets/index.ts';

/** The bot is not in the portal secret's allow-list; Bitrix24 is not called. */
export class BotNotAllowedError extends AppError {
  override name = 'BotNotAllowedError';
  readonly botId: number;
  constructor(portal: string, botId: number) {
    super('BOT_NOT_FOUND', `Bot ${botId} is not listed in the secret of portal "${portal}"`, 404);
    this.botId = botId;
  }
}

/**
 * A short lock per portal shared by every container (the ledger's portal item): one OAuth refresh
 * per expiry for the whole fleet, since each refresh rotates the refresh token and voids the others'.
 */
export interface RefreshLock {
  /** True when `owner` now holds the portal's refresh lock until `untilMs` (epoch ms). */
  acquireRefreshLock(portal: string, owner: string, untilMs: number): Promise<boolean>;
  releaseRefreshLock(portal: string, owner: string): Promise<void>;
}

/** How often a container waiting for another's refresh reads the secret again. */
const REFRESH_POLL_MS = 150;
/** Reads of the secret after an `invalid_grant`, looking for the pair that voided ours. */
const INVALID_GRANT_READS = 5;

/** Which portal key serves a Bitrix24 host, fleet-wide (the ledger's host claims). */
export interface HostClaim {
  /** Claims `host` for `portal`: undefined when it is the portal's now, else the portal that holds it. */
  claim(host: string, portal: string): Promise<string | undefined>;
}

/**
 * How often a container renews its portals' host claims (well inside the claims' stale time,
 * `HOST_CLAIM_STALE_MS`): a write per container and portal an hour.
 */
const HOST_CLAIM_RENEW_MS = 60 * 60_000;

export interface GatewayOptions {
  store: SecretStore;
  /** Two secrets naming one Bitrix24 portal are refused; without it, nothing checks. */
  hostClaims?: (() => HostClaim | undefined) | undefined;
  /** The fleet-wide refresh lock; without it, refreshes are single-flight per container only. */
  refreshLock?: (() => RefreshLock | undefined) | undefined;
  /** This container's lock owner id. Default a random UUID. */
  owner?: string | undefined;
  /** Timeout of one Bitrix24 request in ms. */
  timeoutMs: number;
  /** Allow plain-HTTP portal and OAuth URLs (local use only). */
  allowHttp: boolean;
  /** Times the refresh lock and the waits for another container's refresh. Default the system clock. */
  clock?: Clock | undefined;
}

export interface CallRequest {
  /** Inject this bot's token (webhook auth) after checking the bot is allowed. */
  botId?: number | undefined;
  signal?: AbortSignal | undefined;
  /**
   * Runs right before each HTTP request leaves (the first, and the repeat after a recovery);
   * a rejection stops the call unsent. The reconciler confirms its portal lease here.
   */
  beforeSend?: (() => Promise<void>) | undefined;
}

/** What a caller of `updateMessage` and `batch` may add to the call. */
export type SendRequest = Omit<CallRequest, 'botId'>;

/**
 * Calls Bitrix24 on behalf of a portal with the credentials from its secret. It owns the two
 * recoveries that need the secret: one OAuth refresh on `expired_token` (shared by concurrent calls,
 * written back to Secrets Manager), and one refetch of a rotated secret after an auth failure.
 * It never retries anything else: those decisions belong to the callers.
 */
export class PortalGateway {
  readonly #options: GatewayOptions;
  readonly #clients = new Map<string, Bitrix24Client>();
  readonly #refreshing = new Map<string, Promise<PortalSecret>>();
  /** Refreshed OAuth secrets whose write-back failed: they override the stored (now void) tokens. */
  readonly #unsaved = new Map<string, PortalSecret>();
  /** Host claims this container holds, by portal (for its secret's URL), and until when they need no renewal. */
  readonly #claimed = new Map<string, { portalUrl: string; until: number }>();

  readonly #owner: string;
  readonly #clock: Clock;

  constructor(options: GatewayOptions) {
    this.#options = options;
    this.#owner = options.owner ?? randomUUID();
    this.#clock = options.clock ?? systemClock;
  }

  /** The portal's secret (cached by the store), refused when another secret serves its Bitrix24 portal. */
  async secret(portal: string): Promise<PortalSecret> {
    if (!PORTAL_PATTERN.test(portal)) {
      throw new ValidationError('portal', `portal must match ${PORTAL_PATTERN.source}`, 'INVALID_PORTAL');
    }
    const secret = this.#unsaved.get(portal) ?? (await this.#options.store.get(portal));
    await this.#assertOwnHost(secret);
    return secret;
  }

  /**
   * One Bitrix24 portal, one secret: each portal key has its own ledger, lease and rate bucket, so a
   * second secret naming the same portal could land an older edit over a newer one. The claim is
   * renewed every `HOST_CLAIM_RENEW_MS`; a ledger that cannot be asked does not stop the call.
   */
  async #assertOwnHost(secret: PortalSecret): Promise<void> {
    const claims = this.#options.hostClaims?.();
    if (!claims) return;
    const now = this.#clock.now();
    // Every call comes through here: a claim this container holds for this very URL is enough.
    const known = this.#claimed.get(secret.portal);
    if (known && known.portalUrl === secret.portalUrl && known.until > now) return;
    const host = new URL(secret.portalUrl).host.toLowerCase();
    let holder: string | undefined;
    try {
      holder = await claims.claim(host, secret.portal);
    } catch (error) {
      logger.warn('The portal’s host claim could not be renewed; calls go on', {
        portal: secret.portal,
        code: error instanceof AppError ? error.code : 'LEDGER_UNAVAILABLE',
      });
      return;
    }
    if (holder !== undefined) {
      this.#claimed.delete(secret.portal);
      throw new SecretInvalidError(
        secret.secretName,
        'portalUrl',
        `names the Bitrix24 portal ${host}, which portal "${holder}" (a secret of its own) already serves: one Bitrix24 portal, one secret (each has its own ledger, lease and rate bucket). Delete one of the two; a secret unused for six hours gives its portal up`,
      );
    }
    this.#claimed.set(secret.portal, { portalUrl: secret.portalUrl, until: now + HOST_CLAIM_RENEW_MS });
  }

  /** Throws BotNotAllowedError when the bot is not in the portal's allow-list. */
  async assertBotAllowed(portal: string, botId: number): Promise<PortalSecret> {
    const secret = await this.secret(portal);
    botCredentials(secret, botId);
    return secret;
  }

  /** Calls one method; with `botId`, the bot must be allowed and its token goes in the body. */
  async call<T = unknown>(
    portal: string,
    method: string,
    params: Record<string, unknown>,
    request: CallRequest = {},
  ): Promise<CallOutcome<T>> {
    return this.#withCredentials(portal, request, (secret, client, auth) =>
      client.call<T>(method, withBotToken(secret, params, request.botId), { auth, signal: request.signal }),
    );
  }

  /** `imbot.v2.Chat.Message.update`; resolves with the `time` object of the answer. */
  async updateMessage(
    portal: string,
    target: { botId: number; messageId: number },
    fields: EditFields,
    request: SendRequest = {},
  ): Promise<CallOutcome<true>> {
    const outcome = await this.call(portal, UPDATE_METHOD, updateParams(target, fields), {
      ...request,
      botId: target.botId,
    });
    if (!isBooleanSuccess(outcome.result)) {
      const secret = await this.secret(portal);
      throw new Bitrix24Error({
        method: UPDATE_METHOD,
        host: new URL(secret.portalUrl).host,
        httpStatus: 200,
        time: outcome.time,
        code: LocalCode.UnexpectedResult,
        description: 'the answer was neither result: true nor result.result: true',
      });
    }
    return outcome.time ? { result: true, time: outcome.time } : { result: true };
  }

  /**
   * One `batch` call (halt=0) of bot commands: each command's bot must be allowed, and its token is
   * put inside its command (webhook auth). Resolves with the keys sent and the raw answer.
   */
  async batch(
    portal: string,
    commands: ReadonlyArray<BatchCommand & { botId: number }>,
    request: SendRequest = {},
  ): Promise<CallOutcome> {
    const { signal } = request;
    return this.#withCredentials(portal, request, (secret, client, auth) => {
      const cmd = buildBatchCmd(
        commands.map(({ key, method, params, botId }) => ({
          key,
          method,
          params: withBotToken(secret, params, botId),
        })),
      );
      return client.call('batch', { halt: 0, cmd }, { auth, signal });
    });
  }

  /**
   * Runs `attempt` with the portal's credentials, recovering once from an expired OAuth token or a
   * rotated secret. Credentials never leave the gateway: callers use `call`, `updateMessage`, `batch`.
   */
  async #withCredentials<T>(
    portal: string,
    request: SendRequest,
    attempt: (secret: PortalSecret, client: Bitrix24Client, auth: PortalAuth) => Promise<T>,
  ): Promise<T> {
    const { signal, beforeSend } = request;
    const secret = await this.secret(portal);
    const run = async (s: PortalSecret) => {
      await beforeSend?.();
      return attempt(s, this.#client(s), authOf(s));
    };
    try {
      return await run(secret);
    } catch (error) {
      if (!isBitrix24Error(error)) throw error;
      const recovered = await this.#recover(portal, secret, error, signal);
      if (!recovered) throw error;
      return run(recovered);
    }
  }

  async #recover(
    portal: string,
    secret: PortalSecret,
    error: Bitrix24Error,
    signal: AbortSignal | undefined,
  ): Promise<PortalSecret | undefined> {
    if (error.strategy === 'refresh-auth' && secret.auth.type === 'oauth') {
      return this.#refresh(portal, secret.auth.accessToken, signal);
    }
    // A renamed portal redirects to its new address, which calls never follow: the OAuth token
    // answer names it (`client_endpoint`), for the same install only (withOAuthTokens).
    if (error.code === LocalCode.Redirected && secret.auth.type === 'oauth') {
      const refreshed = await this.#refresh(portal, secret.auth.accessToken, signal);
      return refreshed.portalUrl !== secret.portalUrl ? refreshed : undefined;
    }
    if (findErrorRow(error.code, error.httpStatus)?.refetchSecret) {
      const fresh = await this.#options.store.get(portal, { fresh: true });
      const changed =
        JSON.stringify(authOf(fresh)) !== JSON.stringify(authOf(secret)) || botsChanged(fresh, secret);
      if (changed)
        logger.info('Portal secret changed since it was cached; repeating the call once', { portal });
      return changed ? fresh : undefined;
    }
    return undefined;
  }

  /**
   * One refresh per portal at a time in this container, and with the refresh lock, in the fleet; a
   * caller whose token was already replaced just uses the new one.
   */
  #refresh(portal: string, usedAccessToken: string, signal: AbortSignal | undefined): Promise<PortalSecret> {
    const inFlight = this.#refreshing.get(portal);
    if (inFlight) return inFlight;
    const refresh = this.#refreshOnce(portal, usedAccessToken, signal).finally(() =>
      this.#refreshing.delete(portal),
    );
    this.#refreshing.set(portal, refresh);
    return refresh;
  }

  async #refreshOnce(
    portal: string,
    usedAccessToken: string,
    signal: AbortSignal | undefined,
  ): Promise<PortalSecret> {
    const replaced = (secret: PortalSecret) =>
      secret.auth.type !== 'oauth' || secret.auth.accessToken !== usedAccessToken;
    // Read past the cache: another container may have refreshed already, voiding our refresh token.
    const read = async () =>
      this.#unsaved.get(portal) ?? (await this.#options.store.get(portal, { fresh: true }));
    let current = await read();
    if (replaced(current)) return current;
    const lock = this.#options.refreshLock?.();
    if (!lock) return this.#refreshWith(portal, current, signal);
    // Held for one refresh and its write-back, at most.
    const holdMs = 2 * this.#options.timeoutMs + 2_000;
    const clock = this.#clock;
    const giveUpAt = clock.now() + holdMs;
    for (;;) {
      if (await lock.acquireRefreshLock(portal, this.#owner, clock.now() + holdMs)) break;
      // Another container is refreshing: its new pair reaches the secret within the lock's time.
      if (clock.now() >= giveUpAt || signal?.aborted) return current;
      await clock.sleep(REFRESH_POLL_MS, signal);
      current = await read();
      if (replaced(current)) return current;
    }
    try {
      // The previous holder may have finished between our read and our lock.
      current = await read();
      if (replaced(current)) return current;
      return await this.#refreshWith(portal, current, signal);
    } finally {
      await lock.releaseRefreshLock(portal, this.#owner).catch(() => undefined);
    }
  }

  async #refreshWith(
    portal: string,
    current: PortalSecret,
    signal: AbortSignal | undefined,
  ): Promise<PortalSecret> {
    if (current.auth.type !== 'oauth') return current;
    let tokens: Awaited<ReturnType<typeof refreshOAuthTokens>>;
    try {
      tokens = await refreshOAuthTokens({
        oauthUrl: current.auth.oauthUrl,
        clientId: current.auth.clientId,
        clientSecret: current.auth.clientSecret,
        refreshToken: current.auth.refreshToken,
        timeoutMs: this.#options.timeoutMs,
        allowHttp: this.#options.allowHttp,
        signal,
      });
    } catch (error) {
      // A refresh token rotated by someone else (a container without the lock, an operator): the
      // secret holds the newer pair, so this is not a reason to give the app up.
      // Its write-back may still be on the way: the secret is read a few times before giving up.
      if (isBitrix24Error(error) && error.code === 'invalid_grant') {
        for (let read = 0; read < INVALID_GRANT_READS && !signal?.aborted; read++) {
          const fresh = await this.#options.store.get(portal, { fresh: true });
          if (fresh.auth.type === 'oauth' && fresh.auth.refreshToken !== current.auth.refreshToken)
            return fresh;
          await this.#clock.sleep(REFRESH_POLL_MS, signal);
        }
      }
      throw error;
    }
    const updated = withOAuthTokens(current, tokens);
    if (updated.portalUrl !== current.portalUrl) {
      logger.warn(
        'The portal answers at another address (its OAuth token answer names it); calls follow it',
        {
          portal,
          from: new URL(current.portalUrl).host,
          to: new URL(updated.portalUrl).host,
        },
      );
    } else if (tokens.portalUrl !== undefined && tokens.portalUrl !== current.portalUrl) {
      logger.error('An OAuth token answer names another portal address for another install; not followed', {
        portal,
        to: new URL(tokens.portalUrl).host,
      });
    }
    try {
      const stored = await this.#options.store.put(updated);
      this.#unsaved.delete(portal);
      logger.info('OAuth tokens refreshed and written back', { portal });
      return stored;
    } catch (error) {
      // The old refresh token is void now: losing the new pair would lock the portal out, so this
      // container keeps using it; the next refresh tries the write-back again.
      this.#unsaved.set(portal, updated);
      logger.error('OAuth tokens refreshed but could not be written back to the portal secret', {
        portal,
        error: error instanceof Error ? { name: error.name, message: error.message } : String(error),
      });
      return updated;
    }
  }

  #client(secret: PortalSecret): Bitrix24Client {
    let client = this.#clients.get(secret.portalUrl);
    if (!client) {
      client = createBitrix24Client({
        portalUrl: secret.portalUrl,
        timeoutMs: this.#options.timeoutMs,
        allowHttp: this.#options.allowHttp,
      });
      this.#clients.set(secret.portalUrl, client);
    }
    return client;
  }
}

function authOf(secret: PortalSecret): PortalAuth {
  return secret.auth.type === 'webhook'
    ? { type: 'webhook', userId: secret.auth.userId, code: secret.auth.code }
    : { type: 'oauth', accessToken: secret.auth.accessToken };
}

function botCredentials(secret: PortalSecret, botId: number) {
  const bot = secret.bots.get(botId);
  if (!bot) throw new BotNotAllowedError(secret.portal, botId);
  return bot;
}

/** With webhook auth every imbot.v2 call carries the bot's token; OAuth calls identify the bot by the app. */
function withBotToken(
  secret: PortalSecret,
  params: Record<string, unknown>,
  botId: number | undefined,
): Record<string, unknown> {
  if (botId === undefined) return params;
  const bot = botCredentials(secret, botId);
  if (secret.auth.type !== 'webhook' || bot.botToken === undefined) return params;
  return { ...params, botToken: bot.botToken };
}

function botsChanged(a: PortalSecret, b: PortalSecret): boolean {
  if (a.bots.size !== b.bots.size) return true;
  for (const [id, bot] of a.bots) if (b.bots.get(id)?.botToken !== bot.botToken) return true;
  return false;
}
