import type { RateLimits } from '../../lib/bitrix24/types.ts';

export type { RateLimits };

export type OperatingBilling = 'per-method' | 'per-batch';

/** How a boolean-returning imbot.v2 method answers: `{result:true}` or `{result:{result:true}}`. */
export type SuccessShape = 'flat' | 'nested';

export interface EmulatorOptions {
  /** Port to listen on; default 0 picks a free one. The host is always 127.0.0.1. */
  port?: number;
  /** The portal's leaky bucket; default `standardPlan` (burst 50, 2/s); null disables it. */
  limits?: RateLimits | null;
  /** Operating-time budget per method and app/webhook over ten one-minute baskets; default 480. */
  operatingLimitSeconds?: number;
  /** Simulated execution time of one method call, counted into `operating` (never slept); default 5. */
  processingMs?: number;
  /**
   * What a `batch` call is billed to. 'per-method' (default, the docs): each command to its own
   * method, the outer call to nothing. 'per-batch' (the JS SDK's measurement on a self-hosted
   * portal): the whole call to the method `batch`, every command's `result_time` showing the batch's
   * `operating`, and a blocked `batch` refused as a whole.
   */
  operatingBilling?: OperatingBilling;
  /** Length of one of the ten operating-time baskets; default 60000 (a minute). Tests scale it down. */
  operatingBasketMs?: number;
  /** Answer shape of boolean-result methods; default 'nested' (the docs since June 2026). */
  successShape?: SuccessShape;
  /** Lifetime of issued access tokens; default 3600. */
  accessTokenTtlSeconds?: number;
  /** Millisecond clock for tokens, the bucket, baskets and `time`; default Date.now. */
  now?: () => number;
  /** Source of randomness for random faults; default Math.random. */
  random?: () => number;
  /** Rules the imbot.v2 docs do not state, each off unless turned on here; see `InferredRules`. */
  inferred?: InferredRules;
}

/**
 * Rules read from the legacy API, not from the imbot.v2 docs. The emulator answers by the docs
 * alone unless one is turned on, so a test that needs one says so by name.
 */
export interface InferredRules {
  /**
   * Seconds after its creation past which a message can no longer be updated: 403
   * CANT_EDIT_MESSAGE, as the legacy `imbot.message.update` answered (its page: "more than three
   * days", 259200; the chats index calls the window a portal setting). Default null: no window, as
   * the v2 update page documents none.
   */
  editWindowSeconds?: number | null;
  /**
   * Apply `fields.urlPreview` on an update that has no `fields.message`. Default false: the legacy
   * update read the preview flag only together with a new text, and the v2 page does not say
   * otherwise.
   */
  urlPreviewWithoutMessage?: boolean;
}

export type FaultKind =
  | 'server-error'
  | 'overload'
  | 'query-limit'
  | 'operating-limit'
  | 'html'
  | 'reset'
  | 'slow';

export interface Fault {
  /** 'redirect' answers 307/308 with a Location on another host (never drawn at random). */
  kind: FaultKind | 'error' | 'redirect';
  /** Only HTTP requests to this method ('batch' for batch calls, 'oauth/token' for refreshes); default any REST call. */
  method?: string;
  /** For 'slow': wait this long, then answer normally. */
  delayMs?: number;
  /** For 'reset' / 'server-error' / 'html': execute the request first, then fail (an ambiguous outcome). */
  afterApply?: boolean;
  /** For 'redirect': where to (default `http://moved.b24-emulator.invalid/`, another host that never resolves). */
  location?: string;
  /**
   * For 'error': the code, the HTTP status and the description (status and description default from
   * the error table). For 'redirect': 307 (default) or 308.
   */
  status?: number;
  code?: string;
  description?: string;
}

export interface RandomFaults {
  /** Share of REST requests that fail, 0..1. */
  rate: number;
  kinds: FaultKind[];
  /** Delay of a random 'slow' fault; default 200. */
  slowMs?: number;
}

export interface EmulatedMessage {
  id: number;
  chatId: number;
  /** 0 for system messages, as Bitrix24 stores them. */
  authorId: number;
  botId: number | undefined;
  text: string;
  attach: unknown;
  keyboard: unknown;
  urlPreview: boolean;
  system: boolean;
  editCount: number;
  /** Every text it ever had, in order: one entry at creation and one per successful update. */
  history: string[];
  updatedAt: number;
}

export interface CallRecord {
  seq: number;
  at: number;
  method: string;
  viaBatch: boolean;
  batchKey?: string;
  auth: 'webhook' | 'oauth' | 'none';
  /** The parameters as received, with botToken, auth and other secrets replaced by '[redacted]'. */
  params: unknown;
  /** 0 when the socket was destroyed without an answer. */
  httpStatus: number;
  code?: string;
  /** The portal's request bucket right after this HTTP request was counted (or refused). */
  bucketLevel?: number;
}

export type BotOwner = { webhookUserId: number } | { clientId: string };

/** `Bot.register` types; only `supervisor` and `personal` may call `Chat.Message.get`. */
export type BotType = 'bot' | 'supervisor' | 'personal' | 'openline';

/** A registered bot as the portal keeps it, without its token. */
export interface EmulatedBot {
  id: number;
  code: string;
  type: BotType;
  owner: BotOwner;
}

/** A group chat made by `imbot.v2.Chat.add`. */
export interface EmulatedChat {
  id: number;
  /** `chat<id>`, what the message methods take. */
  dialogId: string;
  title: string;
  description: string;
  /** Hex: the code given to `Chat.add`, or one assigned. */
  color: string;
  ownerId: number;
  /** Users and bots in the chat now, ascending; a bot that left or was unregistered is not. */
  members: number[];
}

export interface OAuthGrant {
  accessToken: string;
  refreshToken: string;
  /** Unix seconds. */
  expiresAt: number;
}

/** A message seeded directly: `botId` makes the bot its author. */
export interface SeedMessage {
  botId?: number;
  authorId?: number;
  chatId?: number;
  text: string;
  system?: boolean;
  id?: number;
}

export interface Bitrix24Emulator {
  /** The portal URL, 'http://127.0.0.1:PORT'. */
  readonly url: string;
  /** `${url}/oauth/token/` */
  readonly oauthUrl: string;
  /** Stops listening and destroys open sockets. */
  close(): Promise<void>;
  addWebhook(w: { userId: number; code: string }): void;
  addOAuthApp(a: { clientId: string; clientSecret: string }): OAuthGrant;
  /** `type` defaults to `bot`. */
  registerBot(b: { id?: number; code?: string; botToken?: string; owner: BotOwner; type?: BotType }): number;
  /** Seeds a message directly; `botId` makes the bot its author. Returns its id. */
  addMessage(m: SeedMessage): number;
  getMessage(id: number): EmulatedMessage | undefined;
  messages(): EmulatedMessage[];
  /** The bots registered now (seeded or by `Bot.register`, less those `Bot.unregister` removed). */
  bots(): EmulatedBot[];
  /** The chats `imbot.v2.Chat.add` made, with their members now. */
  chats(): EmulatedChat[];
  readonly calls: readonly CallRecord[];
  clearCalls(): void;
  setSuccessShape(shape: SuccessShape): void;
  setLimits(limits: RateLimits | null): void;
  bucketLevel(): number;
  /** Every access token issued so far is now expired. */
  expireAccessTokens(): void;
  /** Every refresh token issued so far now answers invalid_grant. */
  revokeRefreshTokens(): void;
  /** The next `times` (default 1) matching HTTP requests fail this way. */
  inject(fault: Fault, times?: number): void;
  setRandomFaults(f: RandomFaults | null): void;
  /** 'command': the method fails inside batch with ERROR_BATCH_METHOD_NOT_ALLOWED; 'call': a batch containing it is refused with HTTP 405. */
  disallowInBatch(method: string, mode: 'command' | 'call'): void;
  /** On: every error description quotes every credential the emulator knows (a careless server). */
  echoCredentials(on: boolean): void;
  /** Forgets faults, calls, the bucket level and operating-time baskets; keeps bots, chats, messages and settings. */
  reset(): void;
}
