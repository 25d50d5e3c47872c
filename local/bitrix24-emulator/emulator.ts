import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { CONTROL_PREFIX, handleControl } from './control.ts';
import { Engine, restRoute } from './engine.ts';
import { echoSecrets, errorReply, type HttpReply, json, parseParams, readBody, writeReply } from './http.ts';
import { canonicalMethodName } from './methods.ts';
import { checkLimits, checkShape, normaliseOptions } from './options.ts';
import { failure } from './outcome.ts';
import type {
  Bitrix24Emulator,
  BotOwner,
  BotType,
  CallRecord,
  EmulatedBot,
  EmulatedChat,
  EmulatedMessage,
  EmulatorOptions,
  Fault,
  OAuthGrant,
  RandomFaults,
  RateLimits,
  SeedMessage,
  SuccessShape,
} from './types.ts';

const TOKEN_PATH = /^\/oauth\/token\/?$/;

/**
 * Repeated slashes in the path count as one, as on a real portal: the official JS SDK joins its
 * documented `client_endpoint` (`https://{portal}/rest/`) and `/method` into `/rest//method`. Done
 * on the raw target, before URL parsing would read a leading `//` as a host.
 */
function collapseSlashes(target: string): string {
  if (!target.startsWith('/')) return target;
  const query = target.indexOf('?');
  const path = query === -1 ? target : target.slice(0, query);
  return path.replace(/\/{2,}/g, '/') + (query === -1 ? '' : target.slice(query));
}

/** The HTTP face of the engine plus the programmatic controls tests use. */
class EmulatorServer implements Bitrix24Emulator {
  readonly #engine: Engine;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #closing = new AbortController();
  #url = '';
  #echo = false;

  constructor(options: EmulatorOptions | undefined) {
    this.#engine = new Engine(normaliseOptions(options), (ms) => this.#sleep(ms));
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch(() => {
        if (!res.headersSent && !res.destroyed) writeReply(res, errorReply(failure('INTERNAL_SERVER_ERROR')));
      });
    });
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  get url(): string {
    return this.#url;
  }

  get oauthUrl(): string {
    return `${this.#url}/oauth/token/`;
  }

  async listen(): Promise<void> {
    const { port } = this.#engine.settings;
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    this.#url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.#closing.abort();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  addWebhook(w: { userId: number; code: string }): void {
    this.#engine.credentials.addWebhook(w.userId, w.code);
  }

  addOAuthApp(a: { clientId: string; clientSecret: string }): OAuthGrant {
    return this.#engine.credentials.addApp(a.clientId, a.clientSecret);
  }

  registerBot(b: { id?: number; code?: string; botToken?: string; owner: BotOwner; type?: BotType }): number {
    return this.#engine.portal.registerBot(b);
  }

  addMessage(m: SeedMessage): number {
    return this.#engine.portal.addMessage(m);
  }

  getMessage(id: number): EmulatedMessage | undefined {
    return this.#engine.portal.snapshot(id);
  }

  messages(): EmulatedMessage[] {
    return this.#engine.portal.snapshots();
  }

  bots(): EmulatedBot[] {
    return this.#engine.portal.botSnapshots();
  }

  chats(): EmulatedChat[] {
    return this.#engine.portal.chatSnapshots();
  }

  get calls(): readonly CallRecord[] {
    return this.#engine.calls;
  }

  clearCalls(): void {
    this.#engine.calls = [];
  }

  setSuccessShape(shape: SuccessShape): void {
    this.#engine.successShape = checkShape(shape);
  }

  setLimits(limits: RateLimits | null): void {
    this.#engine.bucket.setLimits(checkLimits(limits));
  }

  bucketLevel(): number {
    return this.#engine.bucket.level();
  }

  expireAccessTokens(): void {
    this.#engine.credentials.expireAccessTokens();
  }

  revokeRefreshTokens(): void {
    this.#engine.credentials.revokeRefreshTokens();
  }

  inject(fault: Fault, times = 1): void {
    this.#engine.faults.inject(fault, times);
  }

  setRandomFaults(f: RandomFaults | null): void {
    this.#engine.faults.setRandom(f);
  }

  disallowInBatch(method: string, mode: 'command' | 'call'): void {
    this.#engine.disallowed.set(canonicalMethodName(method).toLowerCase(), mode);
  }

  echoCredentials(on: boolean): void {
    this.#echo = on;
  }

  reset(): void {
    this.#engine.faults.clear();
    this.#engine.calls = [];
    this.#engine.bucket.empty();
    this.#engine.operating.clear();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(collapseSlashes(req.url ?? '/'), this.#url);
    const request = { url, body: await readBody(req), contentType: req.headers['content-type'] };
    let reply: HttpReply;
    if (url.pathname.startsWith(CONTROL_PREFIX)) {
      const parsed = parseParams(new URL(url.pathname, this.#url), request.body, 'application/json');
      const body = 'params' in parsed ? parsed.params : undefined;
      reply = handleControl(this, req.method ?? 'GET', url.pathname, body);
    } else if (TOKEN_PATH.test(url.pathname)) {
      reply = await this.#engine.oauth(request, this.#url);
      if (this.#echo) reply = echoSecrets(reply, this.#engine.secrets.values());
    } else {
      const route = restRoute(url.pathname);
      reply = route
        ? await this.#engine.rest(route, request)
        : json(404, { error: 'NOT_FOUND', error_description: 'Unknown path' });
      if (this.#echo) reply = echoSecrets(reply, this.#engine.secrets.values());
    }
    if (!this.#closing.signal.aborted) writeReply(res, reply);
  }

  /** Waits for a 'slow' fault, but never past close(). */
  #sleep(ms: number): Promise<void> {
    const signal = this.#closing.signal;
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }
}

/** Starts a Bitrix24 portal emulator on 127.0.0.1 (a free port unless `port` is given). */
export async function startBitrix24Emulator(options?: EmulatorOptions): Promise<Bitrix24Emulator> {
  const emulator = new EmulatorServer(options);
  await emulator.listen();
  return emulator;
}
