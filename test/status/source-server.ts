import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenOnLoopback } from '../support/loopback.ts';

export interface SourceServer {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  /** Requests received so far, in order. */
  requests: Array<{ method: string; path: string; headers: IncomingMessage['headers'] }>;
  /** Per `/huge-stream` request, once it closed: whether the client hung up before its end. */
  hungUp: boolean[];
  close(): Promise<void>;
}

type Route = (req: IncomingMessage, res: ServerResponse, url: URL, hungUp: boolean[]) => void;

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const routes: Record<string, Route> = {
  '/summary.json': (_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ok: true, checks: { passed: 12, total: 12 }, service: { name: 'api' } }));
  },
  '/array.json': (_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify([{ name: 'api' }, { name: 'db' }]));
  },
  '/echo': (req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ method: req.method, headers: req.headers }));
  },
  '/status': (_req, res, url) => {
    res.statusCode = Number(url.searchParams.get('code') ?? 200);
    res.setHeader('content-type', 'application/json');
    res.end('{"ok":false}');
  },
  '/html': (_req, res) => {
    res.setHeader('content-type', 'text/html');
    res.end('<html><body>maintenance</body></html>');
  },
  // Chunked, no content-length: only counting bytes while reading can catch it.
  '/huge-stream': (_req, res, _url, hungUp) => {
    res.setHeader('content-type', 'application/json');
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let sent = 0;
    // 64 MB, far more than loopback buffers hold: a client that stops reading hangs up before the end.
    res.once('close', () => hungUp.push(!res.writableFinished));
    const pump = () => {
      // Gives up after 64 MB so a client that never stops reading still finishes.
      while (sent < 64 * 1024 * 1024 && !res.destroyed) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  },
  '/huge-declared': (_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.setHeader('content-length', String(2 * 1024 * 1024));
    res.write('{"padding":"');
  },
  '/slow-headers': (_req, res, url) => {
    const ms = Number(url.searchParams.get('ms') ?? 5_000);
    void delay(ms).then(() => {
      if (!res.destroyed) res.end('{"late":true}');
    });
  },
  '/slow-body': (_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.write('{"partial":');
  },
};

/** A local status source on 127.0.0.1 with a route per behaviour under test. */
export async function startSourceServer(): Promise<SourceServer> {
  const requests: SourceServer['requests'] = [];
  const hungUp: boolean[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    requests.push({ method: req.method ?? '', path: url.pathname, headers: req.headers });
    const route = routes[url.pathname];
    if (route) route(req, res, url, hungUp);
    else {
      res.statusCode = 404;
      res.end();
    }
  });
  const port = await listenOnLoopback(server);
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    hungUp,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

/** A loopback port with nothing listening on it (bound, then released). */
export async function unusedPort(): Promise<number> {
  const server = createServer();
  const port = await listenOnLoopback(server);
  server.close();
  await once(server, 'close');
  return port;
}
