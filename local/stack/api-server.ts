import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { type ApiActivity, summariseRequest } from './activity.ts';
import { lambdaContext } from './lambda-context.ts';
import { closeServer, listen } from './ports.ts';

/** A Lambda handler behind an API Gateway HTTP API (payload format 2.0). */
export type HttpApiHandler = (event: APIGatewayProxyEventV2, context: Context) => Promise<unknown>;

/** One function behind the API, with the routes serverless.yml gives it. */
export interface ApiFunction {
  /** The function's name, for its Lambda context and its log lines. */
  name: string;
  handler: HttpApiHandler;
  /** The function's timeout; API Gateway answers 503 when it passes. */
  timeoutMs: number;
  /**
   * Its routes, `METHOD /path` as in serverless.yml; a path may hold parameters (`{botId}`, or a
   * greedy last `{proxy+}`), handed over as `pathParameters`. Default: `$default` (every request that
   * matches no other function's route reaches this one).
   */
  routes?: readonly string[];
}

export interface ApiServerOptions {
  port: number;
  /**
   * The functions behind the API. A request matching no route is answered 404
   * `{"message":"Not Found"}` by API Gateway without invoking any function.
   */
  functions: readonly ApiFunction[];
  onActivity?: (activity: ApiActivity) => void;
}

export interface ApiServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

// API Gateway's payload limit.
const MAX_BODY_BYTES = 10 * 1024 * 1024;
// HTTP APIs hand text bodies over as they are and everything else base64-encoded.
const TEXT_TYPE = /^(text\/|application\/([\w.+-]*\+)?(json|xml|javascript|x-www-form-urlencoded))/i;

class PayloadTooLargeError extends Error {
  override name = 'PayloadTooLargeError';
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new PayloadTooLargeError();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** `12/Mar/2020:19:03:58 +0000`, API Gateway's requestContext.time. */
function gatewayTime(date: Date): string {
  const [, day, month, year, time] = date.toUTCString().split(' ');
  return `${day}/${month}/${year}:${time} +0000`;
}

function joinValues(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

/** The event API Gateway (HTTP API, payload 2.0) gives the function for this request. */
export function toHttpApiEvent(
  req: IncomingMessage,
  body: Buffer,
  requestId: string,
  now: Date,
  routeKey = '$default',
  pathParameters?: Readonly<Record<string, string>>,
): APIGatewayProxyEventV2 {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const method = req.method ?? 'GET';
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    const joined = joinValues(value);
    if (joined !== undefined && name !== 'cookie') headers[name] = joined;
  }
  const query: Record<string, string> = {};
  for (const [key, value] of url.searchParams) query[key] = key in query ? `${query[key]},${value}` : value;
  const cookies = req.headers.cookie?.split(/;\s*/).filter(Boolean);
  const contentType = headers['content-type'] ?? '';
  const isText = TEXT_TYPE.test(contentType);
  const event: APIGatewayProxyEventV2 = {
    version: '2.0',
    routeKey,
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName: headers.host ?? '127.0.0.1',
      domainPrefix: 'local',
      http: {
        method,
        path: decodeURIComponent(url.pathname),
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId,
      routeKey,
      stage: '$default',
      time: gatewayTime(now),
      timeEpoch: now.getTime(),
    },
    isBase64Encoded: body.length > 0 && !isText,
  };
  if (Object.keys(query).length > 0) event.queryStringParameters = query;
  if (pathParameters && Object.keys(pathParameters).length > 0) event.pathParameters = { ...pathParameters };
  if (cookies && cookies.length > 0) event.cookies = cookies;
  if (body.length > 0) event.body = isText ? body.toString('utf8') : body.toString('base64');
  return event;
}

interface GatewayReply {
  status: number;
  headers: Record<string, string>;
  cookies: string[];
  body: Buffer;
}

function gatewayError(status: number, message: string): GatewayReply {
  return {
    status,
    headers: { 'content-type': 'application/json' },
    cookies: [],
    body: Buffer.from(JSON.stringify({ message })),
  };
}

/** How API Gateway turns a payload 2.0 function result into an HTTP response. */
export function fromHandlerResult(result: unknown): GatewayReply {
  const structured =
    typeof result === 'object' && result !== null && 'statusCode' in result
      ? (result as {
          statusCode: unknown;
          headers?: Record<string, unknown>;
          cookies?: unknown;
          body?: unknown;
          isBase64Encoded?: unknown;
        })
      : undefined;
  if (!structured) {
    // Without a statusCode, the whole result is the JSON body of a 200.
    const body = typeof result === 'string' ? result : (JSON.stringify(result) ?? '');
    return {
      status: 200,
      headers: { 'content-type': 'application/json' },
      cookies: [],
      body: Buffer.from(body),
    };
  }
  const status = Number(structured.statusCode);
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    return gatewayError(500, 'Internal Server Error');
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(structured.headers ?? {}))
    headers[name.toLowerCase()] = String(value);
  const cookies = Array.isArray(structured.cookies) ? structured.cookies.map(String) : [];
  const text = typeof structured.body === 'string' ? structured.body : '';
  const body = structured.isBase64Encoded === true ? Buffer.from(text, 'base64') : Buffer.from(text);
  return { status, headers, cookies, body };
}

const TIMED_OUT = Symbol('timed out');

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

interface CompiledRoute {
  key: string;
  method: string;
  /** Exact paths win over parameterised ones, as in API Gateway. */
  exact: boolean;
  pattern: RegExp;
  names: string[];
  target: ApiFunction;
}

/** `GET /messages/{portal}/{botId}` as a matcher: each `{name}` one segment, `{name+}` the rest. */
function compileRoute(key: string, target: ApiFunction): CompiledRoute {
  const [method = '', path = ''] = key.split(' ');
  const names: string[] = [];
  const source = path
    .split('/')
    .map((segment) => {
      const parameter = /^\{(\w+)(\+?)\}$/.exec(segment);
      if (!parameter) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      names.push(parameter[1] as string);
      return parameter[2] ? '(.+)' : '([^/]+)';
    })
    .join('/');
  return { key, method, exact: names.length === 0, pattern: new RegExp(`^${source}$`), names, target };
}

interface Match {
  routeKey: string;
  target: ApiFunction;
  pathParameters: Record<string, string>;
}

function decodeSegment(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/**
 * The API on 127.0.0.1: each HTTP request becomes the event API Gateway would send for its route,
 * the production handler of that route runs in this process, and its result is answered the way
 * API Gateway answers it.
 */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const routes = options.functions
    .flatMap((target) => (target.routes ?? []).map((key) => compileRoute(key, target)))
    .sort((a, b) => Number(b.exact) - Number(a.exact));
  const fallback = options.functions.find((target) => target.routes === undefined);

  function match(method: string, path: string): Match | undefined {
    for (const route of routes) {
      if (route.method !== 'ANY' && route.method !== method) continue;
      const found = route.pattern.exec(path);
      if (!found) continue;
      const pathParameters = Object.fromEntries(
        route.names.map((name, i) => [name, decodeSegment(found[i + 1] as string)]),
      );
      return { routeKey: route.key, target: route.target, pathParameters };
    }
    return fallback ? { routeKey: '$default', target: fallback, pathParameters: {} } : undefined;
  }

  async function invoke(
    req: IncomingMessage,
    body: Buffer,
    requestId: string,
    now: Date,
    matched: Match | undefined,
  ): Promise<GatewayReply> {
    if (matched === undefined) return gatewayError(404, 'Not Found');
    const { target } = matched;
    try {
      const event = toHttpApiEvent(req, body, requestId, now, matched.routeKey, matched.pathParameters);
      const context = lambdaContext(target.name, target.timeoutMs);
      const result = await withTimeout(target.handler(event, context), target.timeoutMs);
      return result === TIMED_OUT ? gatewayError(503, 'Service Unavailable') : fromHandlerResult(result);
    } catch (error) {
      // What Lambda would put in the function's log: the error's name and message, not the event.
      const name = error instanceof Error ? error.name : 'Error';
      const message = error instanceof Error ? error.message : String(error);
      console.error(`${target.name} failed: ${name}: ${message}`);
      return gatewayError(500, 'Internal Server Error');
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const now = new Date();
    const requestId = randomUUID();
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    const matched = match(req.method ?? 'GET', path);
    let body: Buffer = Buffer.alloc(0);
    let reply: GatewayReply;
    try {
      body = await readBody(req);
      reply = await invoke(req, body, requestId, now, matched);
    } catch (error) {
      reply =
        error instanceof PayloadTooLargeError
          ? gatewayError(413, 'Request Entity Too Large')
          : gatewayError(400, 'Bad Request');
    }
    res.writeHead(reply.status, {
      ...reply.headers,
      ...(reply.cookies.length > 0 ? { 'set-cookie': reply.cookies } : {}),
      'content-length': reply.body.length,
      'apigw-requestid': requestId,
    });
    res.end(reply.body);
    options.onActivity?.(
      summariseRequest(
        {
          at: now.toISOString(),
          requestId,
          method: req.method ?? 'GET',
          path,
          durationMs: Math.round(performance.now() - started),
        },
        body.toString('utf8'),
        reply.status,
        reply.body.toString('utf8'),
        matched?.pathParameters,
      ),
    );
  }

  const server: Server = createServer((req, res) => void handle(req, res));
  const port = await listen(server, options.port);
  return { url: `http://127.0.0.1:${port}`, port, close: () => closeServer(server) };
}
