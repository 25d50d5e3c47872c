// The local DynamoDB in a process of its own (see startLocalDynamoDbProcess): it tells its parent
// the port over IPC and exits when the parent disconnects.
import { startLocalDynamoDb } from './dynamodb.ts';

const db = await startLocalDynamoDb();
process.on('disconnect', () => {
  void db.close().finally(() => process.exit(0));
});
process.send?.({ port: db.port });
