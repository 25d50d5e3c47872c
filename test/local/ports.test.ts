import { createServer, type Server } from 'node:http';
import { describe, expect, it } from 'vitest';
import { listen, onPort, PortUnavailableError } from '../../local/stack/ports.ts';

async function holding(port: number): Promise<Server> {
  const server = createServer();
  await listen(server, port);
  return server;
}

describe('a port of the local stack that is taken', () => {
  it('names the port and its variable, and suggests a port free now that is none of the stack’s own', async () => {
    const taken = await holding(0);
    const port = (taken.address() as { port: number }).port;
    // The stack's next port is right above the taken one (as SQS 8026 and Secrets Manager 8027 are).
    const sqs = { port, variable: 'SQS_PORT', what: 'the SQS emulator' };
    const secrets = { port: port + 1, variable: 'SECRETS_MANAGER_PORT', what: 'Secrets Manager' };
    try {
      const error = await onPort(sqs, (p) => holding(p), [sqs, secrets]).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(PortUnavailableError);
      const message = (error as Error).message;
      expect(message).toContain(`Port ${port} on 127.0.0.1 (the SQS emulator) is already in use`);
      const suggested = Number(/SQS_PORT=(\d+) npm start/.exec(message)?.[1]);
      expect(suggested).not.toBe(port);
      expect(suggested).not.toBe(port + 1);
      // Free when suggested: it binds.
      const probe = await holding(suggested);
      await new Promise((resolve) => probe.close(resolve));
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});
