import { createHash } from 'node:crypto';
import { type OperatingBook, parseOperatingBook } from '../pacing/operating-budget.ts';
import type { LedgerTable } from './access.ts';
import { portalPk } from './codec.ts';
import { TTL_ATTRIBUTE, WAKE_AT, WAKE_SHARD, WAKE_SHARDS } from './table.ts';

/**
 * The portal item (`portal#<portal>`): what every container shares about one portal. Each write is
 * one conditional UpdateItem whose condition is named below; the timeline of the lease:
 *
 *   take ──(renew before each call that would outlive it)── release
 *     │ leaseOwner, leaseUntil, callsStartBy        │ bucketEmptyAt, circuit, operating, wakeAt
 *     │ wakeAt = leaseUntil (the watchdog)           │ (the next wake-up, or none)
 *
 * and of the wake-up: ingest touches the item (`touchedAt`) after every merge; while no live lease
 * and no earlier wake-up is pending it elects one (`wakeAt`) and puts it on the portal work queue.
 * `wakeAt` present means someone will look at the portal by then: a queued wake-up, or a holder
 * (whose lease end it is). The sweep looks for the ones long past.
 */

/** A portal lease asked for: refused, or taken with what the previous holder left on the portal item. */
export interface LeaseTaken {
  acquired: boolean;
  /** When the previous holder's rate bucket empties (epoch ms). */
  bucketEmptyAt?: number | undefined;
  /**
   * The latest start its holder allowed its calls, when it did not release the lease (it died or
   * overran): a call it may have started can land until this plus the settle window.
   */
  callsStartBy?: number | undefined;
  /** The portal's overload circuit as the previous holder left it. */
  circuit?: { openUntil: number; opens: number } | undefined;
  /** The portal's operating-time use per method, as the previous holder left it. */
  operating?: OperatingBook | undefined;
  /** When the lease was last given up, and by whom (a holder's calls had all ended by then). */
  releasedAt?: number | undefined;
  releasedBy?: string | undefined;
  /** It was taken over from a holder whose lease ran out without a release (it died, or overran). */
  fromExpiredHolder?: boolean | undefined;
  /** The taker held it already (a renewal): nobody else held it in between. */
  renewed?: boolean | undefined;
  /** The last merge into the portal's messages (epoch ms), as the item said before this write. */
  touchedAt?: number | undefined;
  /** The portal's wake time before this write (a pending wake-up, or the previous holder's lease end). */
  wakeAt?: number | undefined;
  /** When the portal's last call started (epoch ms), as its last holder left it. */
  lastCallAt?: number | undefined;
}

/** What a holder leaves on the portal item for the next one. */
export interface HandOver {
  /** When the holder's rate bucket empties (epoch ms). */
  bucketEmptyAt?: number | undefined;
  /** A dead holder's latest call start, still in doubt: left for the next holder instead of cleared. */
  callsStartBy?: number | undefined;
  /** The portal's overload circuit as the holder leaves it; `null`: closed (cleared). */
  circuit?: { openUntil: number; opens: number } | null | undefined;
  /** The portal's operating-time use per method (baskets still in the window). */
  operating?: OperatingBook | undefined;
  /** When the holder's last call started (epoch ms). */
  lastCallAt?: number | undefined;
}

/** The scheduling view of a portal item, as one write left it. */
export interface PortalView {
  leaseOwner?: string | undefined;
  leaseUntil?: number | undefined;
  /** The pending wake-up's time, or the live holder's lease end (epoch ms). */
  wakeAt?: number | undefined;
  touchedAt?: number | undefined;
  /** When the portal's last call started (epoch ms). */
  lastCallAt?: number | undefined;
}

/** The wake-up index shard of a portal. */
export function wakeShard(portal: string): string {
  return `w${createHash('sha256').update(portal).digest().readUInt32BE(0) % WAKE_SHARDS}`;
}

function numberOf(item: Record<string, unknown> | undefined, name: string): number | undefined {
  const value = item?.[name];
  return typeof value === 'number' ? value : undefined;
}

/** The scheduling view of a portal item as read (an empty view when there is none). */
export function portalView(item: Record<string, unknown> | undefined): PortalView {
  const owner = item?.leaseOwner;
  return {
    leaseOwner: typeof owner === 'string' ? owner : undefined,
    leaseUntil: numberOf(item, 'leaseUntil'),
    wakeAt: numberOf(item, WAKE_AT),
    touchedAt: numberOf(item, 'touchedAt'),
    lastCallAt: numberOf(item, 'lastCallAt'),
  };
}

// Conditions, by name.
/** Nobody holds the lease, or its holder's time is up, or the asker holds it (a renewal). */
const LEASE_FREE_OR_MINE = 'attribute_not_exists(leaseUntil) OR leaseUntil < :now OR leaseOwner = :owner';
const LEASE_MINE = 'leaseOwner = :owner';
/** No live holder: a holder looks at the portal again itself before it lets go. */
const NO_LIVE_HOLDER = '(attribute_not_exists(leaseUntil) OR leaseUntil < :now)';
/** No wake-up pending, or only one later than the asked time. */
const NO_EARLIER_WAKE = `(attribute_not_exists(#wake) OR #wake > :at)`;
const REFRESH_LOCK_FREE_OR_MINE =
  'attribute_not_exists(oauthLockUntil) OR oauthLockUntil < :now OR oauthLockOwner = :owner';

/** The portal items of the ledger table. */
export class PortalItems {
  readonly #table: LedgerTable;

  constructor(table: LedgerTable) {
    this.#table = table;
  }

  /** The portal's scheduling view (a strongly consistent read; for views and tests). */
  async view(portal: string): Promise<PortalView & { wakeShard?: string | undefined }> {
    const item = await this.#table.get(portalPk(portal), 'read a portal');
    return {
      ...portalView(item),
      wakeShard: typeof item?.[WAKE_SHARD] === 'string' ? item[WAKE_SHARD] : undefined,
    };
  }

  /** Records a merge into the portal's messages; resolves with the item as it is now. */
  async touch(portal: string): Promise<PortalView> {
    const now = this.#table.now();
    const answer = await this.#table.update(
      portalPk(portal),
      {
        UpdateExpression: 'SET touchedAt = :now, #ttl = :ttl',
        ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE },
        ExpressionAttributeValues: { ':now': now, ':ttl': this.#table.ttl(now) },
        ReturnValues: 'ALL_NEW',
      },
      'record a merge on the portal',
    );
    return portalView(answer?.Attributes);
  }

  /**
   * Elects the caller to send the portal's wake-up for `at`: true when no live holder and no
   * earlier wake-up stood in the way (or, with `replacing`, the wake-up still was that one: an
   * overdue one given up for lost). The caller then puts the wake-up on the portal work queue.
   */
  async electWake(portal: string, at: number, replacing?: number): Promise<boolean> {
    const now = this.#table.now();
    const answer = await this.#table.update(
      portalPk(portal),
      {
        UpdateExpression: 'SET #wake = :at, #shard = :shard, #ttl = :ttl',
        ConditionExpression: `${NO_LIVE_HOLDER} AND ${replacing === undefined ? NO_EARLIER_WAKE : '#wake = :seen'}`,
        ExpressionAttributeNames: { '#wake': WAKE_AT, '#shard': WAKE_SHARD, '#ttl': TTL_ATTRIBUTE },
        ExpressionAttributeValues: {
          ':at': at,
          ':now': now,
          ':shard': wakeShard(portal),
          ':ttl': this.#table.ttl(now),
          ...(replacing === undefined ? {} : { ':seen': replacing }),
        },
      },
      'elect the portal’s wake-up',
    );
    return answer !== undefined;
  }

  /**
   * Moves the portal's wake time from `seen` (as a look without the lease read it; undefined: none)
   * to `at` (undefined: nothing left to do), while no live holder has the portal and nobody moved
   * it meanwhile. Resolves with the item as it was (its `touchedAt` says whether a merge came during
   * the look), or undefined when refused: a holder, or whoever set the other wake time, looks next.
   */
  async moveWake(
    portal: string,
    seen: number | undefined,
    at: number | undefined,
  ): Promise<PortalView | undefined> {
    const now = this.#table.now();
    const answer = await this.#table.update(
      portalPk(portal),
      {
        UpdateExpression:
          at === undefined ? 'REMOVE #wake, #shard' : 'SET #wake = :at, #shard = :shard, #ttl = :ttl',
        ConditionExpression: `${NO_LIVE_HOLDER} AND ${seen === undefined ? 'attribute_not_exists(#wake)' : '#wake = :seen'}`,
        ExpressionAttributeNames: {
          '#wake': WAKE_AT,
          '#shard': WAKE_SHARD,
          ...(at === undefined ? {} : { '#ttl': TTL_ATTRIBUTE }),
        },
        ExpressionAttributeValues: {
          ':now': now,
          ...(seen === undefined ? {} : { ':seen': seen }),
          ...(at === undefined
            ? {}
            : { ':at': at, ':shard': wakeShard(portal), ':ttl': this.#table.ttl(now) }),
        },
        ReturnValues: 'ALL_OLD',
      },
      'move the portal’s wake-up',
    );
    return answer ? portalView(answer.Attributes) : undefined;
  }

  /**
   * Takes (or renews) the portal's reconcile lease until `untilMs`, and makes the lease's end the
   * portal's wake time (a watchdog: if the holder dies, the sweep finds it overdue). Resolves with
   * what the previous holder left, or `acquired: false` when another owner holds it.
   */
  async acquireLease(
    portal: string,
    owner: string,
    untilMs: number,
    /**
     * The latest time a call under this lease will start (the holder renews before a later one):
     * kept until the lease is released, so a crash leaves it for the next holder to wait out.
     */
    callsStartBy?: number,
  ): Promise<LeaseTaken> {
    const now = this.#table.now();
    const answer = await this.#table.update(
      portalPk(portal),
      {
        UpdateExpression: `SET leaseOwner = :owner, leaseUntil = :until, #wake = :until, #shard = :shard, #ttl = :ttl${callsStartBy === undefined ? '' : ', callsStartBy = :call'}`,
        ConditionExpression: LEASE_FREE_OR_MINE,
        ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE, '#wake': WAKE_AT, '#shard': WAKE_SHARD },
        ExpressionAttributeValues: {
          ':owner': owner,
          ':until': untilMs,
          ':now': now,
          ':shard': wakeShard(portal),
          ':ttl': this.#table.ttl(now),
          ...(callsStartBy === undefined ? {} : { ':call': callsStartBy }),
        },
        // What the previous holder left: its bucket, and the latest call start it did not clear (it died).
        ReturnValues: 'ALL_OLD',
      },
      'take the portal lease',
    );
    if (!answer) return { acquired: false };
    const old = answer.Attributes;
    const circuitUntil = numberOf(old, 'circuitUntil');
    const handed = {
      acquired: true,
      bucketEmptyAt: numberOf(old, 'bucketEmptyAt'),
      circuit:
        circuitUntil === undefined
          ? undefined
          : { openUntil: circuitUntil, opens: numberOf(old, 'circuitOpens') ?? 1 },
      operating: old?.operating === undefined ? undefined : parseOperatingBook(old.operating),
      touchedAt: numberOf(old, 'touchedAt'),
      wakeAt: numberOf(old, WAKE_AT),
      lastCallAt: numberOf(old, 'lastCallAt'),
    };
    // Our own lease renewed: any call start on it is our own.
    const previousOwner = old?.leaseOwner;
    if (previousOwner === owner) return { ...handed, renewed: true };
    const releasedBy = old?.releasedBy;
    return {
      ...handed,
      callsStartBy: numberOf(old, 'callsStartBy'),
      releasedAt: numberOf(old, 'releasedAt'),
      releasedBy: typeof releasedBy === 'string' ? releasedBy : undefined,
      fromExpiredHolder: previousOwner !== undefined,
    };
  }

  /**
   * Gives the lease up, leaving the portal's rate bucket, circuit and operating-time book for the
   * next holder, and the portal's next wake time (`wakeAt`; none when nothing is left to do). Every
   * call of the holder has its outcome recorded by then. Resolves with the item as it was (its
   * `touchedAt` says whether a merge came during the run), or undefined when the lease was no longer
   * the owner's (it ran out and another owner took it: nothing of ours to give up).
   */
  async releaseLease(
    portal: string,
    owner: string,
    handOver: HandOver = {},
    wakeAt?: number,
  ): Promise<PortalView | undefined> {
    const { bucketEmptyAt, callsStartBy, circuit, operating, lastCallAt } = handOver;
    const now = this.#table.now();
    const sets = [
      'releasedAt = :releasedAt',
      'releasedBy = :owner',
      ...(bucketEmptyAt === undefined ? [] : ['bucketEmptyAt = :emptyAt']),
      ...(callsStartBy === undefined ? [] : ['callsStartBy = :call']),
      ...(circuit ? ['circuitUntil = :circuitUntil', 'circuitOpens = :circuitOpens'] : []),
      ...(operating === undefined ? [] : ['operating = :operating']),
      ...(lastCallAt === undefined ? [] : ['lastCallAt = :lastCall']),
      ...(wakeAt === undefined ? [] : ['#wake = :wake', '#shard = :shard']),
    ];
    const removes = [
      'leaseOwner',
      'leaseUntil',
      ...(callsStartBy === undefined ? ['callsStartBy'] : []),
      ...(circuit === null ? ['circuitUntil', 'circuitOpens'] : []),
      ...(wakeAt === undefined ? ['#wake', '#shard'] : []),
    ];
    const answer = await this.#table.update(
      portalPk(portal),
      {
        UpdateExpression: `SET ${sets.join(', ')} REMOVE ${removes.join(', ')}`,
        ConditionExpression: LEASE_MINE,
        ExpressionAttributeNames: { '#wake': WAKE_AT, '#shard': WAKE_SHARD },
        ExpressionAttributeValues: {
          ':owner': owner,
          ':releasedAt': now,
          ...(bucketEmptyAt === undefined ? {} : { ':emptyAt': bucketEmptyAt }),
          ...(callsStartBy === undefined ? {} : { ':call': callsStartBy }),
          ...(circuit ? { ':circuitUntil': circuit.openUntil, ':circuitOpens': circuit.opens } : {}),
          ...(operating === undefined ? {} : { ':operating': operating }),
          ...(lastCallAt === undefined ? {} : { ':lastCall': lastCallAt }),
          ...(wakeAt === undefined ? {} : { ':wake': wakeAt, ':shard': wakeShard(portal) }),
        },
        ReturnValues: 'ALL_OLD',
      },
      'release the portal lease',
    );
    return answer ? portalView(answer.Attributes) : undefined;
  }

  /**
   * Takes the portal's OAuth refresh lock until `untilMs` (the gateway's fleet-wide single flight).
   * Lives on the portal item beside the reconcile lease, and is independent of it.
   */
  async acquireRefreshLock(portal: string, owner: string, untilMs: number): Promise<boolean> {
    const now = this.#table.now();
    const answer = await this.#table.update(
      portalPk(portal),
      {
        UpdateExpression: 'SET oauthLockOwner = :owner, oauthLockUntil = :until, #ttl = :ttl',
        ConditionExpression: REFRESH_LOCK_FREE_OR_MINE,
        ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE },
        ExpressionAttributeValues: {
          ':owner': owner,
          ':until': untilMs,
          ':now': now,
          ':ttl': this.#table.ttl(now),
        },
      },
      'take the OAuth refresh lock',
    );
    return answer !== undefined;
  }

  async releaseRefreshLock(portal: string, owner: string): Promise<void> {
    await this.#table.update(
      portalPk(portal),
      {
        UpdateExpression: 'REMOVE oauthLockOwner, oauthLockUntil',
        ConditionExpression: 'oauthLockOwner = :owner',
        ExpressionAttributeValues: { ':owner': owner },
      },
      'release the OAuth refresh lock',
    );
  }
}
