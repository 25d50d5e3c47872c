import { CreateTableCommand, type DynamoDBClient, waitUntilTableExists } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { LEDGER_TABLE } from '../lib/ledger/table.ts';
import { listenOnLoopback } from './listen.ts';

export interface LocalDynamoDb {
  /** `http://127.0.0.1:<port>`: the endpoint for the SDK (`AWS_ENDPOINT_URL_DYNAMODB`). */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** A real DynamoDB implementation (dynalite, in memory) served on loopback only. */
export async function startLocalDynamoDb(options: { port?: number } = {}): Promise<LocalDynamoDb> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const port = await listenOnLoopback(server, options.port ?? 0);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** Creates the ledger table from the definition the template uses, and waits until it is active. */
export async function createLedgerTable(client: DynamoDBClient, tableName: string): Promise<void> {
  await client.send(
    new CreateTableCommand({ TableName: tableName, ...structuredClone(LEDGER_TABLE) } as never),
  );
  await waitUntilTableExists({ client, maxWaitTime: 20, minDelay: 1, maxDelay: 1 }, { TableName: tableName });
}
