import { type BatchCommandResult, runBatch } from './batch.ts';
import { Credentials, type Identity } from './credentials.ts';
import { Faults, faultReply, OAUTH_METHOD, runsFirst } from './faults.ts';
import { errorReply, type HttpReply, json, parseParams, replyStatus } from './http.ts';
import { LeakyBucket } from './leaky-bucket.ts';
import { isMissing } from './message-fields.ts';
import { canonicalMethodName, findMethod, type MethodEntry } from './methods.ts';
import { idleOperating, OperatingTime } from './operating-time.ts';
import type { Settings } from './options.ts';
import { type Failure, fail, failure, type Outcome } from './outcome.ts';
import { Portal } from './portal.ts';
import { SecretRegistry } from './redaction.ts';
import { type B24Time, timeObject } from './time-object.ts';
import type { CallRecord, Fault, SuccessShape } from './types.ts';

export type RestRoute =
  | { kind: 'webhook'; userId: number; code: string; method: string }
  | { kind: 'oauth'; method: string };

export interface RawRequest {
  url: URL;
  body: string;
  contentType: string | undefined;
}

const WEBHOOK_PATH = /^\/rest\/(\d+)\/([^/]+)\/([^/]+)\/?$/;
const OAUTH_PATH = /^\/rest\/([^/]+)\/?$/;

export function restRoute(path: string): RestRoute | undefined {
  const webhook = WEBHOOK_PATH.exec(path);
  if (webhook) {
    const [, userId = '', code = '', method = ''] = webhook;
    return { kind: 'webhook', userId: Number(userId), code: decodeURIComponent(code), method };
  }
  const oauth = OAUTH_PATH.exec(path);
  return oauth ? { kind: 'oauth', method: oauth[1] ?? '' } : undefined;
}

function isIdentity(value: Identity | Failure): value is Identity {
  return 'kind' in value;
}

/**
 * The portal behind the HTTP server: state plus the request pipeline
 * (record → fault → bucket → auth → operating time → method), free of sockets.
 */
export class Engine {
  readonly settings: Settings;
  readonly secrets = new SecretRegistry();
  readonly credentials: Credentials;
  readonly portal: Portal;
  readonly bucket: LeakyBucket;
  readonly operating: OperatingTime;
  readonly faults: Faults;
  readonly disallowed = new Map<string, 'command' | 'call'>();
  calls: CallRecord[] = [];
  successShape: SuccessShape;
  readonly #sleep: (ms: number) => Promise<void>;
  #seq = 0;

  constructor(settings: Settings, sleep: (ms: number) => Promise<void>) {
    this.settings = settings;
    this.successShape = settings.successShape;
    this.credentials = new Credentials(settings.now, settings.accessTokenTtlSeconds, this.secrets);
    this.portal = new Portal(settings.now, this.secrets, settings.inferred.editWindowSeconds);
    this.bucket = new LeakyBucket(settings.limits, settings.now);
    this.operating = new OperatingTime(
      settings.operatingLimitSeconds,
      settings.now,
      settings.operatingBasketMs,
    );
    this.faults = new Faults(settings.random);
    this.#sleep = sleep;
  }

  async oauth(request: RawRequest, portalUrl: string): Promise<HttpReply> {
    const parsed = parseParams(request.url, request.body, request.contentType);
    const params = 'params' in parsed ? parsed.params : {};
    const record = this.#record({ method: OAUTH_METHOD, viaBatch: false, auth: 'none', params });
    return this.#withFaults(OAUTH_METHOD, record, () => {
      const answer = this.credentials.refresh(params, portalUrl);
      const code = typeof answer.body.error === 'string' ? answer.body.error : undefined;
      return json(answer.status, answer.body, code);
    });
  }

  async rest(route: RestRoute, request: RawRequest): Promise<HttpReply> {
    const parsed = parseParams(request.url, request.body, request.contentType);
    const params = 'params' in parsed ? parsed.params : {};
    const method = canonicalMethodName(route.method);
    const auth = route.kind === 'webhook' ? 'webhook' : isMissing(params.auth) ? 'none' : 'oauth';
    const record = this.#record({ method, viaBatch: false, auth, params });
    return this.#withFaults(method, record, () => {
      const startMs = this.settings.now();
      const bare = timeObject(startMs, 0, this.#idle(startMs));
      if ('failure' in parsed) return errorReply(parsed.failure, bare);
      const taken = this.bucket.tryTake();
      record.bucketLevel = this.bucket.level();
      if (!taken) return errorReply(failure('QUERY_LIMIT_EXCEEDED'), bare);
      const identity = this.#authenticate(route, params);
      if (!isIdentity(identity)) return errorReply(identity, bare);
      if (method === 'batch') return this.#batch(identity, auth, params, startMs);
      const entry = findMethod(method);
      if (!entry) return errorReply(failure('ERROR_METHOD_NOT_FOUND'), bare);
      const { outcome, time } = this.#invoke(entry, identity, params, startMs);
      return outcomeReply(outcome, time);
    });
  }

  #record(entry: Omit<CallRecord, 'seq' | 'at' | 'httpStatus'>): CallRecord {
    this.#seq += 1;
    const record: CallRecord = {
      seq: this.#seq,
      at: this.settings.now(),
      ...entry,
      params: this.secrets.redact(entry.params),
      httpStatus: 0,
    };
    this.calls.push(record);
    return record;
  }

  /** A fault answers instead of the request, or (afterApply) after it ran; 'slow' only delays it. */
  async #withFaults(method: string, record: CallRecord, execute: () => HttpReply): Promise<HttpReply> {
    const fault = this.faults.take(method);
    if (fault?.kind === 'slow') await this.#sleep(fault.delayMs ?? 0);
    let reply: HttpReply;
    if (fault && !runsFirst(fault)) {
      reply = faultToHttp(fault);
    } else {
      reply = execute();
      if (fault && fault.kind !== 'slow') reply = faultToHttp(fault);
    }
    record.httpStatus = replyStatus(reply);
    if (reply.kind === 'json' && reply.code !== undefined) record.code = reply.code;
    return reply;
  }

  #authenticate(route: RestRoute, params: Record<string, unknown>): Identity | Failure {
    if (route.kind === 'webhook') return this.credentials.webhook(route.userId, route.code);
    if (isMissing(params.auth)) return failure('NO_AUTH_FOUND');
    return this.credentials.accessToken(String(params.auth));
  }

  #idle(atMs: number): ReturnType<typeof idleOperating> {
    return idleOperating(atMs, this.settings.operatingBasketMs);
  }

  /**
   * Operating time is checked before and counted after each method call, keyed by caller and
   * method; `billed: false` (a command of a batch billed as a whole) runs the method alone.
   */
  #invoke(
    entry: MethodEntry,
    identity: Identity,
    params: Record<string, unknown>,
    startMs: number,
    billed = true,
  ): { outcome: Outcome; time: B24Time } {
    const key = `${identity.key}|${entry.name}`;
    if (billed && this.operating.isBlocked(key)) {
      return {
        outcome: fail('OPERATION_TIME_LIMIT'),
        time: timeObject(startMs, 0, this.operating.state(key)),
      };
    }
    const { processingMs } = this.settings;
    const { successShape, portal } = this;
    const ctx = { identity, params, portal, successShape, now: startMs, inferred: this.settings.inferred };
    const outcome = entry.run(ctx);
    if (!billed) return { outcome, time: timeObject(startMs, processingMs, this.#idle(startMs)) };
    this.operating.add(key, processingMs / 1000);
    return { outcome, time: timeObject(startMs, processingMs, this.operating.state(key)) };
  }

  #batch(
    identity: Identity,
    auth: CallRecord['auth'],
    params: Record<string, unknown>,
    startMs: number,
  ): HttpReply {
    // Billed per batch: the call is checked and billed as the method `batch`, its commands not.
    const perBatch = this.settings.operatingBilling === 'per-batch';
    const batchKey = `${identity.key}|batch`;
    if (perBatch && this.operating.isBlocked(batchKey)) {
      return errorReply(
        failure('OPERATION_TIME_LIMIT'),
        timeObject(startMs, 0, this.operating.state(batchKey)),
      );
    }
    let processingMs = 0;
    const commandTimes: B24Time[] = [];
    const modeOf = (method: string) => this.disallowed.get(canonicalMethodName(method).toLowerCase());
    const outcome = runBatch(params, {
      refusesCall: (methods) => methods.some((m) => modeOf(m) === 'call'),
      run: (commandKey, rawMethod, commandParams) => {
        const method = canonicalMethodName(rawMethod);
        const record = this.#record({
          method,
          viaBatch: true,
          batchKey: commandKey,
          auth,
          params: commandParams,
        });
        const entry = findMethod(method);
        let result: BatchCommandResult;
        if (method === 'batch' || modeOf(method) === 'command') {
          result = { outcome: fail('ERROR_BATCH_METHOD_NOT_ALLOWED'), time: undefined };
        } else if (!entry) {
          result = { outcome: fail('ERROR_METHOD_NOT_FOUND'), time: undefined };
        } else {
          result = this.#invoke(entry, identity, commandParams, this.settings.now(), !perBatch);
          processingMs += (result.time?.processing ?? 0) * 1000;
          if (result.time) commandTimes.push(result.time);
        }
        record.httpStatus = result.outcome.ok ? 200 : result.outcome.status;
        if (!result.outcome.ok) record.code = result.outcome.code;
        return result;
      },
    });
    if (!perBatch) {
      // Billed per method: the outer call is not counted against any budget; only its commands are.
      return outcomeReply(outcome, timeObject(startMs, processingMs, this.#idle(startMs)));
    }
    this.operating.add(batchKey, processingMs / 1000);
    const state = this.operating.state(batchKey);
    // Every command's `result_time` carries the batch's budget (objects shared with the answer).
    for (const time of commandTimes)
      Object.assign(time, { operating: state.operating, operating_reset_at: state.resetAt });
    return outcomeReply(outcome, timeObject(startMs, processingMs, state));
  }
}

function outcomeReply(outcome: Outcome, time: B24Time): HttpReply {
  return outcome.ok ? json(200, { result: outcome.result, time }) : errorReply(outcome, time);
}

function faultToHttp(fault: Fault): HttpReply {
  const reply = faultReply(fault);
  if (!reply) throw new Error(`Fault ${fault.kind} has no reply`);
  return reply.kind === 'json' ? errorReply(reply.failure) : reply;
}
