import type { Clock } from '../clock.ts';
import type { HandOver, LeaseTaken, PortalItems, PortalView } from '../ledger/portal-item.ts';

/**
 * One run's hold on a portal's lease. One reconciler per portal at a time: two senders of one
 * message could land its older state after its newer one. The lease is the run's, not the
 * container's (two runs of one container never share it), and every request confirms it right
 * before it leaves (`claim`), renewing it when the call would outlive it or start later than the
 * start recorded on the portal item, so a holder that dies blocks the portal for one call's time,
 * and one that stalls past its lease sends nothing more under it.
 */

/** The lease's durations; their relations are checked once, by `leaseTiming`. */
export interface LeaseTiming {
  /** One request: its timeout and the margin kept before a deadline. */
  readonly callMs: number;
  /** A holder's own reads and writes between calls, on top of one call. */
  readonly slackMs: number;
  /** Calls start within this of a take or renewal (recorded on the item as `callsStartBy`). */
  readonly startWithinMs: number;
  /** The shortest lease taken (an invocation with little time left still gets this much). */
  readonly minMs: number;
}

/** Beyond one call's timeout and margin: the holder's own reads and writes between calls. */
const LEASE_SLACK_MS = 5_000;
/** A lease is taken or renewed with a promise that its calls start within this many ms. */
const CALLS_START_WITHIN_MS = 1_000;
const MIN_LEASE_MS = 1_000;

/**
 * The lease timing for calls of `callTimeoutMs` (plus `deadlineMarginMs`), checked: a lease must
 * outlast the promised start of its calls, and a full lease must hold one call started late and
 * the holder's slack, or a holder would renew before every request.
 */
export function leaseTiming(options: { callTimeoutMs: number; deadlineMarginMs: number }): LeaseTiming {
  const timing: LeaseTiming = {
    callMs: options.callTimeoutMs + options.deadlineMarginMs,
    slackMs: LEASE_SLACK_MS,
    startWithinMs: CALLS_START_WITHIN_MS,
    minMs: MIN_LEASE_MS,
  };
  if (!(timing.startWithinMs <= timing.minMs)) {
    throw new RangeError(
      `Expected the calls' promised start (${timing.startWithinMs} ms) within the shortest lease (${timing.minMs} ms)`,
    );
  }
  if (!(fullLeaseMs(timing) > timing.callMs + timing.startWithinMs)) {
    throw new RangeError(`Expected a lease of ${fullLeaseMs(timing)} ms to outlast a call started late`);
  }
  return Object.freeze(timing);
}

function fullLeaseMs(timing: LeaseTiming): number {
  return timing.callMs + timing.slackMs;
}

/** The portal's reconcile lease passed to another reconciler: no call may leave under this hold. */
export class LeaseLostError extends Error {
  constructor(portal: string) {
    super(`The reconcile lease of portal ${portal} passed to another reconciler`);
    this.name = 'LeaseLostError';
  }
}

/** Clocks of containers differ by a few ms: a release this close to a read counts as after it. */
const CLOCK_MARGIN_MS = 50;

export class PortalLease {
  readonly portal: string;
  readonly owner: string;
  readonly #portals: PortalItems;
  readonly #timing: LeaseTiming;
  readonly #clock: Clock;
  /** This container's id: a release by one of its runs needs no clock margin. */
  readonly #container: string;
  #until = 0;
  #startBy = 0;
  /** The last merge into the portal seen on the item (at the take or the latest renewal). */
  touchedAt: number | undefined;

  constructor(options: {
    portals: PortalItems;
    portal: string;
    container: string;
    run: number;
    timing: LeaseTiming;
    clock: Clock;
  }) {
    this.portal = options.portal;
    this.owner = `${options.container}/${options.run}`;
    this.#container = options.container;
    this.#portals = options.portals;
    this.#timing = options.timing;
    this.#clock = options.clock;
  }

  /** How long a lease is taken for: one call and its margins, never past the invocation's deadline. */
  #lengthMs(remainingMs: number): number {
    return Math.max(this.#timing.minMs, Math.min(remainingMs, fullLeaseMs(this.#timing)));
  }

  /** Asks for the lease; what the previous holder left comes with it. */
  async take(remainingMs: number): Promise<LeaseTaken> {
    const now = this.#clock.now();
    this.#until = now + this.#lengthMs(remainingMs);
    this.#startBy = now + this.#timing.startWithinMs;
    const taken = await this.#portals.acquireLease(this.portal, this.owner, this.#until, this.#startBy);
    if (taken.acquired) this.touchedAt = taken.touchedAt;
    return taken;
  }

  /**
   * Before each request: the lease is still this run's and will outlast the call, and the call
   * starts by the time recorded on the portal item; otherwise it is renewed first. Resolves with the
   * call's start; rejects with LeaseLostError when another reconciler took the portal meanwhile.
   */
  async claim(remainingMs: number): Promise<number> {
    const now = this.#clock.now();
    if (now <= this.#startBy && now + this.#timing.callMs <= this.#until) return now;
    // A renewal slower than the start it promised is tried once more; then the call waits.
    for (let renewals = 0; renewals < 2; renewals += 1) {
      const until = this.#clock.now() + this.#lengthMs(remainingMs);
      const startBy = this.#clock.now() + this.#timing.startWithinMs;
      const renewal = await this.#portals.acquireLease(this.portal, this.owner, until, startBy);
      if (renewal.acquired && !renewal.renewed) {
        // It ran out and someone held it in between: what this run read may be stale. Hand it back.
        await this.giveBack(renewal);
      }
      if (!renewal.renewed) break;
      this.#until = until;
      this.#startBy = startBy;
      this.touchedAt = renewal.touchedAt ?? this.touchedAt;
      const startsAt = this.#clock.now();
      if (startsAt <= startBy) return startsAt;
    }
    throw new LeaseLostError(this.portal);
  }

  /**
   * Whether states read at `readAt` may still be sent under the lease `taken`: no other holder can
   * have sent a newer state after they were read (its last release came before, with a margin for clocks).
   */
  freshSince(taken: LeaseTaken, readAt: number): boolean {
    if (taken.fromExpiredHolder) return false;
    if (taken.releasedBy === undefined) return true;
    const margin = taken.releasedBy.startsWith(`${this.#container}/`) ? 0 : CLOCK_MARGIN_MS;
    return (taken.releasedAt ?? Number.POSITIVE_INFINITY) + margin < readAt;
  }

  /** Gives the lease up with what the run leaves and the portal's next wake time (none: nothing left). */
  release(handOver: HandOver, wakeAt: number | undefined): Promise<PortalView | undefined> {
    return this.#portals.releaseLease(this.portal, this.owner, handOver, wakeAt);
  }

  /**
   * Gives a lease up unused, leaving the portal item as the previous holder left it: its wake time
   * too, unless `wakeAt` says when to look again.
   */
  giveBack(taken: LeaseTaken, wakeAt = taken.wakeAt): Promise<PortalView | undefined> {
    return this.#portals
      .releaseLease(
        this.portal,
        this.owner,
        {
          bucketEmptyAt: taken.bucketEmptyAt,
          callsStartBy: taken.callsStartBy,
          circuit: taken.circuit,
          operating: taken.operating,
        },
        wakeAt,
      )
      .catch(() => undefined);
  }
}
