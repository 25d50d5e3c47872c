/**
 * The ledger's DynamoDB table, defined once: the CloudFormation resource (infra/ledger.yml) and the
 * local table (dynalite in `npm start` and the tests) are both checked against this definition.
 *
 * Items:
 * - message `pk = msg#<portal>#<botId>#<messageId>`: desired state, applied version, bookkeeping;
 * - portal  `pk = portal#<portal>`: the reconcile lease (and, later, fleet-wide portal state).
 *
 * The sparse index `dirty` holds only messages whose desired state is not applied yet: its key
 * attributes are present while the message is dirty and removed once it is applied or failed;
 * sorted by `dueAt`, a query for `dueAt <= now` gives the messages that may be sent now, most overdue first.
 */
export const LEDGER_KEY = 'pk';
export const DIRTY_INDEX = 'dirty';
export const DIRTY_PORTAL = 'dirtyPortal';
/** When the dirty message may be applied next (epoch ms): the index's sort key, so a query finds the due ones. */
export const DUE_AT = 'dueAt';
/** Epoch seconds after which DynamoDB may delete an idle item (declared in the template only). */
export const TTL_ATTRIBUTE = 'ttl';

export const LEDGER_TABLE = {
  BillingMode: 'PAY_PER_REQUEST',
  AttributeDefinitions: [
    { AttributeName: LEDGER_KEY, AttributeType: 'S' },
    { AttributeName: DIRTY_PORTAL, AttributeType: 'S' },
    { AttributeName: DUE_AT, AttributeType: 'N' },
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
  ],
} as const;
