import { once } from 'node:events';
import type { AddressInfo, Server } from 'node:net';

/** Starts `server` on 127.0.0.1 (port 0: a free one) and resolves with its port; rejects on a listen error. */
export async function listenOnLoopback(server: Server, port = 0): Promise<number> {
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}
