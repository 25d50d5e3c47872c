import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { B24Time } from '../bitrix24/types.ts';
import { type FailedEditMessage, sendFailedEdits } from '../edits/failed.ts';
import { messageGroupId, type QueuedEdit } from '../edits/types.ts';
import {
  desiredFields,
  dueAt,
  fateOf,
  type IncomingEdit,
  isDirty,
  type LedgerError,
  type MergeResult,
  type MessageFate,
  type MessageKey,
  type MessageState,
  messageKeyText,
} from '../ledger/model.ts';
import type { LeaseTaken as Lease, Ledger } from '../ledger/store.ts';
import { logger } from '../observability/logger.ts';
import { PortalCircuits } from '../pacing/circuit.ts';
import {
  normaliseReconcileOptions,
  type ReconcileOptions,
  type ResolvedReconcileOptions,
} from './options.ts';
import { PortalPacing, waitForRoom } from './pacing.ts';
import { type CallStats, type Job, type JobResult, type SendContext, sendJobs } from './send.ts';

export const MAX_ATTEMPTS = 'MAX_ATTEMPTS';
export const FAILED_QUEUE_UNAVAILABLE = 'FAILED_QUEUE_UNAVAILABLE';
/** A call of a reconciler that stopped mid-call may still land; the portal waits it out. */
export const CALL_IN_DOUBT = 'CALL_IN_DOUBT';
/** A reconcile of the portal is running elsewhere; it will apply this message. */
export const LEASE_HELD = 'LEASE_HELD';
/** When a portal found leased is looked at again (in case the holder finished before seeing its edits). */
const LEASE_HELD_RECHECK_MS = 2_000;
/** Beyond one call's timeout and margin: the holder's own reads and writes between calls. */
const LEASE_SLACK_MS = 5_000;
/** A lease taken this recently (its call start recorded) covers the next call without a renewal. */
const LEASE_FRESH_MS = 1_000;
/** How long a reconcile waits for a lease held for another reconciler's call, and how often it asks. */
const LEASE_WAIT_MS = 1_000;
const LEASE_POLL_MS = 50;
/** Clocks of containers differ by a few ms: a release this close to a read counts as after it. */
const CLOCK_MARGIN_MS = 50;

/** One run's hold of a portal's lease: taken for a call, given up after it. */
class LeaseHold {
  held = false;
  takenAt = 0;
  #release: (() => Promise<void>) | undefined;
  #released: Promise<void> = Promise.resolve();

  taken(at: number, release: () => Promise<void>): void {
    this.held = true;
    this.takenAt = at;
    this.#release = release;
  }

  /** Gives the lease up (once per taking); resolves when the release is written or failed. */
  release(): Promise<void> {
    if (this.held && this.#release) {
      this.held = false;
      this.#released = this.#release();
    }
    return this.#released;
  }
}

/** What became of a message in one reconcile: a ledger fate, or held back without a call. */
export type ReconcileFate =
  | MessageFate
  | { kind: 'held'; code: string; description: string; delayMs: number };

export interface ReconcilerDeps {
  ledger: Ledger;
  gateway: SendContext['gateway'];
  sqs: SQSClient;
  options: ReconcileOptions;
  pacing?: PortalPacing;
  circuits?: PortalCircuits;
  now?: () => number;
  random?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** This container's lease owner id. Default a random UUID. */
  owner?: string;
}

export interface ReconcileRun {
  /** Messages this caller cares about: sent first, and reported on. */
  hints: readonly MessageKey[];
  /**
   * `fill`: take the portal's lease, fill calls from its dirty set, linger for fuller calls, pace,
   * and send what fails for good to the failed-edits queue (drain, sweep, status refresh).
   * `only`: apply just the hinted messages now, unpaced and without the lease (the API: its caller
   * hears the outcome, so a permanent failure is recorded but not queued).
   */
  mode: 'fill' | 'only';
  remainingMs: () => number;
  signal?: AbortSignal | undefined;
  stats: CallStats;
  /** States just written by this caller's merges: the first round reads them from here, not DynamoDB. */
  known?: readonly MessageState[] | undefined;
  /** When the merges that gave `known` started: without it, `known` is used only if no one else sent since. */
  knownAt?: number | undefined;
}

export interface ReconcileReport {
  /** Fate of each hinted message (by `messageKeyText`) and of every message this run touched. */
  fates: Map<string, ReconcileFate>;
  /** States as last seen, by `messageKeyText`. */
  states: Map<string, MessageState>;
  /** The `time` object of each applied message's answer, when Bitrix24 sent one. */
  times: Map<string, B24Time>;
  /** The run found the portal's lease held by another reconciler and left the work to it. */
  leaseHeld: boolean;
}

/**
 * Brings a portal's messages from applied to desired: picks due dirty messages (hinted ones first,
 * then the oldest of the portal's dirty set), sends each one's whole desired state, up to 50 per
 * `batch` call, and records every outcome in the ledger. The only caller of `sendJobs`.
 */
export class Reconciler {
  readonly options: ResolvedReconcileOptions;
  readonly pacing: PortalPacing;
  readonly circuits: PortalCircuits;
  readonly #deps: ReconcilerDeps;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly #owner: string;

  constructor(deps: ReconcilerDeps) {
    this.#deps = deps;
    this.options = normaliseReconcileOptions(deps.options);
    this.#now = deps.now ?? Date.now;
    this.#random = deps.random ?? Math.random;
    this.#sleep = deps.sleep ?? sleepUnlessAborted;
    this.#owner = deps.owner ?? randomUUID();
    this.pacing =
      deps.pacing ??
      // One lease holder per portal sends at a time, and hands the bucket on with the lease.
      new PortalPacing({ apiShare: this.options.apiRateShare, now: this.#now });
    this.circuits = deps.circuits ?? new PortalCircuits({ now: this.#now });
  }

  get ledger(): Ledger {
    return this.#deps.ledger;
  }

  /** Records edits of one message in the ledger (the one way every path writes desired state). */
  merge(key: MessageKey, edits: readonly IncomingEdit[]): Promise<MergeResult> {
    return this.#deps.ledger.merge(key, edits, this.options.timing);
  }

  async reconcilePortal(portal: string, run: ReconcileRun): Promise<ReconcileReport> {
    return this.#run(portal, run);
  }

  /**
   * The API's way: records the caller's edits of one message and applies its desired state now
   * (`only` mode). The lease is asked for while the edits are merged, and given up while the
   * outcome is recorded, so the ledger adds two request times to the call, not four.
   */
  async mergeAndApply(
    key: MessageKey,
    edits: readonly IncomingEdit[],
    run: Omit<ReconcileRun, 'hints' | 'mode' | 'known'>,
  ): Promise<{ merged: MergeResult; report: ReconcileReport }> {
    const full: ReconcileRun = { ...run, hints: [key], mode: 'only', knownAt: this.#now() };
    const [merged, lease] = await Promise.allSettled([
      this.merge(key, edits),
      this.#acquire(key.portal, full),
    ]);
    if (merged.status === 'rejected') {
      if (lease.status === 'fulfilled' && lease.value.acquired)
        await this.#deps.ledger
          .releaseLease(key.portal, this.#owner, {
            bucketEmptyAt: lease.value.bucketEmptyAt,
            callInDoubtSince: lease.value.callStartedAt,
            circuit: lease.value.circuit,
          })
          .catch(() => undefined);
      throw merged.reason;
    }
    if (lease.status === 'rejected') throw lease.reason;
    const report = await this.#run(key.portal, { ...full, known: [merged.value.state] }, lease.value);
    return { merged: merged.value, report };
  }

  /**
   * Every reconcile holds the portal's lease for each of its calls, the API's too: two senders of
   * one message could land its older state after its newer one. It is taken with the call's start
   * recorded, and given up between calls (while the drain waits for a rate token, the API may
   * send), handing the rate bucket and the circuit to whoever takes it next.
   */
  async #run(portal: string, run: ReconcileRun, first?: Lease): Promise<ReconcileReport> {
    const report: ReconcileReport = {
      fates: new Map(),
      states: new Map(),
      times: new Map(),
      leaseHeld: false,
    };
    const hold = new LeaseHold();
    const lease = await this.#take(portal, run, report, hold, first);
    if (!lease) return report;
    // States read before the lease was ours are stale if another holder sent since.
    const known = this.#freshSince(lease, run.knownAt ?? Number.NEGATIVE_INFINITY) ? run.known : undefined;
    try {
      await this.#loop(portal, { ...run, known }, report, hold);
    } finally {
      await hold.release();
    }
    return report;
  }

  #acquire(portal: string, run: ReconcileRun): Promise<Lease> {
    return this.#deps.ledger.acquireLease(portal, this.#owner, this.#leaseUntil(run), this.#now());
  }

  /**
   * Takes the portal's lease for a call, waiting a moment while another reconciler holds it for
   * one of its own calls. False when it stayed held, or when a dead holder's call may still land:
   * then the hinted messages not yet settled in this run say why.
   */
  async #take(
    portal: string,
    run: ReconcileRun,
    report: ReconcileReport,
    hold: LeaseHold,
    first?: Lease,
  ): Promise<Lease | undefined> {
    const { ledger } = this.#deps;
    const o = this.options;
    const waitUntil =
      this.#now() +
      Math.min(LEASE_WAIT_MS, Math.max(0, run.remainingMs() - o.callTimeoutMs - o.deadlineMarginMs));
    let lease = first ?? (await this.#acquire(portal, run));
    while (!lease.acquired && this.#now() + LEASE_POLL_MS <= waitUntil && !run.signal?.aborted) {
      await this.#sleep(LEASE_POLL_MS, run.signal);
      lease = await this.#acquire(portal, run);
    }
    const unsettled = run.hints.filter((key) => report.fates.get(messageKeyText(key))?.kind !== 'applied');
    if (!lease.acquired) {
      report.leaseHeld = true;
      for (const key of unsettled) {
        report.fates.set(messageKeyText(key), {
          kind: 'held',
          code: LEASE_HELD,
          description: 'Another reconciler holds the portal and applies its dirty messages',
          delayMs: Math.max(LEASE_HELD_RECHECK_MS, o.handBackDelayMs),
        });
      }
      return undefined;
    }
    this.pacing.takeOver(portal, lease.bucketEmptyAt);
    this.circuits.adopt(portal, lease.circuit);
    // The previous holder died (or lost the lease) with a call in flight: which messages it carried
    // is unknown, so none is sent until that call can no longer land.
    const settledAt = (lease.callStartedAt ?? 0) + o.timing.ambiguousSettleMs;
    if (lease.callStartedAt !== undefined && settledAt > this.#now()) {
      const delayMs = settledAt - this.#now();
      for (const key of unsettled) {
        report.fates.set(messageKeyText(key), {
          kind: 'held',
          code: CALL_IN_DOUBT,
          description: 'A reconciler that stopped mid-call may still land an older state; waiting it out',
          delayMs,
        });
      }
      await ledger
        .releaseLease(portal, this.#owner, {
          bucketEmptyAt: lease.bucketEmptyAt,
          callInDoubtSince: lease.callStartedAt,
          circuit: lease.circuit,
        })
        .catch(() => undefined);
      return undefined;
    }
    hold.taken(this.#now(), () =>
      ledger
        .releaseLease(portal, this.#owner, {
          bucketEmptyAt: this.pacing.handOver(portal),
          circuit: this.circuits.state(portal) ?? null,
        })
        .catch(() => undefined),
    );
    return lease;
  }

  /**
   * Whether states read at `readAt` may still be sent under `lease`: no other holder can have sent
   * a newer state after they were read (its last release came before, with a margin for clocks).
   */
  #freshSince(lease: Lease, readAt: number): boolean {
    if (lease.fromExpiredHolder) return false;
    if (lease.releasedBy === undefined || lease.releasedBy === this.#owner) return true;
    return (lease.releasedAt ?? Number.POSITIVE_INFINITY) + CLOCK_MARGIN_MS < readAt;
  }

  async #loop(portal: string, run: ReconcileRun, report: ReconcileReport, hold: LeaseHold): Promise<void> {
    const fill = run.mode === 'fill';
    const { ledger } = this.#deps;
    const { maxCommandsPerCall, timing } = this.options;
    const hinted = new Set(run.hints.map(messageKeyText));
    // A message is sent once per run (per version): progress is certain, and a loop ends.
    const sent = new Map<string, number>();
    const linger = fill && this.options.batchLingerMs > 0;
    let lingered = !linger;
    let known = new Map((run.known ?? []).map((state) => [messageKeyText(state), state]));
    for (;;) {
      const readAt = this.#now();
      const candidates: MessageKey[] = run.hints.filter((key) => !sent.has(messageKeyText(key)));
      if (fill) candidates.push(...(await ledger.dirtyKeys(portal, maxCommandsPerCall * 2, this.#now())));
      const unknown = candidates.filter((key) => !known.has(messageKeyText(key)));
      const states = unknown.length > 0 ? await ledger.getMany(unknown) : new Map<string, MessageState>();
      for (const key of candidates) {
        const state = known.get(messageKeyText(key));
        if (state) states.set(messageKeyText(key), state);
      }
      known = new Map();
      const now = this.#now();
      const due: MessageState[] = [];
      for (const state of states.values()) {
        const text = messageKeyText(state);
        report.states.set(text, state);
        if (isDirty(state) && sent.get(text) !== state.version && this.#dueAt(state, run) <= now)
          due.push(state);
        else if (hinted.has(text) || !isDirty(state)) report.fates.set(text, fateOf(state, timing));
      }
      if (due.length === 0) return;
      if (due.length < maxCommandsPerCall && !lingered) {
        // Records of a FIFO queue arrive one message group at a time: wait a moment for fuller calls.
        lingered = true;
        await this.#sleep(this.options.batchLingerMs, run.signal);
        continue;
      }
      due.sort((a, b) => rank(a, hinted) - rank(b, hinted) || dueAt(a, timing) - dueAt(b, timing));
      let jobs: Job[] = due.slice(0, maxCommandsPerCall).map(jobOf);
      // Each call that would not be full may wait once for more.
      lingered = !linger;
      if (!hold.held) {
        // The rate token is waited for without the lease, so the API can send meanwhile.
        if (fill) await this.#sleep(await this.#roomWait(portal, run), run.signal);
        const lease = await this.#take(portal, run, report, hold);
        if (!lease) return;
        if (!this.#freshSince(lease, readAt)) {
          // Another holder sent since these states were read: send what is desired now.
          const again = await ledger.getMany(jobs.map((job) => job.key));
          const now = this.#now();
          jobs = [...again.values()]
            .filter((state) => isDirty(state) && this.#dueAt(state, run) <= now)
            .map((state) => {
              states.set(messageKeyText(state), state);
              return jobOf(state);
            });
        }
      } else if (this.#now() - hold.takenAt > LEASE_FRESH_MS) {
        // Renewed with the call's start, so a holder that dies blocks the portal for one call's time only.
        if (!(await ledger.acquireLease(portal, this.#owner, this.#leaseUntil(run), this.#now())).acquired)
          return;
      }
      for (const job of jobs) sent.set(messageKeyText(job.key), job.version);
      if (jobs.length === 0) continue;
      const results = await sendJobs(portal, jobs, this.#sendContext(run, fill));
      // Held back (circuit, pacer, deadline): the rest waits too. Only its own messages: done.
      const heldBack = jobs.some((job) => results.get(job)?.kind === 'held');
      const last = heldBack || (!fill && run.hints.every((key) => sent.has(messageKeyText(key))));
      // The call has ended: the lease is given up while its outcome is recorded (a reconciler
      // taking over meanwhile sends at most the same desired state once more, and the apply marks
      // of calls that follow one another count in the order the calls started).
      const released = hold.release();
      await this.#record(
        jobs.map((job) => ({
          job,
          state: states.get(messageKeyText(job.key)) as MessageState,
          result: results.get(job) as JobResult,
        })),
        run,
        report,
      );
      await released;
      if (last) return;
    }
  }

  /** How long until the drain's next call fits the shared bucket (0 when it is unknown or too far). */
  async #roomWait(portal: string, run: ReconcileRun): Promise<number> {
    try {
      const secret = await this.#deps.gateway.secret(portal);
      const pace = this.pacing.pace(portal, secret.limits);
      const wait = waitForRoom(pace, pace.backgroundCap);
      const spare = run.remainingMs() - this.options.callTimeoutMs - this.options.deadlineMarginMs;
      // Too far for this invocation: the gate holds the work back with the reason.
      return wait <= spare ? wait : 0;
    } catch {
      return 0;
    }
  }

  /** How long a lease is taken for: one call and its margins, never past the invocation's deadline. */
  #leaseUntil(run: ReconcileRun): number {
    const callMs = this.options.callTimeoutMs + this.options.deadlineMarginMs + LEASE_SLACK_MS;
    return this.#now() + Math.max(1_000, Math.min(run.remainingMs(), callMs + this.options.batchLingerMs));
  }

  /**
   * When a message may be sent in this run. An API call (`only`) spends its own request on the
   * caller's edit: the message's backoff does not hold it, but its cadence and settle window do.
   */
  #dueAt(state: MessageState, run: ReconcileRun): number {
    const timing = this.options.timing;
    return run.mode === 'only' ? dueAt({ ...state, retryAt: undefined }, timing) : dueAt(state, timing);
  }

  #sendContext(run: ReconcileRun, fill: boolean): SendContext {
    const o = this.options;
    return {
      gateway: this.#deps.gateway,
      pacing: this.pacing,
      circuits: this.circuits,
      paced: fill,
      remainingMs: run.remainingMs,
      callTimeoutMs: o.callTimeoutMs,
      deadlineMarginMs: o.deadlineMarginMs,
      handBackDelayMs: o.handBackDelayMs,
      serverBackoff: o.serverBackoff,
      signal: run.signal,
      now: this.#now,
      random: this.#random,
      sleep: this.#sleep,
      stats: run.stats,
    };
  }

  /** Writes each job's outcome to the ledger; what failed for good goes to the failed-edits queue first. */
  async #record(
    items: Array<{ job: Job; state: MessageState; result: JobResult }>,
    run: ReconcileRun,
    report: ReconcileReport,
  ): Promise<void> {
    const { ledger } = this.#deps;
    const o = this.options;
    const now = this.#now();
    const failures: Array<{
      job: Job;
      state: MessageState;
      error: LedgerError;
      startedAt?: number | undefined;
    }> = [];
    const settle = (state: MessageState, changes: Partial<MessageState>) => {
      const next = { ...state, ...changes };
      const text = messageKeyText(state);
      report.states.set(text, next);
      report.fates.set(text, fateOf(next, o.timing));
    };
    await Promise.all(
      items.map(async ({ job, state, result }) => {
        const text = messageKeyText(job.key);
        if (result.kind === 'applied') {
          const mark = await ledger.markApplied(job.key, job.version, result.startedAt, o.timing);
          if (result.time) report.times.set(text, result.time);
          const applied = { appliedVersion: job.version, lastCallAt: result.startedAt, attempts: 0 };
          if (mark === 'clean')
            settle(state, { ...applied, retryAt: undefined, inDoubtSince: undefined, lastError: undefined });
          // Newer edits came, or a newer apply may have landed first: the message stays dirty.
          else settle({ ...state, version: Math.max(state.version, job.version + 1) }, applied);
          return;
        }
        if (result.kind === 'held') {
          report.states.set(text, state);
          report.fates.set(text, {
            kind: 'held',
            code: result.failure.code,
            description: result.failure.description,
            delayMs: Math.min(result.delayMs, o.maxDeferralMs),
          });
          return;
        }
        const { code, description, callerStatus } = result.failure;
        const error: LedgerError = { code, description, at: now, ...(callerStatus ? { callerStatus } : {}) };
        if (result.kind === 'retry' && job.attempts + 1 < o.maxAttempts) {
          const retry = {
            error,
            retryAt: now + Math.min(result.delayMs, o.maxDeferralMs),
            startedAt: result.startedAt,
            inDoubt: result.inDoubt,
          };
          const next: MessageState = {
            ...state,
            lastError: error,
            retryAt: retry.retryAt,
            attempts: job.attempts + 1,
            lastCallAt: result.startedAt,
            ...(result.inDoubt ? { inDoubtSince: result.startedAt } : {}),
          };
          await ledger.markRetry(job.key, { ...retry, dueAt: dueAt(next, o.timing) });
          settle(next, {});
          return;
        }
        const final =
          result.kind === 'retry'
            ? {
                code: MAX_ATTEMPTS,
                description: `Gave up after ${job.attempts + 1} attempts; the last one ended with ${error.code}: ${error.description}`,
                at: now,
              }
            : error;
        failures.push({ job, state, error: final, startedAt: result.startedAt });
      }),
    );
    if (failures.length === 0) return;
    const refused = new Set<number>();
    if (run.mode === 'fill') {
      const sent = await sendFailedEdits(
        failures.map(({ state, error }) => failedMessage(state, error)),
        { queueUrl: o.failedEditsQueueUrl, client: this.#deps.sqs },
      );
      for (const { index } of sent.refused) refused.add(index);
    }
    await Promise.all(
      failures.map(async ({ job, state, error, startedAt }, index) => {
        if (refused.has(index)) {
          const retryAt = now + o.handBackDelayMs;
          const kept: LedgerError = {
            code: FAILED_QUEUE_UNAVAILABLE,
            description: `The failed-edits queue did not accept the edit (it failed with ${error.code}: ${error.description})`,
            at: now,
          };
          const next: MessageState = { ...state, lastError: kept, retryAt };
          await ledger.markRetry(job.key, {
            error: kept,
            retryAt,
            dueAt: dueAt(next, o.timing),
            inDoubt: false,
          });
          settle(next, {});
          return;
        }
        const marked = await ledger.markFailed(job.key, job.version, error, startedAt);
        logger.warn('Message failed; its desired state is kept with the reason', {
          ...job.key,
          version: job.version,
          code: error.code,
          queued: run.mode === 'fill',
        });
        settle(state, marked ? { failedVersion: job.version, lastError: error } : { lastError: error });
      }),
    );
  }
}

function jobOf(state: MessageState): Job {
  return {
    key: { portal: state.portal, botId: state.botId, messageId: state.messageId },
    version: state.version,
    fields: desiredFields(state),
    attempts: state.attempts,
  };
}

function rank(state: MessageState, hinted: ReadonlySet<string>): number {
  return hinted.has(messageKeyText(state)) ? 0 : 1;
}

/** The failed-edits queue's message for a message whose version failed for good. */
export function failedMessage(state: MessageState, error: LedgerError): FailedEditMessage {
  const stamps = Object.values(state.desired).filter((field) => field !== undefined);
  const last = stamps.reduce((a, b) => (b.at > a.at ? b : a), stamps[0] ?? { at: 0, editId: 'unknown' });
  const first = Math.min(...stamps.map((field) => field.at));
  const editIds = state.pendingEditIds.length > 0 ? state.pendingEditIds : [last.editId];
  const body: QueuedEdit = {
    portal: state.portal,
    botId: state.botId,
    messageId: state.messageId,
    fields: desiredFields(state),
    // Its own id: replayed, it is a new request to try again, ordered by the time its edits were accepted.
    editId: `failed-${state.version}-${randomUUID()}`,
    requestedAt: new Date(last.at).toISOString(),
  };
  return {
    body: JSON.stringify(body),
    groupId: messageGroupId(state),
    // Per message and version: a replay that fails again makes a new version, so it is kept again.
    deduplicationId: `failed-${createHash('sha256')
      .update(`${messageKeyText(state)}#${state.version}`)
      .digest('hex')}`,
    errorCode: error.code,
    errorDescription: error.description,
    attempts: state.attempts + 1,
    firstRequestedAt: new Date(Number.isFinite(first) ? first : 0).toISOString(),
    editIds,
  };
}

async function sleepUnlessAborted(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return;
  await delay(ms, undefined, signal ? { signal } : {}).catch(() => undefined);
}
