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

export class WakeSchedule {
  readonly #deps: WakeScheduleDeps;

  constructor(deps: WakeScheduleDeps) {
    this.#deps = deps;
  }

  /**
   * After edits were merged into the portal's messages, the earliest of which is due at `due`
   * (epoch ms; at once when past): records the merge on the portal item and makes sure a wake-up
   * comes by then.
   */
  async afterMerge(portal: string, due: number): Promise<Scheduled> {
    const view = await this.#deps.portals.touch(portal);
    const now = this.#deps.clock.now();
    const at = Math.max(due, now);
    if (view.leaseUntil !== undefined && view.leaseUntil >= now) return 'holder';
    const lost = view.wakeAt !== undefined && view.wakeAt < now - WAKE_OVERDUE_MS;
    if (view.wakeAt !== undefined && view.wakeAt <= at && !lost) return 'pending';
    if (!(await this.#deps.portals.electWake(portal, at, lost ? view.wakeAt : undefined))) return 'pending';
    return this.#send(portal, at);
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
    const lag = this.#deps.indexLagMs ?? INDEX_LAG_MS;
    const late = lag > 0 && released.touchedAt !== undefined && released.touchedAt >= queriedAt - lag;
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
      if (refused.length === 0) return 'sent';
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
