import { afterEach, describe, expect, it } from 'vitest';
import { encodeBracketParams } from '../../lib/bitrix24/query-string.ts';
import { freePorts, json, npmStart, runCommand, type StartedProcess } from './support/npm-start.ts';

// The banner's way for Bitrix24 SDKs: a caller key from the CLI, then the webhook URL it prints,
// used as CRest uses a webhook URL (a form-encoded POST).

const READY = /^Ready in \d+ ms/m;

const started: StartedProcess[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.kill()));
});

describe('npm start and a Bitrix24 client', () => {
  it('serves the webhook URL of a caller key made with caller add --local, as CRest calls it', async () => {
    const ports = await freePorts();
    const stack = npmStart({ ...ports, STATUS_SPECS_FILE: 'off' });
    started.push(stack);
    const banner = await stack.waitFor(READY, 20_000);
    expect(banner).toContain(`http://127.0.0.1:${ports.API_PORT}/rest/1/<key>/`);

    const added = await runCommand(
      'npm',
      ['run', '--silent', 'b24', '--', 'caller', 'add', '--local', '--portal', 'demo', '--name', 'crest'],
      ports,
    );
    expect(added.code).toBe(0);
    const url = added.out.match(/webhook URL\s+(\S+)/)?.[1] ?? '';
    expect(url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${ports.API_PORT}/rest/1/[a-z0-9]{40}/$`));

    const response = await fetch(`${url}imbot.v2.Chat.Message.update.json`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: encodeBracketParams({ botId: 456, messageId: 789, fields: { message: 'from CRest' } }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ result: { result: true } });
    const emulated = await json<{ text: string }>(
      `http://127.0.0.1:${ports.EMULATOR_PORT}/_emulator/messages/789`,
    );
    expect(emulated.text).toBe('from CRest');
  }, 120_000);
});
