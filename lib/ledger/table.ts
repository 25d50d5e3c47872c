/**
 * The ledger's DynamoDB table, defined once: the CloudFormation resource (infra/ledger.yml) and the
 * local table (dynalite in `npm start` and the tests) are both checked against this definition.
 *
 * Items:
 * - message `pk = msg#<portal>#<botId>#<messageId>`: desired state, applied version, bookkeeping;
 * - portal  `pk = portal#<portal>`: the reconcile lease, the rate bucket, circuit and operating-time
 *   book handed from holder to holder, the OAuth refresh lock, and the portal's next wake-up;
 * - idempotency key `pk = idem#<portal>#<sha256>`.
 *
 * Two sparse indexes:
 * - `dirty` holds only messages whose desired state is not applied yet: its key attributes are
 *   present while the message is dirty; sorted by `dueAt`, a query for `dueAt < now` gives the
 *   messages that may be sent now, most overdue first.
 * - `wakeups` holds only portals someone must look at again (`wakeAt`: a wake-up on the portal work
 *   queue, or the end of a holder's lease); spread over a few shards, sorted by `wakeAt`, a query
 *   for `wakeAt < now - grace` gives the portals whose wake-up is overdue: the sweep's whole job.
 */
export const LEDGER_KEY = 'pk';
export const DIRTY_INDEX = 'dirty';
export const DIRTY_PORTAL = 'dirtyPortal';
/** When the dirty message may be applied next (epoch ms): the index's sort key, so a query finds the due ones. */
export const DUE_AT = 'dueAt';
export const WAKE_INDEX = 'wakeups';
/** The wake-up index's partition: `w<n>`, one of `WAKE_SHARDS`, drawn from the portal. */
export const WAKE_SHARD = 'wakeShard';
/** When the portal must be looked at again (epoch ms): the wake-up index's sort key. */
export const WAKE_AT = 'wakeAt';
/**
 * Shards of the wake-up index: every portal's wake-up writes land on one of them, so that no single
 * index partition takes the whole fleet's writes (about 1,000 a second each).
 */
export const WAKE_SHARDS = 16;
/** Epoch seconds after which DynamoDB may delete an idle item (declared in the template only). */
export const TTL_ATTRIBUTE = 'ttl';

export const LEDGER_TABLE = {
  BillingMode: 'PAY_PER_REQUEST',
  AttributeDefinitions: [
    { AttributeName: LEDGER_KEY, AttributeType: 'S' },
    { AttributeName: DIRTY_PORTAL, AttributeType: 'S' },
    { AttributeName: DUE_AT, AttributeType: 'N' },
    { AttributeName: WAKE_SHARD, AttributeType: 'S' },
    { AttributeName: WAKE_AT, AttributeType: 'N' },
  ],
  KeySchema: [{ AttributeName: LEDGER_KEY, KeyType: 'HASH' }],
  GlobalSecondaryIndexes: [
    {
      IndexName: DIRTY_INDEX,
      KeySchema: [
        { AttributeName: DIRTY_PORTAL, KeyType: 'HASH' },
        { AttributeName: DUE_AT, KeyType: 'RANGE' },
      ],
      Projection: { ProjectionType: 'KEYS_ONLY' },
    },
    {
      IndexName: WAKE_INDEX,
      KeySchema: [
        { AttributeName: WAKE_SHARD, KeyType: 'HASH' },
        { AttributeName: WAKE_AT, KeyType: 'RANGE' },
      ],
      Projection: { ProjectionType: 'KEYS_ONLY' },
    },
  ],
} as const;
