import { afterEach, describe, expect, it } from 'vitest';
import { type Bitrix24Emulator, startBitrix24Emulator } from '../../local/bitrix24-emulator/index.ts';
import { type Answer, manualClock, postForm, postJson, send, UPDATE } from './helpers.ts';

const app = { clientId: 'local.app.1', clientSecret: 'app-secret-1' };
let emu: Bitrix24Emulator;

afterEach(async () => {
  await emu?.close();
});

async function withAppBot(options: Parameters<typeof startBitrix24Emulator>[0] = {}) {
  emu = await startBitrix24Emulator(options);
  const grant = emu.addOAuthApp(app);
  const botId = emu.registerBot({ id: 77, owner: { clientId: app.clientId } });
  const messageId = emu.addMessage({ botId, chatId: 5, text: 'old' });
  return { grant, botId, messageId };
}

function refresh(refreshToken: string, client = app): Promise<Answer> {
  const query = new URLSearchParams({
    grant_type: 'refresh_token',
    client_id: client.clientId,
    client_secret: client.clientSecret,
    refresh_token: refreshToken,
  });
  return send(`${emu.oauthUrl}?${query}`);
}

describe('webhook auth', () => {
  it('accepts a known webhook path with and without the .json suffix', async () => {
    emu = await startBitrix24Emulator();
    emu.addWebhook({ userId: 3, code: 'hook_secret_3' });
    const plain = await postJson(`${emu.url}/rest/3/hook_secret_3/imbot.v2.Revision.get`, {});
    const suffixed = await postJson(`${emu.url}/rest/3/hook_secret_3/imbot.v2.Revision.get.json`, {});
    expect(plain.status).toBe(200);
    expect(suffixed.status).toBe(200);
    expect(plain.body.result).toMatchObject({ rest: expect.any(Number) });
  });

  it('answers 401 INVALID_CREDENTIALS for an unknown webhook code', async () => {
    emu = await startBitrix24Emulator();
    emu.addWebhook({ userId: 3, code: 'hook_secret_3' });
    const answer = await postJson(`${emu.url}/rest/3/wrong_code/imbot.v2.Revision.get`, {});
    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe('INVALID_CREDENTIALS');
    expect(answer.text).not.toContain('wrong_code');
  });

  it('answers 404 ERROR_METHOD_NOT_FOUND for a method it does not serve', async () => {
    emu = await startBitrix24Emulator();
    emu.addWebhook({ userId: 3, code: 'hook_secret_3' });
    const answer = await postJson(`${emu.url}/rest/3/hook_secret_3/crm.deal.list`, {});
    expect(answer.status).toBe(404);
    expect(answer.body.error).toBe('ERROR_METHOD_NOT_FOUND');
  });
});

describe('paths', () => {
  it('serves /rest//<method>, which the JS SDK sends when client_endpoint ends in /rest/', async () => {
    const { grant } = await withAppBot();
    const answer = await postJson(`${emu.url}/rest//imbot.v2.Revision.get`, { auth: grant.accessToken });
    expect(answer.status).toBe(200);
    expect(answer.body.result).toMatchObject({ rest: expect.any(Number) });
  });

  it('reads any run of slashes in a webhook path as one', async () => {
    emu = await startBitrix24Emulator();
    emu.addWebhook({ userId: 3, code: 'hook_secret_3' });
    const answer = await postJson(`${emu.url}//rest///3//hook_secret_3//imbot.v2.Revision.get`, {});
    expect(answer.status).toBe(200);
    expect(emu.calls.at(-1)).toMatchObject({ method: 'imbot.v2.Revision.get', auth: 'webhook' });
  });
});

describe('OAuth auth', () => {
  it('updates a message with the access token in the JSON body, without a botToken', async () => {
    const { grant, botId, messageId } = await withAppBot();
    const answer = await postJson(`${emu.url}/rest/${UPDATE}`, {
      auth: grant.accessToken,
      botId,
      messageId,
      fields: { message: 'new' },
    });
    expect(answer.status).toBe(200);
    expect(emu.getMessage(messageId)?.text).toBe('new');
  });

  it('accepts the access token as ?auth= with a form-encoded body', async () => {
    const { grant, botId, messageId } = await withAppBot();
    const answer = await postForm(
      `${emu.url}/rest/${UPDATE}.json?auth=${grant.accessToken}`,
      `botId=${botId}&messageId=${messageId}&fields%5Bmessage%5D=from+a+form`,
    );
    expect(answer.status).toBe(200);
    expect(emu.getMessage(messageId)?.text).toBe('from a form');
  });

  it('answers 401 NO_AUTH_FOUND when the request carries no auth at all', async () => {
    const { botId, messageId } = await withAppBot();
    const answer = await postJson(`${emu.url}/rest/${UPDATE}`, {
      botId,
      messageId,
      fields: { message: 'x' },
    });
    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe('NO_AUTH_FOUND');
  });

  it('answers 401 invalid_token for an access token it never issued', async () => {
    await withAppBot();
    const answer = await postJson(`${emu.url}/rest/imbot.v2.Revision.get`, { auth: 'not-a-token' });
    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe('invalid_token');
  });

  it('answers 401 expired_token once the access token outlives its TTL on the injected clock', async () => {
    const clock = manualClock();
    const { grant } = await withAppBot({ now: clock.now, accessTokenTtlSeconds: 60 });
    expect(grant.expiresAt).toBe(Math.floor(clock.now() / 1000) + 60);
    const fresh = await postJson(`${emu.url}/rest/imbot.v2.Revision.get`, { auth: grant.accessToken });
    expect(fresh.status).toBe(200);
    clock.advance(60_000);
    const stale = await postJson(`${emu.url}/rest/imbot.v2.Revision.get`, { auth: grant.accessToken });
    expect(stale.status).toBe(401);
    expect(stale.body.error).toBe('expired_token');
  });

  it('answers expired_token for every token issued before expireAccessTokens()', async () => {
    const { grant } = await withAppBot();
    emu.expireAccessTokens();
    const answer = await postJson(`${emu.url}/rest/imbot.v2.Revision.get`, { auth: grant.accessToken });
    expect(answer.body.error).toBe('expired_token');
  });

  it('rejects a bot registered by another app with 403 BOT_OWNERSHIP_ERROR', async () => {
    const { botId, messageId } = await withAppBot();
    const other = emu.addOAuthApp({ clientId: 'local.app.2', clientSecret: 'app-secret-2' });
    const answer = await postJson(`${emu.url}/rest/${UPDATE}`, {
      auth: other.accessToken,
      botId,
      messageId,
      fields: { message: 'hijack' },
    });
    expect(answer.status).toBe(403);
    expect(answer.body.error).toBe('BOT_OWNERSHIP_ERROR');
    expect(emu.getMessage(messageId)?.text).toBe('old');
  });
});

describe('OAuth refresh', () => {
  it('rotates both tokens: the new access token works and the used refresh token is spent', async () => {
    const { grant } = await withAppBot();
    emu.expireAccessTokens();
    const first = await refresh(grant.refreshToken);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({
      access_token: expect.any(String),
      refresh_token: expect.any(String),
      expires: expect.any(Number),
      expires_in: 3600,
      client_endpoint: `${emu.url}/rest/`,
      scope: 'imbot',
      status: 'L',
      user_id: 1,
      member_id: expect.any(String),
      domain: expect.any(String),
      server_endpoint: expect.any(String),
    });
    expect(first.body.refresh_token).not.toBe(grant.refreshToken);
    const call = await postJson(`${emu.url}/rest/imbot.v2.Revision.get`, { auth: first.body.access_token });
    expect(call.status).toBe(200);

    const reused = await refresh(grant.refreshToken);
    expect(reused.status).toBe(400);
    expect(reused.body.error).toBe('invalid_grant');
    const next = await refresh(String(first.body.refresh_token));
    expect(next.status).toBe(200);
  });

  it('answers 401 invalid_client for a wrong client secret', async () => {
    const { grant } = await withAppBot();
    const answer = await refresh(grant.refreshToken, { ...app, clientSecret: 'guessed' });
    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe('invalid_client');
  });

  it('answers 400 invalid_request to a refresh without its parameters, as a malformed token request', async () => {
    await withAppBot();
    const answer = await send(emu.oauthUrl);
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('invalid_request');
    expect(answer.body.error_description).toMatch(/malformed/i);
  });

  it('describes a scripted invalid_request at the token endpoint as the auth server does, not "Https required"', async () => {
    const { grant } = await withAppBot();
    emu.inject({ kind: 'error', method: 'oauth/token', code: 'invalid_request' });
    const scripted = await refresh(grant.refreshToken);
    const own = await send(emu.oauthUrl);
    expect(scripted.status).toBe(400);
    expect(scripted.body).toEqual(own.body);
    expect(scripted.text).not.toMatch(/https/i);
  });

  it('answers 400 invalid_grant after revokeRefreshTokens()', async () => {
    const { grant } = await withAppBot();
    emu.revokeRefreshTokens();
    const answer = await refresh(grant.refreshToken);
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('invalid_grant');
  });

  it('gives refreshed access tokens a fresh expiry on the injected clock', async () => {
    const clock = manualClock();
    const { grant } = await withAppBot({ now: clock.now, accessTokenTtlSeconds: 100 });
    clock.advance(150_000);
    const answer = await refresh(grant.refreshToken);
    expect(answer.body.expires).toBe(Math.floor(clock.now() / 1000) + 100);
    expect(answer.body.expires_in).toBe(100);
  });
});
