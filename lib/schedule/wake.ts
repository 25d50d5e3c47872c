import type { Clock } from '../clock.ts';
import { INDEX_LAG_MS } from '../ledger/dirty-index.ts';
import type { PortalItems, PortalView } from '../ledger/portal-item.ts';
import { logger } from '../observability/logger.ts';
import type { WakeupSender } from './portal-queue.ts';

/**
 * The portal's wake-up schedule: whoever merges an edit makes sure that someone looks at its portal
 * by the time the edit is due, and at most one wake-up per portal is pending. Three cases, decided
 * from the portal item as the merge's touch left it:
 * - a live holder reconciles the portal: it looks again before it lets go (it sees the touch);
 * - a wake-up is pending no later than the edit's due time: it will find the edit;
 * - otherwise the merger elects itself (a conditional write) and puts a wake-up on the queue.
 */

/** What became of the wake-up after a merge. */
export type Scheduled =
  /** A live lease holder will look at the portal before it lets go. */
  | 'holder'
  /** A wake-up no later than the edit's due time was pending, or another merger elected one. */
  | 'pending'
  /** This merger sent the wake-up. */
  | 'sent'
  /** Elected, but the queue did not take it: the sweep sends it once it is overdue. */
  | 'unsent';

/**
 * A pending wake-up this late, with no holder on the portal, is given up for lost (or stuck behind
 * a busy queue): the next merger elects another. Duplicates cost a look at the portal, nothing more.
 */
export const WAKE_OVERDUE_MS = 10_000;

export interface WakeScheduleDeps {
  portals: PortalItems;
  sender: WakeupSender;
  clock: Pick<Clock, 'now'>;
  /** How long a merge may take to show in a dirty index query. Default `INDEX_LAG_MS`. */
  indexLagMs?: number;
}

/** Portals whose queued wake-up this container knows of (bounded). */
const KNOWN_WAKES = 10_000;

export class WakeSchedule {
  readonly #deps: WakeScheduleDeps;
  /**
   * Wake-ups this container knows are on the queue, by portal: elected or released with a send, or
   * seen on the portal item with no holder. A wake-up is delivered at its time, never before, so a
   * merge that comes an index lag or more before one, and needs it no earlier, writes nothing on
   * the portal item: that wake-up's reconcile will see the merge.
   */
  readonly #known = new Map<string, number>();

  constructor(deps: WakeScheduleDeps) {
    this.#deps = deps;
  }

  #remember(portal: string, at: number): void {
    this.#known.delete(portal);
    this.#known.set(portal, at);
    if (this.#known.size > KNOWN_WAKES) this.#known.delete(this.#known.keys().next().value as string);
  }

  /**
   * After edits were merged into the portal's messages, the earliest of which is due at `due`
   * (epoch ms; at once when past): records the merge on the portal item and makes sure a wake-up
   * comes by then.
   */
  async afterMerge(
    portal: string,
    due: number,
    options: {
      /** A wake-up already pending up to this late will do (a backlog that waits to be fuller). Default `due`. */
      latest?: number | undefined;
      /** The portal item as read before the merge (the drain reads it with the messages). */
      seen?: PortalView | undefined;
    } = {},
  ): Promise<Scheduled> {
    const before = this.#deps.clock.now();
    const at = Math.max(due, before);
    const latest = Math.max(options.latest ?? at, at);
    const known = this.#known.get(portal);
    if (known !== undefined && this.#covers(known, latest, before)) return 'pending';
    // The item as read before the merge: a queued wake-up that will see the merge needs no write.
    const seen = options.seen;
    if (seen && seen.leaseUntil === undefined && seen.wakeAt !== undefined) {
      this.#remember(portal, seen.wakeAt);
      if (this.#covers(seen.wakeAt, latest, before)) return 'pending';
    }
    const view = await this.#deps.portals.touch(portal);
    const now = this.#deps.clock.now();
    if (view.leaseUntil !== undefined && view.leaseUntil >= now) return 'holder';
    const lost = view.wakeAt !== undefined && view.wakeAt < now - WAKE_OVERDUE_MS;
    if (view.wakeAt !== undefined && view.wakeAt <= Math.max(latest, now) && !lost) {
      // Set with no holder on the item: by an election or a release, each followed by its send.
      if (view.leaseUntil === undefined) this.#remember(portal, view.wakeAt);
      return 'pending';
    }
    const wakeAt = Math.max(at, now);
    if (!(await this.#deps.portals.electWake(portal, wakeAt, lost ? view.wakeAt : undefined)))
      return 'pending';
    return this.#send(portal, wakeAt);
  }

  /**
   * A queued wake-up at `wakeAt` takes care of a merge made now that may wait until `latest`: it
   * comes no later, and an index lag or more after the merge, so its reconcile's query sees it.
   */
  #covers(wakeAt: number, latest: number, now: number): boolean {
    return wakeAt <= latest && wakeAt >= now + this.#lag();
  }

  #lag(): number {
    return this.#deps.indexLagMs ?? INDEX_LAG_MS;
  }

  /**
   * After a holder let the portal go with `wakeAt` as its next wake time (none: nothing left):
   * sends that wake-up, and looks again soon when a merge came too close to the run's last query of
   * the dirty index (`queriedAt`) to be sure the query saw it. `released` is the item as the release
   * found it; undefined when the lease had passed to another holder, who then looks after it.
   */
  async afterRelease(
    portal: string,
    wakeAt: number | undefined,
    released: PortalView | undefined,
    queriedAt: number,
  ): Promise<void> {
    if (!released) return;
    const lag = this.#lag();
    // A merge after the run's last query (or within the index's lag of it) may be missing from it.
    const touched = released.touchedAt;
    const late = touched !== undefined && (lag > 0 ? touched >= queriedAt - lag : touched > queriedAt);
    const recheck = this.#deps.clock.now() + lag;
    if (late && (wakeAt === undefined || recheck < wakeAt)) {
      // The look again finds what the run left too, and sets the later wake-up itself.
      if (await this.#deps.portals.electWake(portal, recheck)) await this.#send(portal, recheck);
      return;
    }
    if (wakeAt !== undefined) await this.#send(portal, wakeAt);
  }

  /** Puts an elected wake-up on the queue; a refusal leaves it to the sweep (the item names it). */
  async #send(portal: string, at: number): Promise<Scheduled> {
    try {
      const refused = await this.#deps.sender.send([{ portal, at }]);
      if (refused.length === 0) {
        this.#remember(portal, at);
        return 'sent';
      }
    } catch {
      // Not configured or unreachable: the same as refused.
    }
    logger.warn('The portal work queue did not take a wake-up; the sweep sends it once overdue', {
      portal,
      wakeAt: new Date(at).toISOString(),
    });
    return 'unsent';
  }
}
