import { Agent } from 'node:https';
import { ApiVersion, B24Hook } from '@bitrix24/b24jssdk';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHandler } from '../../functions/webhook.ts';
import { encodeBracketParams } from '../../lib/bitrix24/query-string.ts';
import { CallerKeys, parseCallerKey } from '../../lib/callers/index.ts';
import type { Ledger } from '../../lib/ledger/messages.ts';
import { type ApiServer, type HttpApiHandler, startApiServer } from '../../local/stack/api-server.ts';
import { startTlsProxy, type TlsProxy } from '../../local/stack/tls-proxy.ts';
import { BOT, type Harness, startHarness } from '../support/harness.ts';
import { freshLedger, purgeQueues, updateDeps } from './helpers.ts';

// The official JS SDK, configured as its users configure it (a webhook URL), pointed at this
// service's webhook route over HTTPS.

let h: Harness;
let ledger: Ledger;
let callers: CallerKeys;
let api: ApiServer;
let proxy: TlsProxy;
let key: string;

beforeAll(async () => {
  h = await startHarness({ timeoutMs: 2_000 });
  ledger = await freshLedger(h);
  callers = new CallerKeys(ledger.table, { cacheTtlMs: 0 });
  const deps = { ...updateDeps(h, ledger), callers };
  api = await startApiServer({
    port: 0,
    functions: [
      {
        name: 'webhook',
        handler: createHandler(deps) as unknown as HttpApiHandler,
        timeoutMs: 15_000,
        routes: ['ANY /rest/{user}/{key}/{method}'],
      },
    ],
  });
  proxy = await startTlsProxy(api.url);
});
afterAll(async () => {
  await proxy?.close();
  await api?.close();
  await h?.close();
});
beforeEach(async () => {
  await purgeQueues(h);
  ({ key } = await callers.add({ portal: 'acme', name: 'sdk-test' }));
  h.emulator.clearCalls();
});

/** The SDK for a webhook URL on this service, trusting only the proxy's certificate. */
function sdk(secret = key): B24Hook {
  const b24 = B24Hook.fromWebhookUrl(`${proxy.url}/rest/1/${secret}`);
  b24.offClientSideWarning();
  b24.getHttpClient(ApiVersion.v2).ajaxClient.defaults.httpsAgent = new Agent({ ca: proxy.ca });
  return b24;
}

/** Everything written to stdout and stderr while `work` runs. */
async function output<T>(work: () => Promise<T>): Promise<{ value: T; text: string }> {
  const chunks: string[] = [];
  const streams = [process.stdout, process.stderr];
  const writes = streams.map((stream) => stream.write);
  for (const stream of streams) {
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString());
      return write(chunk, ...rest);
    }) as typeof stream.write;
  }
  try {
    return { value: await work(), text: chunks.join('') };
  } finally {
    streams.forEach((stream, i) => {
      stream.write = writes[i] as typeof stream.write;
    });
  }
}

const UPDATE = 'imbot.v2.Chat.Message.update';

describe('the official JS SDK against the webhook route', () => {
  it('updates a message with call.make and reads imbot.v2’s result, with the key in no log line', async () => {
    const id = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'Build #42: running' });
    const { value: result, text } = await output(() =>
      sdk().actions.v2.call.make({
        method: UPDATE,
        params: { botId: BOT.id, messageId: id, fields: { message: 'Build #42: green' } },
      }),
    );
    expect(result.isSuccess).toBe(true);
    expect(result.getData()?.result).toEqual({ result: true });
    expect(h.emulator.getMessage(id)?.text).toBe('Build #42: green');
    expect(text).not.toContain(key.slice(8));
  });

  it('hands an ACCESS_DENIED from Bitrix24 to the SDK as its error code', async () => {
    const id = h.emulator.addMessage({ authorId: 1, chatId: 12, text: 'a human wrote this' });
    const refused = await sdk()
      .actions.v2.call.make({
        method: UPDATE,
        params: { botId: BOT.id, messageId: id, fields: { message: 'x' } },
      })
      .then(
        (result) => ({ code: result.getErrors().next().value?.code as string | undefined }),
        (error: { code?: string }) => ({ code: error.code }),
      );
    expect(refused.code).toBe('ACCESS_DENIED');
    expect(h.emulator.getMessage(id)?.text).toBe('a human wrote this');
  });

  it('applies a batchByChunk of 120 updates in at most 3 Bitrix24 calls', async () => {
    const ids = Array.from({ length: 120 }, (_, i) =>
      h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: `row ${i}: waiting` }),
    );
    h.emulator.clearCalls();
    const calls = ids.map((id) => [
      UPDATE,
      { botId: BOT.id, messageId: id, fields: { message: `row ${id}: done` } },
    ]);
    const result = await sdk().actions.v2.batchByChunk.make({
      calls: calls as never,
      options: { isHaltOnError: false },
    });
    expect(result.isSuccess).toBe(true);
    expect(ids.filter((id) => h.emulator.getMessage(id)?.text !== `row ${id}: done`)).toEqual([]);
    expect(h.emulator.calls.filter((c) => !c.viaBatch).length).toBeLessThanOrEqual(3);
  });

  it('gets 401 INVALID_CREDENTIALS in Bitrix24’s shape for a wrong key, and for a revoked one', async () => {
    const codeOf = (b24: B24Hook) =>
      b24.actions.v2.call
        .make({ method: UPDATE, params: { botId: BOT.id, messageId: 789, fields: { message: 'x' } } })
        .then(
          (result) => {
            const error = result.getErrors().next().value as { code?: string; status?: number } | undefined;
            return { code: error?.code, status: error?.status };
          },
          (error: { code?: string; status?: number }) => ({ code: error.code, status: error.status }),
        );
    expect(await codeOf(sdk(`${key.slice(0, 8)}${'x'.repeat(key.length - 8)}`))).toEqual({
      code: 'INVALID_CREDENTIALS',
      status: 401,
    });
    await callers.revoke(parseCallerKey(key)?.keyId as string);
    expect(await codeOf(sdk())).toEqual({ code: 'INVALID_CREDENTIALS', status: 401 });
    expect(h.emulator.calls).toEqual([]);
  });

  it('applies a form-encoded request as CRest sends it (http_build_query over POST)', async () => {
    const id = h.emulator.addMessage({ botId: BOT.id, chatId: 12, text: 'before' });
    const response = await fetch(`${api.url}/rest/1/${key}/${UPDATE}.json`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: encodeBracketParams({
        botId: BOT.id,
        messageId: id,
        fields: { message: 'via CRest', keyboard: [{ TEXT: 'Ok', COMMAND: 'ok' }] },
      }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ result: { result: true } });
    expect(h.emulator.getMessage(id)).toMatchObject({
      text: 'via CRest',
      keyboard: { BUTTONS: [{ TEXT: 'Ok' }] },
    });
  });
});
