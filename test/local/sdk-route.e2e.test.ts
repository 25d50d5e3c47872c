import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import { ApiVersion, B24Hook } from '@bitrix24/b24jssdk';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeBracketParams } from '../../lib/bitrix24/query-string.ts';
import { freePorts, json, npmStart, runCommand, type StartedProcess } from './support/npm-start.ts';

// The banner's way for Bitrix24 clients: a caller key from the CLI, then the webhook URL it prints,
// used by the official JS SDK (over HTTPS, trusting the certificate the banner names) and as CRest
// uses a webhook URL (a form-encoded POST over plain HTTP).

const READY = /^Ready in \d+ ms/m;

const started: StartedProcess[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.kill()));
});

/** `npm run b24 -- caller add --local` beside the stack on `ports`: what it printed. */
async function addCaller(ports: Record<string, string>, name: string): Promise<string> {
  const added = await runCommand(
    'npm',
    ['run', '--silent', 'b24', '--', 'caller', 'add', '--local', '--portal', 'demo', '--name', name],
    ports,
  );
  expect(added.code, added.out).toBe(0);
  return added.out;
}

async function messageText(ports: Record<string, string>, id: number): Promise<string> {
  const emulated = await json<{ text: string }>(
    `http://127.0.0.1:${ports.EMULATOR_PORT}/_emulator/messages/${id}`,
  );
  return emulated.text;
}

describe('npm start and a Bitrix24 client', () => {
  it('lets the official JS SDK update message 789 through the https webhook URL of caller add --local, trusting only the certificate the banner names, and removes that file on Ctrl-C', async () => {
    const ports = await freePorts();
    const stack = npmStart({ ...ports, STATUS_SPECS_FILE: 'off' });
    started.push(stack);
    const banner = await stack.waitFor(READY, 20_000);
    expect(banner).toContain(`https://127.0.0.1:${ports.API_TLS_PORT}/rest/1/<key>/`);
    const certificateFile = banner.match(/NODE_EXTRA_CA_CERTS=(\S+)/)?.[1] ?? '';
    const ca = await readFile(certificateFile, 'utf8');
    expect(ca).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----\n?$/);

    const added = await addCaller(ports, 'js-sdk');
    expect(added).toMatch(new RegExp(`^ {2}certificate +${certificateFile.replaceAll('.', '\\.')} `, 'm'));
    const url = added.match(/webhook URL\s+(\S+)/)?.[1] ?? '';
    expect(url).toMatch(new RegExp(`^https://127\\.0\\.0\\.1:${ports.API_TLS_PORT}/rest/1/[a-z0-9]{40}/$`));

    const b24 = B24Hook.fromWebhookUrl(url);
    b24.offClientSideWarning();
    // `ca` replaces the default trust store: the banner's certificate is the only one trusted.
    b24.getHttpClient(ApiVersion.v2).ajaxClient.defaults.httpsAgent = new Agent({ ca });
    const result = await b24.actions.v2.call.make({
      method: 'imbot.v2.Chat.Message.update',
      params: { botId: 456, messageId: 789, fields: { message: 'from the JS SDK' } },
    });
    expect(result.isSuccess).toBe(true);
    expect(result.getData()?.result).toEqual({ result: true });
    expect(await messageText(ports, 789)).toBe('from the JS SDK');

    stack.signal('SIGINT');
    await stack.closed;
    expect(existsSync(certificateFile)).toBe(false);
  }, 120_000);

  it('serves the plain HTTP webhook URL of a caller key made with caller add --local, as CRest calls it', async () => {
    const ports = await freePorts();
    const stack = npmStart({ ...ports, STATUS_SPECS_FILE: 'off' });
    started.push(stack);
    await stack.waitFor(READY, 20_000);

    const added = await addCaller(ports, 'crest');
    const url = added.match(/over HTTP\s+(\S+)/)?.[1] ?? '';
    expect(url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${ports.API_PORT}/rest/1/[a-z0-9]{40}/$`));

    const response = await fetch(`${url}imbot.v2.Chat.Message.update.json`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: encodeBracketParams({ botId: 456, messageId: 789, fields: { message: 'from CRest' } }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ result: { result: true } });
    expect(await messageText(ports, 789)).toBe('from CRest');
  }, 120_000);
});
