import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterEach, describe, expect, it } from 'vitest';
import type { ApiActivity } from '../../local/stack/activity.ts';
import { type ApiServer, type HttpApiHandler, startApiServer } from '../../local/stack/api-server.ts';

const servers: ApiServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(
  handler: HttpApiHandler,
  options: { timeoutMs?: number; onActivity?: (a: ApiActivity) => void } = {},
): Promise<ApiServer> {
  const server = await startApiServer({
    port: 0,
    functions: [{ name: 'test', handler, timeoutMs: options.timeoutMs ?? 2_000 }],
    ...(options.onActivity ? { onActivity: options.onActivity } : {}),
  });
  servers.push(server);
  return server;
}

function capture(): { handler: HttpApiHandler; events: APIGatewayProxyEventV2[] } {
  const events: APIGatewayProxyEventV2[] = [];
  return {
    events,
    handler: async (event) => {
      events.push(event);
      return { statusCode: 200, headers: { 'Content-Type': 'application/json' }, body: '{"result":true}' };
    },
  };
}

describe('the local update API (API Gateway HTTP API, payload 2.0)', () => {
  it('turns a request into the event API Gateway sends, with lower-case headers, query and cookies', async () => {
    const { handler, events } = capture();
    const server = await serve(handler);
    await fetch(`${server.url}/rest/imbot.v2.Chat.Message.update?a=1&a=2&b=x`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-B24-Portal': 'demo', Cookie: 'k=v; t=u' },
      body: '{"botId":456}',
    });
    const event = events[0];
    expect(event).toMatchObject({
      version: '2.0',
      routeKey: '$default',
      rawPath: '/rest/imbot.v2.Chat.Message.update',
      rawQueryString: 'a=1&a=2&b=x',
      queryStringParameters: { a: '1,2', b: 'x' },
      cookies: ['k=v', 't=u'],
      body: '{"botId":456}',
      isBase64Encoded: false,
      requestContext: {
        http: { method: 'POST', path: '/rest/imbot.v2.Chat.Message.update' },
        stage: '$default',
      },
    });
    expect(event?.headers['x-b24-portal']).toBe('demo');
    expect(event?.headers['content-type']).toBe('application/json');
    expect(event?.headers.cookie).toBeUndefined();
    expect(event?.requestContext.time).toMatch(/^\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d \+0000$/);
  });

  it('hands a binary body over base64-encoded, as HTTP APIs do', async () => {
    const { handler, events } = capture();
    const server = await serve(handler);
    await fetch(server.url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: new Uint8Array([0, 1, 2, 255]),
    });
    expect(events[0]?.isBase64Encoded).toBe(true);
    expect(Buffer.from(events[0]?.body ?? '', 'base64')).toEqual(Buffer.from([0, 1, 2, 255]));
  });

  it("answers with the handler's status, headers and body, plus API Gateway's request id", async () => {
    const server = await serve(async () => ({
      statusCode: 202,
      headers: { 'Retry-After': '5', 'content-type': 'application/json' },
      body: '{"result":true,"deferred":true}',
    }));
    const response = await fetch(server.url, { method: 'POST' });
    expect(response.status).toBe(202);
    expect(response.headers.get('retry-after')).toBe('5');
    expect(response.headers.get('apigw-requestid')).toMatch(/^[0-9a-f-]{36}$/);
    expect(await response.json()).toEqual({ result: true, deferred: true });
  });

  it('answers a result without statusCode as a 200 JSON body', async () => {
    const server = await serve(async () => ({ hello: 'world' }));
    const response = await fetch(server.url);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ hello: 'world' });
  });

  it('answers 500 Internal Server Error when the handler throws', async () => {
    const server = await serve(async () => {
      throw new Error('boom');
    });
    const response = await fetch(server.url, { method: 'POST' });
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ message: 'Internal Server Error' });
  });

  it('answers 503 when the handler runs past the function timeout', async () => {
    const server = await serve(() => new Promise(() => undefined), { timeoutMs: 100 });
    const response = await fetch(server.url, { method: 'POST' });
    expect(response.status).toBe(503);
  });

  it('gives the handler a context whose remaining time counts down from the function timeout', async () => {
    let remaining = 0;
    const server = await serve(
      async (_event, context) => {
        remaining = context.getRemainingTimeInMillis();
        return { statusCode: 204, body: '' };
      },
      { timeoutMs: 1_500 },
    );
    await fetch(server.url);
    expect(remaining).toBeGreaterThan(1_000);
    expect(remaining).toBeLessThanOrEqual(1_500);
  });

  it('reports each request by ids and codes only, never the token or the text', async () => {
    const activity: ApiActivity[] = [];
    const server = await serve(
      async () => ({
        statusCode: 202,
        body: '{"result":true,"deferred":true,"editId":"e-1","reason":"QUERY_LIMIT_EXCEEDED"}',
      }),
      { onActivity: (a) => activity.push(a) },
    );
    await fetch(`${server.url}/rest/imbot.v2.Chat.Message.update`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"botId":456,"botToken":"tok_s3cr3t","messageId":"789","fields":{"message":"hello"}}',
    });
    await expect.poll(() => activity.length).toBe(1);
    expect(activity[0]).toMatchObject({
      status: 202,
      outcome: 'deferred',
      botId: 456,
      messageId: 789,
      editId: 'e-1',
      reason: 'QUERY_LIMIT_EXCEEDED',
    });
    expect(JSON.stringify(activity)).not.toMatch(/s3cr3t|hello/);
  });
});

describe('the local API with the routes of serverless.yml', () => {
  const routes = ['POST /rest/imbot.v2.Chat.Message.update', 'POST /rest/imbot.v2.Chat.Message.update.json'];
  const fateRoute = 'GET /messages/{portal}/{botId}/{messageId}';

  async function serveRoutes(functions: Parameters<typeof startApiServer>[0]['functions']) {
    const server = await startApiServer({ port: 0, functions });
    servers.push(server);
    return server;
  }

  it('invokes the function with the matched route key', async () => {
    const { handler, events } = capture();
    const server = await serveRoutes([{ name: 't', handler, timeoutMs: 1_000, routes }]);
    await fetch(`${server.url}/rest/imbot.v2.Chat.Message.update.json`, { method: 'POST', body: '{}' });
    expect(events[0]?.routeKey).toBe('POST /rest/imbot.v2.Chat.Message.update.json');
  });

  it.each([
    ['GET', '/rest/imbot.v2.Chat.Message.update'],
    ['POST', '/rest/imbot.v2.Chat.Message.send'],
    ['GET', '/messages/demo/456'],
    ['POST', '/messages/demo/456/789'],
  ])('answers %s %s with API Gateway’s 404 without invoking a function', async (method, path) => {
    const update = capture();
    const fate = capture();
    const server = await serveRoutes([
      { name: 'update', handler: update.handler, timeoutMs: 1_000, routes },
      { name: 'fate', handler: fate.handler, timeoutMs: 1_000, routes: [fateRoute] },
    ]);
    const response = await fetch(`${server.url}${path}`, { method });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ message: 'Not Found' });
    expect([...update.events, ...fate.events]).toEqual([]);
  });

  it('hands each route to its own function, with the path parameters of a parameterised route', async () => {
    const update = capture();
    const fate = capture();
    const server = await serveRoutes([
      { name: 'update', handler: update.handler, timeoutMs: 1_000, routes },
      { name: 'fate', handler: fate.handler, timeoutMs: 1_000, routes: [fateRoute] },
    ]);
    await fetch(`${server.url}/rest/imbot.v2.Chat.Message.update`, { method: 'POST', body: '{}' });
    await fetch(`${server.url}/messages/demo/456/789`);
    expect(update.events.map((e) => e.routeKey)).toEqual(['POST /rest/imbot.v2.Chat.Message.update']);
    expect(fate.events).toHaveLength(1);
    expect(fate.events[0]).toMatchObject({
      routeKey: fateRoute,
      rawPath: '/messages/demo/456/789',
      pathParameters: { portal: 'demo', botId: '456', messageId: '789' },
    });
    expect(update.events[0]?.pathParameters).toBeUndefined();
  });

  it('reports a fate request by the ids in its path and the status it answered', async () => {
    const activity: ApiActivity[] = [];
    const server = await startApiServer({
      port: 0,
      functions: [
        {
          name: 'fate',
          timeoutMs: 1_000,
          routes: [fateRoute],
          handler: async () => ({ statusCode: 200, body: '{"status":"pending","botId":456}' }),
        },
      ],
      onActivity: (a) => activity.push(a),
    });
    servers.push(server);
    await fetch(`${server.url}/messages/demo/456/789`);
    await expect.poll(() => activity.length).toBe(1);
    expect(activity[0]).toMatchObject({
      method: 'GET',
      status: 200,
      outcome: 'fate: pending',
      botId: 456,
      messageId: 789,
    });
  });
});
