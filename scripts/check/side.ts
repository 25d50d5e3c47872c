// One of the two portals the check runs its sequence on: the user's, or the emulator in this process.
// Calls go through the project's Bitrix24 client, and a batch is encoded by the service's own code.
import { setTimeout as sleep } from 'node:timers/promises';
import { buildBatchCmd } from '../../lib/bitrix24/batch.ts';
import type { Bitrix24Client } from '../../lib/bitrix24/client.ts';
import { isBitrix24Error } from '../../lib/bitrix24/errors.ts';
import type { CallOutcome, PortalAuth } from '../../lib/bitrix24/types.ts';
import { isRecord } from '../../lib/is-record.ts';
import type { LeakyBucket } from '../../lib/pacing/leaky-bucket.ts';
import { type Answer, errorAnswer, okAnswer } from './answers.ts';
import { type MessageName, MessageNotSent, type Request, type Step, type StepContext } from './steps.ts';

/** A call refused with QUERY_LIMIT_EXCEEDED ran nowhere: sent again, at most this many times in all. */
const RATE_LIMITED_ATTEMPTS = 3;

export interface CallerOptions {
  client: Bitrix24Client;
  auth: PortalAuth;
  /** Paces the calls to the portal's rate limit; the emulator in this process has none. */
  bucket?: LeakyBucket | undefined;
}

/** Calls one portal through the project's client with its webhook, paced when given a bucket. */
export class Caller {
  readonly client: Bitrix24Client;
  readonly auth: PortalAuth;
  readonly #bucket: LeakyBucket | undefined;

  constructor(options: CallerOptions) {
    this.client = options.client;
    this.auth = options.auth;
    this.#bucket = options.bucket;
  }

  /** Throws what the client throws, after sending again a call the portal's rate limit refused. */
  async call<T = unknown>(
    method: string,
    params: Record<string, unknown>,
    signal?: AbortSignal,
  ): Promise<CallOutcome<T>> {
    for (let attempt = 1; ; attempt += 1) {
      if (this.#bucket) await sleep(this.#bucket.reserve());
      try {
        return await this.client.call<T>(method, params, { auth: this.auth, signal });
      } catch (error) {
        const limited = isBitrix24Error(error) && error.code === 'QUERY_LIMIT_EXCEEDED';
        if (!limited || !this.#bucket || attempt >= RATE_LIMITED_ATTEMPTS) throw error;
        this.#bucket.penalise();
      }
    }
  }
}

/** One side of the comparison: a portal, the check's bot on it, and the messages the sequence sent. */
export class Side {
  readonly caller: Caller;
  readonly bot: { id: number; token: string };
  readonly dialogId: string;
  /** Every message the sequence sent here, in order: what the cleanup deletes. */
  readonly sent: number[] = [];
  readonly #messages = new Map<MessageName, number>();

  constructor(caller: Caller, bot: { id: number; token: string }, dialogId: string) {
    this.caller = caller;
    this.bot = bot;
    this.dialogId = dialogId;
  }

  /** Runs one step here and says what came back; a send's message id is kept under its name. */
  async run(step: Step, signal?: AbortSignal): Promise<Answer> {
    let request: Request;
    try {
      request = step.request(this.#context());
    } catch (error) {
      if (error instanceof MessageNotSent) return { kind: 'skipped', reason: error.message };
      throw error;
    }
    try {
      const outcome =
        request.kind === 'batch'
          ? await this.caller.call('batch', { halt: 0, cmd: buildBatchCmd(request.commands) }, signal)
          : await this.caller.call(request.method, request.params, signal);
      if (step.names !== undefined) this.#remember(step.names, outcome.result);
      return okAnswer(outcome);
    } catch (error) {
      return errorAnswer(error);
    }
  }

  #remember(name: MessageName, result: unknown): void {
    const id = isRecord(result) ? result.id : undefined;
    if (typeof id !== 'number') return;
    this.#messages.set(name, id);
    this.sent.push(id);
  }

  #context(): StepContext {
    return {
      botId: this.bot.id,
      botToken: this.bot.token,
      dialogId: this.dialogId,
      message: (name) => {
        const id = this.#messages.get(name);
        if (id === undefined) throw new MessageNotSent(name);
        return id;
      },
    };
  }
}
