import type { LedgerTable } from './access.ts';
import { hostPk } from './codec.ts';
import { TTL_ATTRIBUTE } from './table.ts';

/**
 * One Bitrix24 portal, one portal key: its ledger, lease, rate bucket and circuit are kept per key,
 * so two secrets naming one portal would let an older edit sent through one overwrite a newer one
 * applied through the other. A host claim item (`host#<host>`) records which key serves the host;
 * every container renews its claim when it loads the secret. A claim not renewed for
 * `HOST_CLAIM_STALE_MS` may be taken over (a portal moved to another key).
 */
export const HOST_CLAIM_STALE_MS = 6 * 60 * 60_000;

export class HostClaims {
  readonly #table: LedgerTable;

  constructor(table: LedgerTable) {
    this.#table = table;
  }

  /** Claims `host` for `portal`: undefined when it is the portal's now, else the portal that holds it. */
  async claim(host: string, portal: string): Promise<string | undefined> {
    const now = this.#table.now();
    const answer = await this.#table.update(
      hostPk(host),
      {
        UpdateExpression: 'SET portal = :portal, claimedAt = :now, #ttl = :ttl',
        ConditionExpression: 'attribute_not_exists(portal) OR portal = :portal OR claimedAt < :stale',
        ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE },
        ExpressionAttributeValues: {
          ':portal': portal,
          ':now': now,
          ':stale': now - HOST_CLAIM_STALE_MS,
          ':ttl': this.#table.ttl(now),
        },
      },
      'claim the portal’s host',
    );
    if (answer) return undefined;
    const item = await this.#table.get(hostPk(host), 'read the portal’s host claim');
    const holder = item?.portal;
    // Gone or stale again by now: nobody else holds it; the next load claims it.
    return typeof holder === 'string' && holder !== portal ? holder : undefined;
  }
}
