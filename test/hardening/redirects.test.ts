import { createServer, type IncomingMessage, type Server } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createBitrix24Client } from '../../lib/bitrix24/client.ts';
import { Strategy } from '../../lib/bitrix24/error-table.ts';
import { Bitrix24Error } from '../../lib/bitrix24/errors.ts';
import { refreshOAuthTokens } from '../../lib/bitrix24/oauth.ts';
import type { Ledger } from '../../lib/ledger/messages.ts';
import { SourceError } from '../../lib/status/errors.ts';
import { fetchSource } from '../../lib/status/sources.ts';
import type { StatusSource } from '../../lib/status/spec.ts';
import { postUpdate, purgeQueues, update, updateDeps } from '../api/helpers.ts';
import {
  drainAndWake,
  editBody,
  eventOf,
  failedIds,
  receiveAll,
  recordingSqs,
  sqsRecord,
} from '../drain/support/fixtures.ts';
import { BOT, freshLedger, type Harness, OAUTH_APP, startHarness, WEBHOOK } from '../support/harness.ts';
import { listenOnLoopback } from '../support/loopback.ts';

vi.hoisted(() => {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
});

interface Seen {
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** Another host on loopback that writes down whatever reaches it, and redirects by query. */
async function startOther(): Promise<{ origin: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += String(chunk);
    seen.push({ path: req.url ?? '/', headers: req.headers, body });
    const url = new URL(req.url ?? '/', 'http://x');
    const to = url.searchParams.get('to');
    if (to) {
      res.writeHead(307, { location: to });
      res.end();
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ headers: req.headers }));
  });
  const port = await listenOnLoopback(server);
  return { origin: `http://127.0.0.1:${port}`, seen, server };
}

let h: Harness;
let other: Awaited<ReturnType<typeof startOther>>;
let ledger: Ledger;
beforeAll(async () => {
  h = await startHarness({ timeoutMs: 1_000 });
  other = await startOther();
});
afterAll(async () => {
  other.server.closeAllConnections();
  await new Promise((resolve) => other.server.close(resolve));
  await h.close();
});
beforeEach(async () => {
  h.emulator.reset();
  other.seen.length = 0;
  ledger = await freshLedger(h);
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe('Bitrix24 calls and redirects', () => {
  it('refuses a 307 to another host: 502 REDIRECT_REFUSED naming the status and the host, nothing sent there, the edit kept', async () => {
    h.emulator.inject({ kind: 'redirect', status: 307, location: `${other.origin}/rest/steal` });
    const answer = await postUpdate(update({ message: 'Build #42: green' }), updateDeps(h, ledger));
    expect(answer.status).toBe(502);
    expect(answer.body.error).toBe('REDIRECT_REFUSED');
    expect(String(answer.body.error_description)).toContain('HTTP 307');
    expect(String(answer.body.error_description)).toContain(new URL(other.origin).host);
    expect(other.seen).toEqual([]);
    expect(h.emulator.getMessage(789)?.text).not.toBe('Build #42: green');
    const state = await ledger.get({ portal: 'acme', botId: BOT.id, messageId: 789 });
    expect(state.desired.message?.value).toBe('Build #42: green');
    expect(state.lastError?.code).toBe('REDIRECT_REFUSED');
  });

  it('keeps a drained edit whose call was redirected: failed-edits queue with REDIRECT_REFUSED, nothing sent to the target', async () => {
    await purgeQueues(h);
    const id = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'before' });
    h.emulator.inject({ kind: 'redirect', status: 308, location: `${other.origin}/rest/batch` }, 5);
    const drain = drainAndWake(h, recordingSqs(h.sqsEndpoint).client, { ledger });
    const record = sqsRecord(editBody(id, { message: 'redirected' }));
    expect(failedIds(await drain(eventOf([record])))).toEqual([]);
    const failed = await receiveAll(h.sqs, h.failedQueueUrl);
    expect(failed.map((m) => m.MessageAttributes?.errorCode?.StringValue)).toEqual(['REDIRECT_REFUSED']);
    expect(JSON.parse(failed[0]?.Body ?? '{}').fields).toEqual({ message: 'redirected' });
    expect(other.seen).toEqual([]);
    expect(h.emulator.getMessage(id)?.text).toBe('before');
  });

  it('refuses a 308 carrying an OAuth access token without following it, as our configuration failing', async () => {
    h.emulator.inject({ kind: 'redirect', status: 308, location: `${other.origin}/rest/steal` });
    const client = createBitrix24Client({ portalUrl: h.emulator.url, allowHttp: true, timeoutMs: 1_000 });
    const error = await rejection(
      client.call('imbot.v2.Revision.get', {}, { auth: { type: 'oauth', accessToken: 'tok_redirect_1' } }),
    );
    expect(error).toBeInstanceOf(Bitrix24Error);
    expect(error).toMatchObject({ code: 'REDIRECT_REFUSED', httpStatus: 308, strategy: Strategy.Auth });
    expect((error as Error).message).toContain(new URL(other.origin).host);
    expect(other.seen).toEqual([]);
  });

  it('refuses a redirect of the OAuth refresh, so the client secret is not sent on', async () => {
    const grant = h.emulator.addOAuthApp(OAUTH_APP);
    h.emulator.inject({
      kind: 'redirect',
      method: 'oauth/token',
      status: 307,
      location: `${other.origin}/oauth/token/`,
    });
    const error = await rejection(
      refreshOAuthTokens({
        oauthUrl: h.emulator.oauthUrl,
        clientId: OAUTH_APP.clientId,
        clientSecret: OAUTH_APP.clientSecret,
        refreshToken: grant.refreshToken,
        timeoutMs: 1_000,
        allowHttp: true,
      }),
    );
    expect(error).toMatchObject({ code: 'REDIRECT_REFUSED', httpStatus: 307 });
    expect(other.seen).toEqual([]);
  });

  it('answers a webhook call that a redirect would have sent elsewhere without the webhook path in the text', async () => {
    h.emulator.inject({ kind: 'redirect' });
    const client = createBitrix24Client({ portalUrl: h.emulator.url, allowHttp: true, timeoutMs: 1_000 });
    const error = await rejection(
      client.call('imbot.v2.Revision.get', {}, { auth: { type: 'webhook', ...WEBHOOK } }),
    );
    expect(error).toMatchObject({ code: 'REDIRECT_REFUSED', httpStatus: 307 });
    expect((error as Error).message).toContain('moved.b24-emulator.invalid');
    expect((error as Error).message).not.toContain('/rest/');
  });
});

function source(url: string, headers: Record<string, string> = {}): StatusSource {
  return { type: 'http-json', url, timeoutMs: 2_000, headers };
}

describe('status sources and redirects', () => {
  it.each([
    'https://127.0.0.1:PORT/',
    'https://127.8.9.10:PORT/',
    'https://[::1]:PORT/',
    'https://[::ffff:127.0.0.1]:PORT/',
    'https://169.254.169.254/latest/meta-data/',
    'https://[fd00:ec2::254]/',
    'https://localhost:PORT/',
    'https://status.localhost:PORT/',
    'https://0.0.0.0:PORT/',
  ])('refuses %s outside local mode, before sending anything', async (template) => {
    const url = template.replace('PORT', new URL(other.origin).port);
    const error = await rejection(fetchSource(source(url), { allowHttp: false }));
    expect(error).toBeInstanceOf(SourceError);
    expect(error).toMatchObject({ code: 'SOURCE_ADDRESS_NOT_ALLOWED' });
    expect(other.seen).toEqual([]);
  });

  it('sends the spec’s headers to its own host but not to another host a redirect points at', async () => {
    const port = new URL(other.origin).port;
    const elsewhere = `http://localhost:${port}/landing`;
    const data = (await fetchSource(
      source(`${other.origin}/start?to=${encodeURIComponent(elsewhere)}`, { 'X-Api-Key': 'key-1' }),
      { allowHttp: true },
    )) as { headers: Record<string, string> };
    expect(other.seen.map((s) => s.path)).toEqual([`/start?to=${encodeURIComponent(elsewhere)}`, '/landing']);
    expect(other.seen[0]?.headers['x-api-key']).toBe('key-1');
    expect(other.seen[1]?.headers['x-api-key']).toBeUndefined();
    expect(data.headers['x-api-key']).toBeUndefined();
  });

  it('keeps the spec’s headers across a redirect on the same host', async () => {
    await fetchSource(
      source(`${other.origin}/start?to=${encodeURIComponent('/landing')}`, { 'X-Api-Key': 'key-2' }),
      {
        allowHttp: true,
      },
    );
    expect(other.seen.map((s) => s.headers['x-api-key'])).toEqual(['key-2', 'key-2']);
  });

  it('gives up after five redirects with SOURCE_TOO_MANY_REDIRECTS', async () => {
    let url = `${other.origin}/end`;
    for (let i = 0; i < 6; i++) url = `${other.origin}/hop${i}?to=${encodeURIComponent(url)}`;
    const error = await rejection(fetchSource(source(url), { allowHttp: true }));
    expect(error).toMatchObject({ code: 'SOURCE_TOO_MANY_REDIRECTS' });
    expect(other.seen).toHaveLength(6);
  });
});
