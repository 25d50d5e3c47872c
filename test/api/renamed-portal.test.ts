import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Ledger } from '../../lib/ledger/messages.ts';
import { httpApiEvent } from '../support/events.ts';
import { type Harness, OAUTH_APP, oauthSecret, PREFIX, startHarness } from '../support/harness.ts';
import { freshLedger, postUpdate, purgeQueues, updateDeps } from './helpers.ts';

// A renamed portal answers at its old address with a redirect to the new one, which calls never
// follow; its OAuth token answer names the new address (`client_endpoint`).

let h: Harness;
let ledger: Ledger;
let oldAddress: Server;
let oldUrl: string;

beforeAll(async () => {
  h = await startHarness({ timeoutMs: 1_000 });
  // The portal's old address: every request is sent on to the new one (the emulator).
  oldAddress = createServer((req, res) => {
    res.writeHead(302, { location: `${h.emulator.url}${req.url ?? '/'}` }).end();
  });
  await new Promise<void>((resolve) => oldAddress.listen(0, '127.0.0.1', resolve));
  oldUrl = `http://127.0.0.1:${(oldAddress.address() as AddressInfo).port}`;
});
afterAll(async () => {
  oldAddress.closeAllConnections();
  await new Promise((resolve) => oldAddress.close(resolve));
  await h.close();
});
beforeEach(async () => {
  h.emulator.reset();
  ledger = await freshLedger(h);
});
afterEach(async () => {
  await purgeQueues(h);
});

function renamedPortal(name: string, auth: Record<string, unknown> = {}) {
  h.emulator.registerBot({ id: 470, owner: { clientId: OAUTH_APP.clientId } });
  const id = h.emulator.addMessage({ botId: 470, chatId: 12, text: 'before the rename' });
  const tokens = h.emulator.addOAuthApp(OAUTH_APP);
  const secret = JSON.parse(oauthSecret(oldUrl, h.emulator.oauthUrl, tokens));
  secret.bots = { 470: {} };
  Object.assign(secret.auth, auth);
  h.secretsManager.setSecret(`${PREFIX}${name}`, JSON.stringify(secret));
  return id;
}

const edit = (portal: string, messageId: number, message: string) =>
  httpApiEvent({ botId: 470, messageId, fields: { message } }, { headers: { 'x-b24-portal': portal } });

describe('a renamed portal with OAuth credentials', () => {
  it('is followed to the address its token answer names, and the secret keeps it', async () => {
    const id = renamedPortal('renamed');
    const answer = await postUpdate(edit('renamed', id, 'after the rename'), updateDeps(h, ledger));
    expect(answer.status).toBe(200);
    expect(h.emulator.getMessage(id)?.text).toBe('after the rename');
    const stored = JSON.parse(h.secretsManager.getSecret(`${PREFIX}renamed`) ?? '{}');
    expect(stored.portalUrl).toBe(new URL(h.emulator.url).origin);
    expect(stored.auth.memberId).toEqual(expect.any(String));
  });

  it('is not followed when the token answer names another install than the secret knows', async () => {
    const id = renamedPortal('other-install', { memberId: 'another-install' });
    const answer = await postUpdate(edit('other-install', id, 'not sent'), updateDeps(h, ledger));
    expect(answer.body).toMatchObject({ error: 'REDIRECT_REFUSED' });
    expect(h.emulator.getMessage(id)?.text).toBe('before the rename');
    const stored = JSON.parse(h.secretsManager.getSecret(`${PREFIX}other-install`) ?? '{}');
    expect(stored.portalUrl).toBe(oldUrl);
  });
});
