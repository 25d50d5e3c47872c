import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { closeServer, listen } from '../ports.ts';
import { type SandboxLedger, withLedger } from './ledger-view.ts';
import { type Fragments, renderFragments, renderPage } from './page.ts';
import type { ActionResult, SandboxActions, SandboxState } from './state.ts';

/**
 * The data of the demo status source (`GET /demo/deploy-status.json`): a build that is green or red,
 * flipped from the page so that the scheduled status message has something to show.
 */
export class DemoSource {
  ok = true;

  data(): { ok: boolean; checks: { passed: number; total: number } } {
    return { ok: this.ok, checks: { passed: this.ok ? 12 : 9, total: 12 } };
  }
}

export interface SandboxServerOptions {
  port: number;
  getState(): Promise<SandboxState>;
  actions: SandboxActions;
  /** Served at /demo/deploy-status.json when set (the emulator's demo). */
  demoSource?: DemoSource;
  /** When set, each bot message carries the ledger's view of it (desired state, fate, versions). */
  ledger?: SandboxLedger;
}

export interface SandboxServer {
  readonly url: string;
  readonly port: number;
  /** Something changed: push the page's parts to open pages now rather than at the next tick. */
  notify(): void;
  close(): Promise<void>;
}

const TICK_MS = 400;
const KEEP_ALIVE_MS = 15_000;
const MAX_FORM_BYTES = 64 * 1024;

class BadRequest extends Error {
  override name = 'BadRequest';
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  let text = '';
  for await (const chunk of req) {
    text += (chunk as Buffer).toString('utf8');
    if (text.length > MAX_FORM_BYTES) throw new BadRequest('The form is too large');
  }
  return new URLSearchParams(text);
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

/** The sandbox page on 127.0.0.1: the demo chat, the queue panel, and a stream of changes. */
export async function startSandboxServer(options: SandboxServerOptions): Promise<SandboxServer> {
  const streams = new Set<ServerResponse>();
  let lastSent = '';
  let ticking = false;
  let tickAgain = false;

  async function getState(): Promise<SandboxState> {
    const state = await options.getState();
    return options.ledger ? withLedger(state, options.ledger) : state;
  }

  async function fragments(): Promise<Fragments> {
    return renderFragments(await getState(), options.demoSource);
  }

  async function tick(): Promise<void> {
    if (streams.size === 0) return;
    if (ticking) {
      tickAgain = true;
      return;
    }
    ticking = true;
    try {
      const payload = JSON.stringify(await fragments());
      if (payload !== lastSent) {
        lastSent = payload;
        for (const stream of streams) stream.write(`event: state\ndata: ${payload}\n\n`);
      }
    } catch {
      // A failed read (the stack is stopping) is simply not pushed; the next tick tries again.
    } finally {
      ticking = false;
      if (tickAgain) {
        tickAgain = false;
        void tick();
      }
    }
  }

  const ticker = setInterval(() => void tick(), TICK_MS);
  const keepAlive = setInterval(() => {
    for (const stream of streams) stream.write(': keep-alive\n\n');
  }, KEEP_ALIVE_MS);

  async function openStream(res: ServerResponse): Promise<void> {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    res.write('retry: 1000\n\n');
    streams.add(res);
    res.on('close', () => streams.delete(res));
    res.write(`event: state\ndata: ${JSON.stringify(await fragments())}\n\n`);
  }

  async function act(
    req: IncomingMessage,
    res: ServerResponse,
    run: () => Promise<ActionResult | undefined>,
  ): Promise<void> {
    let result: ActionResult;
    try {
      result = (await run()) ?? { ok: true, summary: 'Done.' };
    } catch (error) {
      result = { ok: false, summary: `Failed: ${error instanceof Error ? error.message : String(error)}` };
    }
    void tick();
    // The page's script posts with this header, stays put and shows the answer beside the form;
    // a plain form post goes back to the page.
    if (req.headers['x-sandbox-fetch']) {
      send(res, result.ok ? 200 : 502, 'application/json; charset=utf-8', JSON.stringify(result));
    } else {
      res.writeHead(303, { location: '/' }).end();
    }
  }

  /**
   * The drain switch, for the page and for curl: JSON with the switch's state after the change,
   * except for a plain HTML form post (no script), which goes back to the page.
   */
  async function drainSwitch(
    req: IncomingMessage,
    res: ServerResponse,
    change: () => Promise<ActionResult>,
  ): Promise<void> {
    let result: ActionResult;
    try {
      result = await change();
    } catch (error) {
      result = { ok: false, summary: `Failed: ${error instanceof Error ? error.message : String(error)}` };
    }
    void tick();
    const form = (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
    if (form && !req.headers['x-sandbox-fetch']) return void res.writeHead(303, { location: '/' }).end();
    const pause = (await options.getState()).drain.pause;
    send(res, 200, 'application/json; charset=utf-8', JSON.stringify({ ...result, drain: pause }));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    const route = `${req.method ?? 'GET'} ${path}`;
    const { actions, demoSource } = options;
    switch (route) {
      case 'GET /':
        return send(res, 200, 'text/html; charset=utf-8', renderPage(await getState(), demoSource));
      case 'GET /api/state':
        return send(res, 200, 'application/json; charset=utf-8', JSON.stringify(await getState()));
      case 'GET /events':
        return openStream(res);
      case 'GET /demo/deploy-status.json':
        if (!demoSource) break;
        return send(res, 200, 'application/json; charset=utf-8', JSON.stringify(demoSource.data()));
      case 'POST /demo/deploy-status':
        if (!demoSource) break;
        return act(req, res, async () => {
          demoSource.ok = !demoSource.ok;
          const refreshed = await actions.refreshStatus?.();
          return {
            ok: refreshed?.ok ?? true,
            summary:
              `The demo build is now ${demoSource.ok ? 'green' : 'red'}. ${refreshed?.summary ?? ''}`.trim(),
          };
        });
      case 'POST /demo/replay-failed':
        if (!actions.replayFailed) break;
        return act(req, res, actions.replayFailed);
      case 'POST /demo/refresh-status':
        return act(req, res, async () => actions.refreshStatus?.());
      case 'POST /demo/busy':
        if (!actions.simulateBusy) break;
        return act(req, res, actions.simulateBusy);
      case 'POST /api/drain/pause':
        if (!actions.pauseDrain) break;
        return drainSwitch(req, res, actions.pauseDrain);
      case 'POST /api/drain/resume':
        if (!actions.resumeDrain) break;
        return drainSwitch(req, res, actions.resumeDrain);
      case 'POST /demo/edit': {
        const { sendEdit } = actions;
        if (!sendEdit) break;
        const form = await readForm(req);
        const messageId = Number(form.get('messageId'));
        const text = form.get('text') ?? '';
        if (!Number.isSafeInteger(messageId) || messageId < 1 || text === '') {
          throw new BadRequest('Expected a messageId and a text');
        }
        return act(req, res, () => sendEdit({ messageId, text, async: form.get('async') === '1' }));
      }
    }
    send(res, 404, 'text/plain; charset=utf-8', `Nothing at ${route}. The sandbox page is at /.`);
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent) return void res.end();
      const message = error instanceof Error ? error.message : String(error);
      send(res, error instanceof BadRequest ? 400 : 500, 'text/plain; charset=utf-8', message);
    });
  });
  const port = await listen(server, options.port);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    notify: () => void tick(),
    async close() {
      clearInterval(ticker);
      clearInterval(keepAlive);
      for (const stream of streams) stream.end();
      streams.clear();
      await closeServer(server);
    },
  };
}
