import { randomUUID } from 'node:crypto';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { type Clock, systemClock } from '../clock.ts';
import { AppError } from '../errors.ts';
import type { Ledger } from '../ledger/messages.ts';
import {
  desiredFields,
  dueAt,
  fateOf,
  type IncomingEdit,
  isDirty,
  type MergeResult,
  type MessageFate,
  type MessageKey,
  type MessageState,
  messageKeyText,
} from '../ledger/model.ts';
import type { LeaseTaken } from '../ledger/portal-item.ts';
import { logger } from '../observability/logger.ts';
import { PortalCircuits } from '../pacing/circuit.ts';
import type { WakeupSender } from '../schedule/portal-queue.ts';
import { type Scheduled, WakeSchedule } from '../schedule/wake.ts';
import { batchWait } from './batching.ts';
import { leaseTiming, PortalLease } from './lease.ts';
import {
  normaliseReconcileOptions,
  type ReconcileOptions,
  type ResolvedReconcileOptions,
} from './options.ts';
import { PortalPacing } from './pacing.ts';
import { recordOutcomes } from './record.ts';
import { emptyReport, type ReconcileReport, type ReconcileRun } from './run.ts';
import { type Job, type JobResult, type SendContext, sendJobs } from './send.ts';

/**
 * The edit is in the ledger, but what came after its merge failed (the ledger or the portal's
 * lease), so its outcome is not known yet: its portal was woken to apply it.
 */
export const RECORDED = 'RECORDED';

/**
 * The edit is in the ledger, but neither the ledger nor the portal work queue took its wake-up:
 * nothing is sure to apply it until the caller sends it again (a repeat merges as the same edit,
 * and makes sure of the wake-up).
 */
export class EditUnscheduledError extends AppError {
  override name = 'EditUnscheduledError';
  readonly retryAfterSeconds = 5;
  constructor(options?: ErrorOptions) {
    super(
      'EDIT_RECORDED_UNSCHEDULED',
      'The edit was recorded, but its apply could not be scheduled (the ledger and the portal work queue failed); send the same edit again: it is applied once',
      503,
      options,
    );
  }
}

/** A call of a reconciler that stopped mid-call may still land; the portal waits it out. */
export const CALL_IN_DOUBT = 'CALL_IN_DOUBT';
/** A reconcile of the portal is running elsewhere; it will apply this message. */
export const LEASE_HELD = 'LEASE_HELD';
/** The portal was called a moment ago: the edit goes in its next call, at most `batchLingerMs` later. */
export const BATCHED = 'BATCHED';
/** How long the API waits for the holder of its portal to apply its edit, and how often it looks. */
const HOLDER_WAIT_MS = 3_000;
const HOLDER_POLL_MS = 100;

export interface ReconcilerDeps {
  ledger: Ledger;
  gateway: SendContext['gateway'];
  /** The failed-edits queue's client. */
  sqs: SQSClient;
  /** Where the portal's next wake-up goes (the portal work queue). */
  wakeups: WakeupSender;
  options: ReconcileOptions;
  pacing?: PortalPacing;
  circuits?: PortalCircuits;
  /** Reads the time and waits (rate tokens, the linger, the wait for a holder). Default the system clock. */
  clock?: Clock;
  random?: () => number;
  /** This container's id; each run's lease owner is this id and the run's number. Default a random UUID. */
  owner?: string;
}

/** One look at a portal's dirty set: the keys due `at` and when the next one beyond them is due. */
interface Page {
  due: MessageKey[];
  next: number | undefined;
  at: number;
}

/** How a run's loop ended: held back until `hold`, and what its last look at the dirty set `seen`. */
interface LoopEnd {
  hold?: number | undefined;
  seen?: { at: number; next: number | undefined } | undefined;
}

/**
 * Brings a portal's messages from applied to desired under the portal's lease: picks due dirty
 * messages (hinted ones first, then the oldest of the portal's dirty set), sends each one's whole
 * desired state, up to 50 per `batch` call, records every outcome in the ledger, and before it lets
 * the portal go sets its next wake-up. The only caller of `sendJobs`.
 */
export class Reconciler {
  readonly options: ResolvedReconcileOptions;
  readonly pacing: PortalPacing;
  readonly circuits: PortalCircuits;
  readonly schedule: WakeSchedule;
  readonly #deps: ReconcilerDeps;
  readonly #clock: Clock;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #owner: string;
  readonly #lease: ReturnType<typeof leaseTiming>;
  #runs = 0;

  constructor(deps: ReconcilerDeps) {
    this.#deps = deps;
    this.options = normaliseReconcileOptions(deps.options);
    this.#clock = deps.clock ?? systemClock;
    this.#now = () => this.#clock.now();
    this.#random = deps.random ?? Math.random;
    this.#owner = deps.owner ?? randomUUID();
    this.#lease = leaseTiming(this.options);
    this.pacing =
      deps.pacing ??
      // One lease holder per portal sends at a time, and hands the bucket on with the lease.
      new PortalPacing({
        apiShare: this.options.apiRateShare,
        operating: this.options.operatingBudget,
        now: this.#now,
      });
    this.circuits = deps.circuits ?? new PortalCircuits({ now: this.#now });
    this.schedule = new WakeSchedule({
      portals: deps.ledger.portals,
      sender: deps.wakeups,
      clock: this.#clock,
      indexLagMs: this.options.indexLagMs,
    });
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

  /** After merges into a portal's messages: makes sure the portal is woken by the earliest one's due time. */
  afterMerge(portal: string, states: readonly MessageState[]): Promise<Scheduled | 'clean'> {
    const dirty = states.filter((state) => isDirty(state));
    if (dirty.length === 0) return Promise.resolve('clean');
    const due = Math.min(...dirty.map((state) => dueAt(state, this.options.timing)));
    return this.schedule.afterMerge(portal, due);
  }

  /**
   * Reconciles the portal under its lease (a wake-up, the status refresher). Found held, the run
   * leaves the portal to its holder (`leaseHeld`), who looks at it again before letting go.
   */
  async reconcilePortal(portal: string, run: ReconcileRun): Promise<ReconcileReport> {
    let first: Page | undefined;
    if (run.mode === 'fill' && run.hints.length === 0) {
      const look = await this.#look(portal, run);
      if ('report' in look) return look.report;
      first = look.page;
      run = { ...run, known: look.known, knownAt: look.page?.at };
    }
    const lease = this.#newLease(portal);
    const taken = await lease.take(run.remainingMs());
    return this.#holding(run, lease, taken, undefined, first);
  }

  /**
   * A wake-up's look at its portal before the lease: the dirty index, then the due messages and the
   * portal item in one read. The lease is asked for only when a call is to go now; a portal with
   * nothing due yet, or a backlog that waits to be fuller, has its wake-up moved by one conditional
   * write instead (a look costs no lease take and release). A live holder is left the portal, with a
   * touch so that it looks again before it lets go (the merges this wake-up was to find may not have
   * touched the item).
   */
  async #look(
    portal: string,
    run: ReconcileRun,
  ): Promise<{ report: ReconcileReport } | { page?: Page | undefined; known?: MessageState[] | undefined }> {
    const { ledger } = this.#deps;
    const at = this.#now();
    const page: Page = { ...(await ledger.dirtyPage(portal, this.options.maxCommandsPerCall * 2, at)), at };
    const { states, view } = await ledger.look(portal, page.due);
    if (view.leaseUntil !== undefined && view.leaseUntil >= this.#now()) {
      const touched = await ledger.portals.touch(portal);
      if (touched.leaseUntil !== undefined && touched.leaseUntil >= this.#now())
        return { report: this.#held(run) };
      // Let go meanwhile: what was read may be stale; the run reads again under the lease.
      return {};
    }
    const now = this.#now();
    const dirty = [...states.values()].filter((state) => isDirty(state));
    const due = dirty.filter((state) => this.#dueAt(state, run) <= now);
    let wakeAt: number | undefined;
    if (due.length > 0) {
      wakeAt = batchWait(due, { lastCallAt: view.lastCallAt, touchedAt: view.touchedAt, now }, this.options);
      if (wakeAt === undefined) return { page, known: [...states.values()] };
    } else {
      // Nothing due: the next due is the index's beyond the page, or a listed message's own.
      const nexts = [page.next, ...dirty.map((state) => this.#dueAt(state, run))].filter(
        (t): t is number => t !== undefined,
      );
      wakeAt = nexts.length > 0 ? Math.max(Math.min(...nexts), now) : undefined;
    }
    const report = emptyReport();
    for (const [text, state] of states) report.states.set(text, state);
    report.nextWakeAt = wakeAt;
    const moved = await ledger.portals.moveWake(portal, view.wakeAt, wakeAt);
    // Refused: a holder took the portal, or someone else set its wake-up; they look next.
    if (moved) await this.schedule.afterRelease(portal, wakeAt, moved, at);
    return { report };
  }

  /**
   * The API's way: records the caller's edits of one message, then applies the message's desired
   * state now when its cadence and settle window allow, the portal's lease is free and its last
   * call is at least `batchLingerMs` ago. Otherwise the portal's wake-up is made sure of (the edit
   * is merged ahead of the portal's backlog, so the next call carries it) and the message item is
   * watched for a moment for that outcome.
   */
  async mergeAndApply(
    key: MessageKey,
    edits: readonly IncomingEdit[],
    run: Omit<ReconcileRun, 'hints' | 'mode' | 'known'> & {
      /** Told the merged state as soon as the merge committed (the caller's deadline answer needs it). */
      onMerged?: (merged: MergeResult) => void;
    },
  ): Promise<{ merged: MergeResult; report: ReconcileReport }> {
    const knownAt = this.#now();
    const merged = await this.merge(key, edits, { ahead: true });
    run.onMerged?.(merged);
    try {
      const { onMerged: _, ...rest } = run;
      return await this.#applyMerged(key, merged, { ...rest, hints: [key], mode: 'only', knownAt });
    } catch (error) {
      // Recorded: from here on the caller hears 202 (the portal woken) or EditUnscheduledError.
      return { merged, report: await this.#afterFailure(key, merged.state, error) };
    }
  }

  /**
   * The status refresher's and the API's deferred way: records the edits, then makes sure of the
   * portal's wake-up (directly through the portal work queue when the ledger fails after the merge).
   */
  async mergeAndSchedule(key: MessageKey, edits: readonly IncomingEdit[]): Promise<MergeResult> {
    const merged = await this.merge(key, edits);
    try {
      await this.afterMerge(key.portal, [merged.state]);
    } catch (error) {
      await this.#afterFailure(key, merged.state, error);
    }
    return merged;
  }

  /**
   * After a merge that committed, something failed: the portal item (its wake-up may not be set),
   * the lease or a read. A wake-up sent straight to the portal work queue, at the message's due
   * time, makes sure someone looks (a duplicate costs a look); when the queue fails too, the edit
   * is recorded but unscheduled, and the caller is asked to send it again.
   */
  async #afterFailure(key: MessageKey, state: MessageState, error: unknown): Promise<ReconcileReport> {
    const at = await this.wakeDirectly(key, state);
    const code = error instanceof AppError ? error.code : 'INTERNAL_ERROR';
    if (at === undefined) {
      logger.error('An edit is recorded but unscheduled: the ledger and the portal work queue failed', {
        ...key,
        code,
      });
      throw new EditUnscheduledError({ cause: error });
    }
    logger.warn('The ledger failed after an edit was recorded; its portal was woken to apply it', {
      ...key,
      code,
    });
    const report = emptyReport();
    const text = messageKeyText(key);
    report.states.set(text, state);
    report.fates.set(text, {
      kind: 'held',
      code: RECORDED,
      description: 'The edit is recorded; the ledger failed after that, and the portal was woken to apply it',
      delayMs: at - this.#now(),
    });
    report.nextWakeAt = at;
    return report;
  }

  /**
   * Sends the portal a wake-up straight through the portal work queue, at the message's due time,
   * without the portal item (a duplicate of a pending one costs a look). Resolves with its time, or
   * undefined when the queue did not take it.
   */
  async wakeDirectly(key: MessageKey, state: MessageState): Promise<number | undefined> {
    const at = Math.max(this.#now(), isDirty(state) ? dueAt(state, this.options.timing) : 0);
    const refused = await this.#deps.wakeups.send([{ portal: key.portal, at }]).catch(() => [key.portal]);
    return refused.length > 0 ? undefined : at;
  }

  /** The rest of `mergeAndApply`, once the edit is merged. */
  async #applyMerged(
    key: MessageKey,
    merged: MergeResult,
    full: ReconcileRun,
  ): Promise<{ merged: MergeResult; report: ReconcileReport }> {
    const state = merged.state;
    const text = messageKeyText(key);
    const report = emptyReport();
    report.states.set(text, state);
    if (!isDirty(state) || this.#dueAt(state, full) > this.#now()) {
      report.fates.set(text, fateOf(state, this.options.timing));
      // A message dirty before had its wake-up made sure of then: it is due no earlier now. One
      // that just became dirty waits for its portal's next call too: a wake-up for that will do.
      // An edit the message already wanted (a caller's retry, perhaps of a request that failed
      // after its merge and before its wake-up) makes sure of the wake-up again.
      if (merged.becameDirty || (isDirty(state) && !merged.changed)) {
        const view = await this.#deps.ledger.portals.view(key.portal);
        const nextCall = (view.lastCallAt ?? Number.NEGATIVE_INFINITY) + this.options.batchLingerMs;
        await this.schedule.afterMerge(key.portal, Math.max(dueAt(state, this.options.timing), nextCall), {
          seen: view,
        });
      }
      return { merged, report };
    }
    // A look at the portal first: a holder carries the edit, and a call just made leaves this one
    // to the next (at most one call that is not full every `batchLingerMs`). Only an idle portal
    // gets a call of its own.
    const view = await this.#deps.ledger.portals.view(key.portal);
    const now = this.#now();
    const held = view.leaseUntil !== undefined && view.leaseUntil >= now;
    const next = (view.lastCallAt ?? Number.NEGATIVE_INFINITY) + this.options.batchLingerMs;
    if (!held && next <= now) {
      const lease = this.#newLease(key.portal);
      const ahead = this.#deps.ledger.aheadKeys(key.portal, this.options.maxCommandsPerCall).catch(() => []);
      const taken = await lease.take(full.remainingMs());
      if (taken.acquired) {
        return { merged, report: await this.#holding({ ...full, known: [state] }, lease, taken, ahead) };
      }
    }
    // The portal's next call: a wake-up already queued for it will do (its item was just read).
    await this.schedule.afterMerge(key.portal, Math.max(now, held ? now : next), { seen: view });
    return {
      merged,
      report:
        (await this.#awaitApplied(key, state, full)) ?? this.#held(full, report, held ? LEASE_HELD : BATCHED),
    };
  }

  #newLease(portal: string): PortalLease {
    this.#runs += 1;
    return new PortalLease({
      portals: this.#deps.ledger.portals,
      portal,
      container: this.#owner,
      run: this.#runs,
      timing: this.#lease,
      clock: this.#clock,
    });
  }

  /** The report of a run that left the hinted messages to the portal's holder (or its next call). */
  #held(run: ReconcileRun, report = emptyReport(), code = LEASE_HELD): ReconcileReport {
    report.leaseHeld = code === LEASE_HELD;
    for (const key of run.hints) {
      report.fates.set(messageKeyText(key), {
        kind: 'held',
        code,
        description:
          code === LEASE_HELD
            ? 'Another reconciler holds the portal and applies its dirty messages'
            : 'The portal was called a moment ago; the edit goes in its next call',
        delayMs: this.options.handBackDelayMs,
      });
    }
    return report;
  }

  /**
   * The API's edit while another reconciler holds its portal: the merge put it at the head of the
   * portal's dirty set, so the holder's next call carries it. Watches the message item (never the
   * lease) for that outcome for a moment; undefined when it did not come in time.
   */
  async #awaitApplied(
    key: MessageKey,
    merged: MessageState,
    run: ReconcileRun,
  ): Promise<ReconcileReport | undefined> {
    const spare = run.remainingMs() - this.options.callTimeoutMs - this.options.deadlineMarginMs;
    const until = this.#now() + Math.min(HOLDER_WAIT_MS, spare);
    const text = messageKeyText(key);
    while (this.#now() + HOLDER_POLL_MS < until && !run.signal?.aborted) {
      await this.#clock.sleep(HOLDER_POLL_MS, run.signal);
      const state = await this.#deps.ledger.get(key);
      const applied = state.appliedVersion >= merged.version;
      if (!applied && (state.failedVersion ?? 0) < merged.version) continue;
      const fate: MessageFate = applied
        ? { kind: 'applied', version: merged.version }
        : fateOf({ ...state, version: state.failedVersion ?? state.version }, this.options.timing);
      return {
        ...emptyReport(),
        fates: new Map([[text, fate]]),
        states: new Map([[text, state]]),
        leaseHeld: true,
      };
    }
    return undefined;
  }

  /** The rest of a reconcile once the lease was asked for: held elsewhere, in doubt, or ours to use. */
  async #holding(
    run: ReconcileRun,
    lease: PortalLease,
    taken: LeaseTaken,
    ahead?: Promise<readonly MessageKey[]>,
    first?: Page,
  ): Promise<ReconcileReport> {
    if (!taken.acquired) return this.#held(run);
    const portal = lease.portal;
    const report = emptyReport();
    this.pacing.takeOver(portal, taken.bucketEmptyAt, taken.operating, taken.lastCallAt);
    this.circuits.adopt(portal, taken.circuit);
    // The previous holder died (or lost the lease) and may have had a call in flight: which messages
    // it carried is unknown, so none is sent until its latest call can no longer land.
    const settledAt = (taken.callsStartBy ?? 0) + this.options.timing.ambiguousSettleMs;
    if (taken.callsStartBy !== undefined && settledAt > this.#now()) {
      for (const key of run.hints) {
        report.fates.set(messageKeyText(key), {
          kind: 'held',
          code: CALL_IN_DOUBT,
          description: 'A reconciler that stopped mid-call may still land an older state; waiting it out',
          delayMs: settledAt - this.#now(),
        });
      }
      const queriedAt = this.#now();
      await this.schedule.afterRelease(portal, settledAt, await lease.giveBack(taken, settledAt), queriedAt);
      report.nextWakeAt = settledAt;
      return report;
    }
    // States read before the lease was ours are stale if another holder sent since: read again.
    const fresh = lease.freshSince(taken, run.knownAt ?? Number.NEGATIVE_INFINITY);
    let end: LoopEnd = {};
    try {
      end = await this.#loop(
        { ...run, known: fresh ? run.known : undefined },
        report,
        lease,
        ahead,
        fresh ? first : undefined,
      );
    } finally {
      await this.#letGo(lease, report, end);
    }
    return report;
  }

  /**
   * The end of every run that held the lease: the portal's next wake time (its earliest dirty
   * message, not before what held the run back), left on the portal item with the lease's release,
   * and the wake-up sent.
   */
  async #letGo(lease: PortalLease, report: ReconcileReport, end: LoopEnd): Promise<void> {
    const portal = lease.portal;
    // The run's last look at the dirty set found nothing due: what it saw beyond is the next due.
    // Otherwise (or unreadable) the index is looked at again.
    const queriedAt = end.seen?.at ?? this.#now();
    const next =
      end.seen !== undefined
        ? end.seen.next
        : await this.#deps.ledger.nextDueAt(portal).catch(() => queriedAt + this.options.handBackDelayMs);
    const wakeAt = next === undefined ? undefined : Math.max(next, end.hold ?? 0, this.#now());
    const released = await lease
      .release(
        {
          bucketEmptyAt: this.pacing.handOver(portal),
          circuit: this.circuits.state(portal) ?? null,
          operating: this.pacing.operatingBook(portal),
          lastCallAt: this.pacing.lastCallAt(portal),
        },
        wakeAt,
      )
      // Not released, the lease runs out: its end is the portal's wake time, and the sweep looks.
      .catch(() => undefined);
    report.nextWakeAt = wakeAt;
    await this.schedule.afterRelease(portal, wakeAt, released, queriedAt);
  }

  /** Sends until nothing is due or something holds the run back; resolves with how it ended. */
  async #loop(
    run: ReconcileRun,
    report: ReconcileReport,
    lease: PortalLease,
    ahead: Promise<readonly MessageKey[]> | undefined,
    first: Page | undefined,
  ): Promise<LoopEnd> {
    const portal = lease.portal;
    const fill = run.mode === 'fill';
    const { ledger } = this.#deps;
    const { maxCommandsPerCall, timing } = this.options;
    const hinted = new Set(run.hints.map(messageKeyText));
    // A message is sent once per run (per version): progress is certain, and a loop ends.
    const sent = new Map<string, number>();
    let known = new Map((run.known ?? []).map((state) => [messageKeyText(state), state]));
    // The API's call also carries the edits other API callers of the portal wait for (merged ahead
    // while another run held the lease): concurrent API edits share calls instead of queueing.
    let carry = !fill;
    const startedAt = this.#now();
    for (;;) {
      const candidates: MessageKey[] = run.hints.filter((key) => !sent.has(messageKeyText(key)));
      let page: Page | undefined;
      if (fill) {
        const at = this.#now();
        page = first ?? { ...(await ledger.dirtyPage(portal, maxCommandsPerCall * 2, at)), at };
        first = undefined;
        candidates.push(...page.due);
      } else if (carry) {
        candidates.push(...(await (ahead ?? ledger.aheadKeys(portal, maxCommandsPerCall).catch(() => []))));
        ahead = undefined;
      }
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
      if (due.length === 0) {
        // The index held nothing due: what it held beyond is the next due. (Keys it held as due
        // that are not, by their state, have due times of their own: the index is asked again.)
        return page && page.due.length === 0 && run.hints.length === 0
          ? { seen: { at: page.at, next: page.next } }
          : {};
      }
      // A wake-up's call that would not be full may wait for more: the run ends, and the portal is
      // woken again then.
      const wait =
        fill && run.hints.length === 0
          ? batchWait(
              due,
              { lastCallAt: this.pacing.lastCallAt(portal), touchedAt: lease.touchedAt, now },
              this.options,
            )
          : undefined;
      if (wait !== undefined) return { hold: wait };
      // Hinted messages first, then the dirty index's order: most overdue first, and edits someone
      // waits for (the API's, merged `ahead`) before the backlog.
      const place = new Map<string, number>();
      candidates.forEach((key, i) => {
        const text = messageKeyText(key);
        if (!place.has(text)) place.set(text, i);
      });
      const order = (state: MessageState) => place.get(messageKeyText(state)) ?? candidates.length;
      const rank = (state: MessageState) => (hinted.has(messageKeyText(state)) ? 0 : 1);
      due.sort((a, b) => rank(a) - rank(b) || order(a) - order(b));
      const jobs: Job[] = due.slice(0, maxCommandsPerCall).map((state) => ({
        key: { portal: state.portal, botId: state.botId, messageId: state.messageId },
        version: state.version,
        fields: desiredFields(state),
        attempts: state.attempts,
      }));
      for (const job of jobs) sent.set(messageKeyText(job.key), job.version);
      const results = await sendJobs(portal, jobs, {
        ...this.#sendContext(run, fill),
        claim: () => lease.claim(run.remainingMs()),
      });
      await recordOutcomes(
        { ledger, sqs: this.#deps.sqs, options: this.options, now: this.#now },
        jobs.map((job) => ({
          job,
          state: states.get(messageKeyText(job.key)) as MessageState,
          result: results.get(job) as JobResult,
        })),
        run,
        report,
      );
      // Held back (circuit, pacer, deadline, the lease lost): the rest waits too, until the hold ends.
      const holds = jobs.flatMap((job) => {
        const result = results.get(job);
        return result?.kind === 'held' ? [result.delayMs] : [];
      });
      if (holds.length > 0)
        return { hold: this.#now() + Math.min(this.options.maxDeferralMs, Math.max(...holds)) };
      // The API's run goes on with what other API callers merged ahead meanwhile, while they may still
      // be waiting for it (`HOLDER_WAIT_MS` from the run's start); after that their edits go with the
      // portal's wake-ups, and this caller hears its answer (its run never turns into a drain).
      carry = !fill && this.#now() - startedAt < HOLDER_WAIT_MS;
    }
  }

  /**
   * When a message may be sent in this run. An API call (`only`) spends its own request on the
   * caller's edit: the message's backoff does not hold it, but its cadence and settle window do.
   */
  #dueAt(state: MessageState, run: Pick<ReconcileRun, 'mode'>): number {
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
      sleep: (ms, signal) => this.#clock.sleep(ms, signal),
      stats: run.stats,
    };
  }
}
