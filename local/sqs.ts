import { buildApp } from 'fauxqs';

export interface LocalSqs {
  /** `http://127.0.0.1:<port>`: the endpoint for the AWS SDK's SQS client. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The SQS emulator (fauxqs) served on loopback only. fauxqs's own `startFauxqs` listens on every
 * interface, so its app is built here and bound to 127.0.0.1.
 */
export async function startLocalSqs(options: { port?: number } = {}): Promise<LocalSqs> {
  const app = buildApp({ logger: false });
  await app.listen({ port: options.port ?? 0, host: '127.0.0.1' });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () => app.close(),
  };
}
