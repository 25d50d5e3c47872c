import { once } from 'node:events';
import { createServer } from 'node:http';
import { listenOnLoopback } from '../support/loopback.ts';

export interface StatusServer {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  /** Serve `doc` as JSON at `/doc/<name>` from now on. */
  setDoc(name: string, doc: unknown): void;
  /** Paths requested so far, in order. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * A status source on 127.0.0.1: `/doc/<name>` serves a JSON document the test can change,
 * `/slow?ms=N` answers after N ms, `/status?code=N` answers with that HTTP status.
 */
export async function startStatusServer(): Promise<StatusServer> {
  const docs = new Map<string, string>();
  const requests: string[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    requests.push(url.pathname);
    res.setHeader('content-type', 'application/json');
    if (url.pathname.startsWith('/doc/')) {
      const doc = docs.get(url.pathname.slice('/doc/'.length));
      res.statusCode = doc === undefined ? 404 : 200;
      res.end(doc ?? '{}');
    } else if (url.pathname === '/slow') {
      const timer = setTimeout(
        () => {
          timers.delete(timer);
          if (!res.destroyed) res.end('{"ok":true}');
        },
        Number(url.searchParams.get('ms') ?? 5_000),
      );
      timers.add(timer);
    } else if (url.pathname === '/status') {
      res.statusCode = Number(url.searchParams.get('code') ?? 200);
      res.end('{}');
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  const port = await listenOnLoopback(server);
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    setDoc(name, doc) {
      docs.set(name, JSON.stringify(doc));
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
