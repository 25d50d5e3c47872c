import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PortSetting } from './config.ts';

/** A port the stack needs is taken (or not allowed); the message names the variable that changes it. */
export class PortUnavailableError extends Error {
  override name = 'PortUnavailableError';
  readonly setting: PortSetting;

  constructor(setting: PortSetting, reason: 'in-use' | 'denied', next = 0) {
    const problem = reason === 'in-use' ? 'is already in use' : 'may not be opened by this user';
    super(
      `Port ${setting.port} on 127.0.0.1 (${setting.what}) ${problem}. ` +
        `Stop whatever holds it, or choose another port: ${setting.variable}=${next} npm start ` +
        `(${setting.variable}=0 picks a free one).`,
    );
    this.setting = setting;
  }
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Runs a service's start function on its configured port, turning a bind failure into a clear
 * error that suggests a port free now and none of the stack's own (`stack`: every port it uses).
 */
export async function onPort<T>(
  setting: PortSetting,
  start: (port: number) => Promise<T>,
  stack: readonly PortSetting[] = [],
): Promise<T> {
  try {
    return await start(setting.port);
  } catch (error) {
    const code = errorCode(error);
    if (code === 'EADDRINUSE' || code === 'EACCES') {
      const next = await freePortAfter(setting.port, new Set(stack.map((other) => other.port)));
      throw new PortUnavailableError(setting, code === 'EADDRINUSE' ? 'in-use' : 'denied', next);
    }
    throw error;
  }
}

/** The first port after `port` (up to 50 on) that is free now and not `reserved`; 0 (any) if none is. */
async function freePortAfter(port: number, reserved: ReadonlySet<number>): Promise<number> {
  for (let candidate = Math.max(port, 1023) + 1; candidate <= Math.min(65_535, port + 50); candidate += 1) {
    if (reserved.has(candidate)) continue;
    const probe = createServer();
    const bound = await listen(probe, candidate).then(
      () => true,
      () => false,
    );
    if (bound) {
      await closeServer(probe);
      return candidate;
    }
  }
  return 0;
}

/** Listens on 127.0.0.1 and resolves with the port actually bound. */
export function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Stops accepting, drops idle and open connections (keep-alive, event streams) and waits for the close. */
export function closeServer(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
}
