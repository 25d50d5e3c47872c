import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type BatchCommandResult, runBatch } from './batch.ts';
import { CONTROL_PREFIX, handleControl } from './control.ts';
import { Credentials, type Identity } from './credentials.ts';
import { Faults, faultReply, OAUTH_METHOD, runsFirst } from './faults.ts';
import { errorReply, type HttpReply, json, parseParams, readBody, replyStatus, writeReply } from './http.ts';
import { LeakyBucket } from './leaky-bucket.ts';
import { isMissing } from './message-fields.ts';
import { canonicalMethodName, findMethod, type MethodEntry } from './methods.ts';
import { OperatingTime } from './operating-time.ts';
import { checkLimits, checkShape, normaliseOptions, type Settings } from './options.ts';
import { type Failure, fail, failure, type Outcome } from './outcome.ts';
import { Portal } from './portal.ts';
import { SecretRegistry } from './redaction.ts';
import { type B24Time, timeObject } from './time-object.ts';
import type {
  Bitrix24Emulator,
  BotOwner,
  CallRecord,
  EmulatedMessage,
  EmulatorOptions,
  Fault,
  OAuthGrant,
  RandomFaults,
  RateLimits,
  SuccessShape,
} from './types.ts';

type RestRoute =
  | { kind: 'webhook'; userId: number; code: string; method: string }
  | { kind: 'oauth'; method: string };

const WEBHOOK_PATH = /^\/rest\/(\d+)\/([^/]+)\/([^/]+)\/?$/;
const OAUTH_PATH = /^\/rest\/([^/]+)\/?$/;
const TOKEN_PATH = /^\/oauth\/token\/?$/;
const NO_OPERATING = { operating: 0, resetAt: 0 };

function restRoute(path: string): RestRoute | undefined {
  const webhook = WEBHOOK_PATH.exec(path);
  if (webhook) {
    return {
      kind: 'webhook',
      userId: Number(webhook[1]),
      code: decodeURIComponent(webhook[2] ?? ''),
      method: webhook[3] ?? '',
    };
  }
  const oauth = OAUTH_PATH.exec(path);
  return oauth ? { kind: 'oauth', method: oauth[1] ?? '' } : undefined;
}

function isIdentity(value: Identity | Failure): value is Identity {
  return 'kind' in value;
}

class EmulatorServer implements Bitrix24Emulator {
  url = '';
  oauthUrl = '';
  readonly #settings: Settings;
  readonly #secrets = new SecretRegistry();
  readonly #credentials: Credentials;
  readonly #portal: Portal;
  readonly #bucket: LeakyBucket;
  readonly #operating: OperatingTime;
  readonly #faults: Faults;
  readonly #disallowed = new Map<string, 'command' | 'call'>();
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #closing = new AbortController();
  #calls: CallRecord[] = [];
  #seq = 0;
  #successShape: SuccessShape;

  constructor(settings: Settings) {
    this.#settings = settings;
    this.#successShape = settings.successShape;
    this.#credentials = new Credentials(settings.now, settings.accessTokenTtlSeconds, this.#secrets);
    this.#portal = new Portal(settings.now, this.#secrets);
    this.#bucket = new LeakyBucket(settings.limits, settings.now);
    this.#operating = new OperatingTime(settings.operatingLimitSeconds, settings.now);
    this.#faults = new Faults(settings.random);
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch(() => {
        if (!res.headersSent) writeReply(res, errorReply(failure('INTERNAL_SERVER_ERROR')));
      });
    });
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#settings.port, '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const { port } = this.#server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
    this.oauthUrl = `${this.url}/oauth/token/`;
  }

  async close(): Promise<void> {
    this.#closing.abort();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  addWebhook(w: { userId: number; code: string }): void {
    this.#credentials.addWebhook(w.userId, w.code);
  }

  addOAuthApp(a: { clientId: string; clientSecret: string }): OAuthGrant {
    return this.#credentials.addApp(a.clientId, a.clientSecret);
  }

  registerBot(b: { id?: number; code?: string; botToken?: string; owner: BotOwner }): number {
    return this.#portal.registerBot(b);
  }

  addMessage(m: {
    botId?: number;
    authorId?: number;
    chatId?: number;
    text: string;
    system?: boolean;
    id?: number;
  }): number {
    return this.#portal.addMessage(m);
  }

  getMessage(id: number): EmulatedMessage | undefined {
    return this.#portal.snapshot(id);
  }

  messages(): EmulatedMessage[] {
    return this.#portal.snapshots();
  }

  get calls(): readonly CallRecord[] {
    return this.#calls;
  }

  clearCalls(): void {
    this.#calls = [];
  }

  setSuccessShape(shape: SuccessShape): void {
    this.#successShape = checkShape(shape);
  }

  setLimits(limits: RateLimits | null): void {
    this.#bucket.setLimits(checkLimits(limits));
  }

  bucketLevel(): number {
    return this.#bucket.level();
  }

  expireAccessTokens(): void {
    this.#credentials.expireAccessTokens();
  }

  revokeRefreshTokens(): void {
    this.#credentials.revokeRefreshTokens();
  }

  inject(fault: Fault, times = 1): void {
    this.#faults.inject(fault, times);
  }

  setRandomFaults(f: RandomFaults | null): void {
    this.#faults.setRandom(f);
  }

  disallowInBatch(method: string, mode: 'command' | 'call'): void {
    this.#disallowed.set(canonicalMethodName(method).toLowerCase(), mode);
  }

  reset(): void {
    this.#faults.clear();
    this.#calls = [];
    this.#bucket.empty();
    this.#operating.clear();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const body = await readBody(req);
    const contentType = req.headers['content-type'];
    let reply: HttpReply;
    if (url.pathname.startsWith(CONTROL_PREFIX)) {
      const parsed = parseParams(new URL(url.pathname, this.url), body, 'application/json');
      reply = handleControl(
        this,
        req.method ?? 'GET',
        url.pathname,
        'params' in parsed ? parsed.params : undefined,
      );
    } else if (TOKEN_PATH.test(url.pathname)) {
      reply = await this.#oauth(url, body, contentType);
    } else {
      const route = restRoute(url.pathname);
      reply = route
        ? await this.#rest(route, url, body, contentType)
        : json(404, { error: 'NOT_FOUND', error_description: 'Unknown path' });
    }
    if (!this.#closing.signal.aborted) writeReply(res, reply);
  }

  #record(entry: Omit<CallRecord, 'seq' | 'at' | 'httpStatus' | 'params'> & { params: unknown }): CallRecord {
    this.#seq += 1;
    const record: CallRecord = {
      seq: this.#seq,
      at: this.#settings.now(),
      ...entry,
      params: this.#secrets.redact(entry.params),
      httpStatus: 0,
    };
    this.#calls.push(record);
    return record;
  }

  /** A fault answers instead of the request, or (afterApply) after it ran; 'slow' only delays it. */
  async #withFaults(method: string, record: CallRecord, execute: () => HttpReply): Promise<HttpReply> {
    const fault = this.#faults.take(method);
    if (fault?.kind === 'slow') await this.#sleep(fault.delayMs ?? 0);
    let reply: HttpReply;
    if (fault && !runsFirst(fault)) {
      reply = this.#faultToHttp(fault);
    } else {
      reply = execute();
      if (fault && fault.kind !== 'slow') reply = this.#faultToHttp(fault);
    }
    record.httpStatus = replyStatus(reply);
    if (reply.kind === 'json' && reply.code !== undefined) record.code = reply.code;
    return reply;
  }

  #faultToHttp(fault: Fault): HttpReply {
    const reply = faultReply(fault);
    if (!reply) throw new Error(`Fault ${fault.kind} has no reply`);
    if (reply.kind === 'json') return errorReply(reply.failure);
    return reply;
  }

  #sleep(ms: number): Promise<void> {
    const signal = this.#closing.signal;
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }

  async #oauth(url: URL, body: string, contentType: string | undefined): Promise<HttpReply> {
    const parsed = parseParams(url, body, contentType);
    const params = 'params' in parsed ? parsed.params : {};
    const record = this.#record({ method: OAUTH_METHOD, viaBatch: false, auth: 'none', params });
    return this.#withFaults(OAUTH_METHOD, record, () => {
      const answer = this.#credentials.refresh(params, this.url);
      const code = typeof answer.body.error === 'string' ? answer.body.error : undefined;
      return json(answer.status, answer.body, code);
    });
  }

  async #rest(route: RestRoute, url: URL, body: string, contentType: string | undefined): Promise<HttpReply> {
    const parsed = parseParams(url, body, contentType);
    const params = 'params' in parsed ? parsed.params : {};
    const method = canonicalMethodName(route.method);
    const auth = route.kind === 'webhook' ? 'webhook' : isMissing(params.auth) ? 'none' : 'oauth';
    const record = this.#record({ method, viaBatch: false, auth, params });
    return this.#withFaults(method, record, () => {
      const startMs = this.#settings.now();
      const bare = timeObject(startMs, 0, NO_OPERATING);
      if ('failure' in parsed) return errorReply(parsed.failure, bare);
      if (!this.#bucket.tryTake()) return errorReply(failure('QUERY_LIMIT_EXCEEDED'), bare);
      const identity = this.#authenticate(route, params);
      if (!isIdentity(identity)) return errorReply(identity, bare);
      if (method === 'batch') return this.#batch(identity, auth, params, startMs);
      const entry = findMethod(method);
      if (!entry) return errorReply(failure('ERROR_METHOD_NOT_FOUND'), bare);
      const { outcome, time } = this.#invoke(entry, identity, params, startMs);
      return this.#outcomeReply(outcome, time);
    });
  }

  #outcomeReply(outcome: Outcome, time: B24Time): HttpReply {
    return outcome.ok ? json(200, { result: outcome.result, time }) : errorReply(outcome, time);
  }

  #authenticate(route: RestRoute, params: Record<string, unknown>): Identity | Failure {
    if (route.kind === 'webhook') return this.#credentials.webhook(route.userId, route.code);
    if (isMissing(params.auth)) return failure('NO_AUTH_FOUND');
    return this.#credentials.accessToken(String(params.auth));
  }

  /** Operating time is checked before and counted after each method call, keyed by caller and method. */
  #invoke(
    entry: MethodEntry,
    identity: Identity,
    params: Record<string, unknown>,
    startMs: number,
  ): BatchCommandResult & { time: B24Time } {
    const key = `${identity.key}|${entry.name}`;
    if (this.#operating.isBlocked(key)) {
      return {
        outcome: fail('OPERATION_TIME_LIMIT'),
        time: timeObject(startMs, 0, this.#operating.state(key)),
      };
    }
    const { processingMs } = this.#settings;
    const outcome = entry.run({
      identity,
      params,
      portal: this.#portal,
      successShape: this.#successShape,
      now: startMs,
    });
    this.#operating.add(key, processingMs / 1000);
    return { outcome, time: timeObject(startMs, processingMs, this.#operating.state(key)) };
  }

  #batch(
    identity: Identity,
    auth: CallRecord['auth'],
    params: Record<string, unknown>,
    startMs: number,
  ): HttpReply {
    let processingMs = 0;
    const outcome = runBatch(params, {
      refusesCall: (methods) =>
        methods.some((m) => this.#disallowed.get(canonicalMethodName(m).toLowerCase()) === 'call'),
      run: (batchKey, rawMethod, commandParams) => {
        const method = canonicalMethodName(rawMethod);
        const record = this.#record({ method, viaBatch: true, batchKey, auth, params: commandParams });
        const entry = findMethod(method);
        let result: BatchCommandResult;
        if (method === 'batch' || this.#disallowed.get(method.toLowerCase()) === 'command') {
          result = { outcome: fail('ERROR_BATCH_METHOD_NOT_ALLOWED'), time: undefined };
        } else if (!entry) {
          result = { outcome: fail('ERROR_METHOD_NOT_FOUND'), time: undefined };
        } else {
          result = this.#invoke(entry, identity, commandParams, this.#settings.now());
          processingMs += result.time?.processing === undefined ? 0 : result.time.processing * 1000;
        }
        record.httpStatus = result.outcome.ok ? 200 : result.outcome.status;
        if (!result.outcome.ok) record.code = result.outcome.code;
        return result;
      },
    });
    // The outer batch call is not counted against any operating budget; only its commands are.
    return this.#outcomeReply(
      outcome,
      timeObject(startMs, processingMs, this.#operating.state(`${identity.key}|batch`)),
    );
  }
}

/** Starts a Bitrix24 portal emulator on 127.0.0.1 (a free port unless `port` is given). */
export async function startBitrix24Emulator(options?: EmulatorOptions): Promise<Bitrix24Emulator> {
  const emulator = new EmulatorServer(normaliseOptions(options));
  await emulator.listen();
  return emulator;
}
