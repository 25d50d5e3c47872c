import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { authServerOf } from '../../lib/bitrix24/oauth.ts';
import { postUpdate, updateDeps } from '../api/helpers.ts';
import { httpApiEvent } from '../support/events.ts';
import {
  freshLedger,
  type Harness,
  OAUTH_APP,
  oauthSecret,
  PREFIX,
  startHarness,
} from '../support/harness.ts';
import { listenOnLoopback } from '../support/loopback.ts';

vi.hoisted(() => {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
});

interface Seen {
  method: string;
  url: string;
  contentType: string;
  body: string;
}

/**
 * The auth server of another region: it still answers (passing the refresh on to the emulator, whose
 * answer names the emulator as the auth server), and writes down how each refresh arrived.
 */
async function startOtherRegion(
  target: () => string,
): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += String(chunk);
    seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      contentType: String(req.headers['content-type'] ?? ''),
      body,
    });
    const answer = await fetch(target(), {
      method: 'POST',
      headers: { 'content-type': String(req.headers['content-type'] ?? '') },
      body,
    });
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    res.end(await answer.text());
  });
  const port = await listenOnLoopback(server);
  return { url: `http://127.0.0.1:${port}/oauth/token/`, seen, server };
}

let h: Harness;
let region: Awaited<ReturnType<typeof startOtherRegion>>;
beforeAll(async () => {
  h = await startHarness({ timeoutMs: 1_000 });
  region = await startOtherRegion(() => h.emulator.oauthUrl);
});
afterAll(async () => {
  region.server.closeAllConnections();
  await new Promise((resolve) => region.server.close(resolve));
  await h.close();
});

describe('OAuth refresh', () => {
  it('sends the client secret and the refresh token in a form-encoded POST body, never in the URL', async () => {
    h.emulator.registerBot({ id: 480, owner: { clientId: OAUTH_APP.clientId } });
    h.emulator.addMessage({ id: 9101, botId: 480, chatId: 12, text: 'before' });
    const grant = h.emulator.addOAuthApp(OAUTH_APP);
    const name = `${PREFIX}oauth-region`;
    h.secretsManager.setSecret(
      name,
      oauthSecret(h.emulator.url, region.url, grant).replace('"456"', '"480"'),
    );
    const ledger = await freshLedger(h);
    const edit = (text: string) =>
      postUpdate(
        httpApiEvent(
          { botId: 480, messageId: 9101, fields: { message: text } },
          { headers: { 'x-b24-portal': 'oauth-region' } },
        ),
        updateDeps(h, ledger),
      );

    h.emulator.expireAccessTokens();
    expect((await edit('after the first refresh')).status).toBe(200);
    expect(region.seen).toHaveLength(1);
    const [first] = region.seen;
    expect(first?.method).toBe('POST');
    expect(first?.contentType).toContain('application/x-www-form-urlencoded');
    expect(first?.url).toBe('/oauth/token/');
    const form = new URLSearchParams(first?.body ?? '');
    expect(form.get('grant_type')).toBe('refresh_token');
    expect(form.get('client_id')).toBe(OAUTH_APP.clientId);
    expect(form.get('client_secret') === OAUTH_APP.clientSecret).toBe(true);
    expect(form.get('refresh_token') === grant.refreshToken).toBe(true);

    // The answer named the emulator as the auth server: it is kept in the secret, and used next time.
    const stored = JSON.parse(h.secretsManager.getSecret(name) ?? '{}') as { auth: { oauthUrl: string } };
    expect(stored.auth.oauthUrl).toBe(h.emulator.oauthUrl);
    h.emulator.expireAccessTokens();
    h.emulator.clearCalls();
    expect((await edit('after the second refresh')).status).toBe(200);
    expect(region.seen).toHaveLength(1);
    expect(h.emulator.calls.filter((c) => c.method === 'oauth/token')).toHaveLength(1);
    expect(h.emulator.getMessage(9101)?.text).toBe('after the second refresh');
  });

  it('gets the documented token answer from the emulator: client_endpoint, server_endpoint, domain, status', async () => {
    const grant = h.emulator.addOAuthApp({ clientId: 'app.answer', clientSecret: OAUTH_APP.clientSecret });
    const answer = await fetch(h.emulator.oauthUrl, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        client_id: 'app.answer',
        client_secret: OAUTH_APP.clientSecret,
        refresh_token: grant.refreshToken,
      }),
    });
    const body = (await answer.json()) as Record<string, unknown>;
    expect(answer.status).toBe(200);
    expect(body).toMatchObject({
      client_endpoint: `${h.emulator.url}/rest/`,
      server_endpoint: `${h.emulator.url}/rest/`,
      domain: new URL(h.emulator.url).host,
      status: 'L',
    });
  });
});

describe('the auth server a token answer names', () => {
  it('is the origin of server_endpoint first', () => {
    expect(
      authServerOf(
        { server_endpoint: 'https://oauth.bitrix24.tech/rest/', domain: 'oauth.bitrix.info' },
        false,
      ),
    ).toBe('https://oauth.bitrix24.tech/oauth/token/');
  });

  it('is the domain when server_endpoint is missing or unusable', () => {
    expect(authServerOf({ domain: 'oauth.bitrix.info' }, false)).toBe(
      'https://oauth.bitrix.info/oauth/token/',
    );
    expect(authServerOf({ server_endpoint: 'not a url', domain: 'oauth.bitrix.info' }, false)).toBe(
      'https://oauth.bitrix.info/oauth/token/',
    );
  });

  it('is none for plain http outside local mode, user info, or a domain that is not a host name', () => {
    expect(authServerOf({ server_endpoint: 'http://oauth.bitrix.info/rest/' }, false)).toBeUndefined();
    expect(
      authServerOf({ server_endpoint: 'https://user:pw@oauth.bitrix.info/rest/' }, false),
    ).toBeUndefined();
    expect(authServerOf({ domain: 'evil.example/path?x=' }, false)).toBeUndefined();
    expect(authServerOf({}, false)).toBeUndefined();
    expect(authServerOf({ server_endpoint: 'http://127.0.0.1:8024/rest/' }, true)).toBe(
      'http://127.0.0.1:8024/oauth/token/',
    );
  });
});
