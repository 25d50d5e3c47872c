import { createHash, randomUUID } from 'node:crypto';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { B24Time } from '../bitrix24/types.ts';
import { type Clock, systemClock } from '../clock.ts';
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
import { PortalPacing } from './pacing.ts';
import {
  type CallStats,
  type Job,
  type JobResult,
  LeaseLostError,
  type SendContext,
  sendJobs,
} from './send.ts';

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
/** Clocks of containers differ by a few ms: a release this close to a read counts as after it. */
const CLOCK_MARGIN_MS = 50;
/** How long the API waits for the holder of its portal to apply its edit, and how often it looks. */
const HOLDER_WAIT_MS = 3_000;
const HOLDER_POLL_MS = 100;
/** How often that wait tries to take the lease itself (the holder may be another API call). */
const HOLDER_LEASE_RETRY_MS = 250;
/**
 * A lease is taken or renewed with a promise that its calls start within this many ms (recorded on
 * the portal item); a call later than that renews it first.
 */
const CALLS_START_WITHIN_MS = 1_000;

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
  /** Reads the time and waits (rate tokens, the linger, the holder wait). Default the system clock. */
  clock?: Clock;
  random?: () => number;
  /** This container's id; each run's lease owner is this id and the run's number. Default a random UUID. */
  owner?: string;
}

/**
 * One run's hold on a portal's lease: who holds it (the run, not the container: two runs of one
 * container never share it), until when, and the latest start its calls were promised.
 */
interface Hold {
  owner: string;
  until: number;
  startBy: number;
  /** The API's run: messages merged ahead (edits other API callers wait for), read while the lease was asked for. */
  ahead?: Promise<readonly MessageKey[]> | undefined;
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
  /** When the merges that gave `known` started: `known` is read again if another holder sent since. */
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
  #runs = 0;

  constructor(deps: ReconcilerDeps) {
    this.#deps = deps;
    this.options = normaliseReconcileOptions(deps.options);
    const clock = deps.clock ?? systemClock;
    this.#now = () => clock.now();
    this.#random = deps.random ?? Math.random;
    this.#sleep = (ms, signal) => clock.sleep(ms, signal);
    this.#owner = deps.owner ?? randomUUID();
    this.pacing =
      deps.pacing ??
      // One lease holder per portal sends at a time, and hands the bucket on with the lease.
      new PortalPacing({
        apiShare: this.options.apiRateShare,
        operating: this.options.operatingBudget,
        now: this.#now,
      });
    this.circuits = deps.circuits ?? new PortalCircuits({ now: this.#now });
  }

  get ledger(): Ledger {
    return this.#deps.ledger;
  }

  /** Records edits of one message in the ledger (the one way every path writes desired state). */
  merge(
    key: MessageKey,
    edits: readonly IncomingEdit[],
    options: { ahead?: boolean } = {},
  ): Promise<MergeResult> {
    return this.#deps.ledger.merge(key, edits, this.options.timing, options);
  }

  async reconcilePortal(portal: string, run: ReconcileRun): Promise<ReconcileReport> {
    // Every reconcile holds the portal's lease, the API's too: two senders of one message could
    // land its older state after its newer one. The lease is taken with a call's start recorded
    // (the API sends at once); a clean release clears it.
    const hold = this.#hold(run);
    const lease = await this.#acquire(portal, hold);
    return this.#holding(portal, run, lease, hold);
  }

  /**
   * The API's way: records the caller's edits of one message and applies its desired state now
   * (`only` mode). The lease is taken while the edits are merged, and given up while the outcome is
   * recorded, so the ledger adds two request times to the call, not four.
   */
  async mergeAndApply(
    key: MessageKey,
    edits: readonly IncomingEdit[],
    run: Omit<ReconcileRun, 'hints' | 'mode' | 'known'>,
  ): Promise<{ merged: MergeResult; report: ReconcileReport }> {
    const full: ReconcileRun = { ...run, hints: [key], mode: 'only', knownAt: this.#now() };
    const hold = this.#hold(full);
    hold.ahead = this.#deps.ledger.aheadKeys(key.portal, this.options.maxCommandsPerCall).catch(() => []);
    const [merged, lease] = await Promise.allSettled([
      // Ahead of the portal's backlog: if another reconciler holds the portal, its next call carries it.
      this.merge(key, edits, { ahead: true }),
      this.#acquire(key.portal, hold),
    ]);
    if (merged.status === 'rejected') {
      if (lease.status === 'fulfilled' && lease.value.acquired)
        await this.#giveBack(key.portal, hold.owner, lease.value);
      throw merged.reason;
    }
    if (lease.status === 'rejected') throw lease.reason;
    const report = await this.#holding(
      key.portal,
      { ...full, known: [merged.value.state] },
      lease.value,
      hold,
    );
    if (!report.leaseHeld) return { merged: merged.value, report };
    return {
      merged: merged.value,
      report: (await this.#awaitHolder(key, merged.value.state, full, hold.owner)) ?? report,
    };
  }

  /**
   * The API's edit while another reconciler holds its portal (a drain working through a backlog):
   * the merge put it at the head of the portal's dirty set, so the holder's next call carries it.
   * Waits a moment for that outcome, and takes the lease itself if the holder gives it up first.
   * Undefined when neither happened in time: the caller hears 202 and the holder applies it.
   */
  async #awaitHolder(
    key: MessageKey,
    merged: MessageState,
    run: ReconcileRun,
    owner: string,
  ): Promise<ReconcileReport | undefined> {
    const { ledger } = this.#deps;
    const spare = run.remainingMs() - this.options.callTimeoutMs - this.options.deadlineMarginMs;
    const until = this.#now() + Math.min(HOLDER_WAIT_MS, spare);
    const text = messageKeyText(key);
    let leaseTryAt = this.#now() + HOLDER_LEASE_RETRY_MS;
    while (this.#now() + HOLDER_POLL_MS < until && !run.signal?.aborted) {
      await this.#sleep(HOLDER_POLL_MS, run.signal);
      const readAt = this.#now();
      const state = await ledger.get(key);
      const done = state.appliedVersion >= merged.version || (state.failedVersion ?? 0) >= merged.version;
      if (done) {
        const fate: MessageFate =
          state.appliedVersion >= merged.version
            ? { kind: 'applied', version: merged.version }
            : fateOf({ ...state, version: state.failedVersion ?? state.version }, this.options.timing);
        return {
          fates: new Map([[text, fate]]),
          states: new Map([[text, state]]),
          times: new Map(),
          leaseHeld: true,
        };
      }
      if (this.#now() < leaseTryAt) continue;
      leaseTryAt = this.#now() + HOLDER_LEASE_RETRY_MS;
      const hold = this.#hold(run, owner);
      const lease = await this.#acquire(key.portal, hold);
      if (lease.acquired)
        return this.#holding(key.portal, { ...run, known: [state], knownAt: readAt }, lease, hold);
    }
    return undefined;
  }

  /** Gives a lease up unused, leaving the portal item as the previous holder left it. */
  async #giveBack(portal: string, owner: string, lease: Lease): Promise<void> {
    await this.#deps.ledger
      .releaseLease(portal, owner, {
        bucketEmptyAt: lease.bucketEmptyAt,
        callsStartBy: lease.callsStartBy,
        circuit: lease.circuit,
        operating: lease.operating,
      })
      .catch(() => undefined);
  }

  /** A hold not yet taken: the run's own owner id, the lease's length, its calls' promised start. */
  #hold(run: ReconcileRun, owner = this.#runOwner()): Hold {
    return { owner, until: this.#leaseUntil(run), startBy: this.#now() + CALLS_START_WITHIN_MS };
  }

  #runOwner(): string {
    this.#runs += 1;
    return `${this.#owner}/${this.#runs}`;
  }

  #acquire(portal: string, hold: Hold): Promise<Lease> {
    return this.#deps.ledger.acquireLease(portal, hold.owner, hold.until, hold.startBy);
  }

  /**
   * Before each call: the lease is still this run's and will outlast the call, and the call starts
   * by the time recorded on the portal item; otherwise the lease is renewed first. Resolves with
   * the call's start; rejects with LeaseLostError when another reconciler took the portal meanwhile.
   */
  async #claim(portal: string, hold: Hold, run: ReconcileRun): Promise<number> {
    const callMs = this.options.callTimeoutMs + this.options.deadlineMarginMs;
    const now = this.#now();
    if (now <= hold.startBy && now + callMs <= hold.until) return now;
    // A renewal slower than the start it promised is tried once more; then the call waits.
    for (let renewals = 0; renewals < 2; renewals += 1) {
      const until = this.#leaseUntil(run);
      const startBy = this.#now() + CALLS_START_WITHIN_MS;
      const renewal = await this.#deps.ledger.acquireLease(portal, hold.owner, until, startBy);
      if (renewal.acquired && !renewal.renewed) {
        // It ran out and someone held it in between: what this run read may be stale. Hand it back.
        await this.#giveBack(portal, hold.owner, renewal);
      }
      if (!renewal.renewed) break;
      hold.until = until;
      hold.startBy = startBy;
      const startsAt = this.#now();
      if (startsAt <= startBy) return startsAt;
    }
    throw new LeaseLostError(portal);
  }

  /** The rest of a reconcile once the lease was asked for: held elsewhere, in doubt, or ours to use. */
  async #holding(portal: string, run: ReconcileRun, lease: Lease, hold: Hold): Promise<ReconcileReport> {
    const report: ReconcileReport = {
      fates: new Map(),
      states: new Map(),
      times: new Map(),
      leaseHeld: false,
    };
    const { ledger } = this.#deps;
    if (!lease.acquired) {
      report.leaseHeld = true;
      for (const key of run.hints) {
        report.fates.set(messageKeyText(key), {
          kind: 'held',
          code: LEASE_HELD,
          description: 'Another reconciler holds the portal and applies its dirty messages',
          delayMs: Math.max(LEASE_HELD_RECHECK_MS, this.options.handBackDelayMs),
        });
      }
      return report;
    }
    this.pacing.takeOver(portal, lease.bucketEmptyAt, lease.operating);
    this.circuits.adopt(portal, lease.circuit);
    // The previous holder died (or lost the lease) and may have had a call in flight: which messages
    // it carried is unknown, so none is sent until its latest call can no longer land.
    const settledAt = (lease.callsStartBy ?? 0) + this.options.timing.ambiguousSettleMs;
    if (lease.callsStartBy !== undefined && settledAt > this.#now()) {
      const delayMs = settledAt - this.#now();
      for (const key of run.hints) {
        report.fates.set(messageKeyText(key), {
          kind: 'held',
          code: CALL_IN_DOUBT,
          description: 'A reconciler that stopped mid-call may still land an older state; waiting it out',
          delayMs,
        });
      }
      await this.#giveBack(portal, hold.owner, lease);
      return report;
    }
    let released: Promise<void> | undefined;
    const release = () => {
      released ??= ledger
        .releaseLease(portal, hold.owner, {
          bucketEmptyAt: this.pacing.handOver(portal),
          circuit: this.circuits.state(portal) ?? null,
          operating: this.pacing.operatingBook(portal),
        })
        .catch(() => undefined);
      return released;
    };
    // States read before the lease was ours are stale if another holder sent since: read again.
    const known = this.#freshSince(lease, run.knownAt ?? Number.NEGATIVE_INFINITY) ? run.known : undefined;
    try {
      await this.#loop(portal, { ...run, known }, report, hold, release);
    } finally {
      await release();
    }
    return report;
  }

  /**
   * Whether states read at `readAt` may still be sent under `lease`: no other holder can have sent
   * a newer state after they were read (its last release came before, with a margin for clocks).
   */
  #freshSince(lease: Lease, readAt: number): boolean {
    if (lease.fromExpiredHolder) return false;
    if (lease.releasedBy === undefined) return true;
    // A run of this container released it: one clock, no margin.
    const margin = lease.releasedBy.startsWith(`${this.#owner}/`) ? 0 : CLOCK_MARGIN_MS;
    return (lease.releasedAt ?? Number.POSITIVE_INFINITY) + margin < readAt;
  }

  async #loop(
    portal: string,
    run: ReconcileRun,
    report: ReconcileReport,
    hold: Hold,
    release: () => Promise<void>,
  ): Promise<void> {
    const fill = run.mode === 'fill';
    const { ledger } = this.#deps;
    const { maxCommandsPerCall, timing } = this.options;
    const hinted = new Set(run.hints.map(messageKeyText));
    // A message is sent once per run (per version): progress is certain, and a loop ends.
    const sent = new Map<string, number>();
    const linger = fill && this.options.batchLingerMs > 0;
    let lingered = !linger;
    let known = new Map((run.known ?? []).map((state) => [messageKeyText(state), state]));
    // The API's call also carries the edits other API callers of the portal wait for (merged ahead
    // while this run held the lease): concurrent API edits share calls instead of queueing for the lease.
    let carry = !fill;
    for (;;) {
      const candidates: MessageKey[] = run.hints.filter((key) => !sent.has(messageKeyText(key)));
      if (fill) candidates.push(...(await ledger.dirtyKeys(portal, maxCommandsPerCall * 2, this.#now())));
      else if (carry)
        candidates.push(
          ...(await (hold.ahead ?? ledger.aheadKeys(portal, maxCommandsPerCall).catch(() => []))),
        );
      carry = false;
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
      // Hinted messages first, then the dirty index's order: most overdue first, and edits someone
      // waits for (the API's, merged `ahead`) before the backlog.
      const place = new Map<string, number>();
      candidates.forEach((key, i) => {
        const text = messageKeyText(key);
        if (!place.has(text)) place.set(text, i);
      });
      const order = (state: MessageState) => place.get(messageKeyText(state)) ?? candidates.length;
      due.sort((a, b) => rank(a, hinted) - rank(b, hinted) || order(a) - order(b));
      const jobs: Job[] = due.slice(0, maxCommandsPerCall).map((state) => ({
        key: { portal: state.portal, botId: state.botId, messageId: state.messageId },
        version: state.version,
        fields: desiredFields(state),
        attempts: state.attempts,
      }));
      for (const job of jobs) sent.set(messageKeyText(job.key), job.version);
      // Each call that would not be full may wait once for more.
      lingered = !linger;
      // Each request confirms the lease right before it leaves (renewing it when needed), so a
      // holder that dies blocks the portal for one call's time only, and one that stalls past its
      // lease sends nothing more under it.
      const results = await sendJobs(portal, jobs, {
        ...this.#sendContext(run, fill),
        claim: () => this.#claim(portal, hold, run),
      });
      // Held back (circuit, pacer, deadline, the lease lost): the rest waits too. Only its own messages: done.
      const heldBack = jobs.some((job) => results.get(job)?.kind === 'held');
      const last = heldBack || (!fill && run.hints.every((key) => sent.has(messageKeyText(key))));
      // The last call has ended: the lease is given up while its outcome is recorded (a reconciler
      // taking over meanwhile sends at most the same desired state once more). Not after a call
      // whose outcome is unknown: it may still land, and until its messages are marked in doubt a
      // taker would see nothing to wait for and could send a newer state that the late call then
      // overwrites. Then the lease goes once the marks are written.
      const inDoubt = jobs.some((job) => {
        const result = results.get(job);
        return result?.kind === 'retry' && result.inDoubt;
      });
      if (last && !inDoubt) void release();
      await this.#record(
        jobs.map((job) => ({
          job,
          state: states.get(messageKeyText(job.key)) as MessageState,
          result: results.get(job) as JobResult,
        })),
        run,
        report,
      );
      if (last) return;
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
      maxDeferralMs: o.maxDeferralMs,
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
    // The API's caller hears of its own edit's failure; every other failure goes to the queue (a
    // carried API edit's caller may have stopped waiting).
    const hinted = new Set(run.hints.map(messageKeyText));
    const toQueue = (job: Job) => run.mode === 'fill' || !hinted.has(messageKeyText(job.key));
    const queued = failures.filter((failure) => toQueue(failure.job));
    const refused = new Set<(typeof failures)[number]>();
    if (queued.length > 0) {
      const sent = await sendFailedEdits(
        queued.map(({ state, error }) => failedMessage(state, error)),
        { queueUrl: o.failedEditsQueueUrl, client: this.#deps.sqs },
      );
      for (const { index } of sent.refused) refused.add(queued[index] as (typeof failures)[number]);
    }
    await Promise.all(
      failures.map(async (failure) => {
        const { job, state, error, startedAt } = failure;
        if (refused.has(failure)) {
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
          queued: toQueue(job),
        });
        settle(state, marked ? { failedVersion: job.version, lastError: error } : { lastError: error });
      }),
    );
  }
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
