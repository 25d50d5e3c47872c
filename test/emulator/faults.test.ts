import { afterEach, describe, expect, it } from 'vitest';
import { ERROR_TABLE, LocalCode } from '../../lib/bitrix24/error-table.ts';
import type { FaultKind } from '../../local/bitrix24-emulator/index.ts';
import { type DemoSetup, postJson, send, startDemo, UPDATE } from './helpers.ts';

let setup: DemoSetup;

afterEach(async () => {
  await setup?.emu.close();
});

const edit = (text: string) => setup.asBot(UPDATE, { messageId: 789, fields: { message: text } });

describe('scripted faults', () => {
  it.each([
    ['server-error', 500, 'INTERNAL_SERVER_ERROR'],
    ['overload', 503, 'OVERLOAD_LIMIT'],
    ['query-limit', 503, 'QUERY_LIMIT_EXCEEDED'],
    ['operating-limit', 429, 'OPERATION_TIME_LIMIT'],
  ] as const)('answers a %s fault with %i %s and does not run the call', async (kind, status, code) => {
    setup = await startDemo();
    setup.emu.inject({ kind });
    const answer = await edit('changed');
    expect(answer.status).toBe(status);
    expect(answer.body.error).toBe(code);
    expect(setup.emu.getMessage(789)?.editCount).toBe(0);
    expect((await edit('changed')).status).toBe(200);
  });

  it('answers an html fault with a 502 text/html page', async () => {
    setup = await startDemo();
    setup.emu.inject({ kind: 'html' });
    const answer = await edit('changed');
    expect(answer.status).toBe(502);
    expect(answer.contentType).toContain('text/html');
    expect(answer.text).toMatch(/^<html>/);
    expect(setup.emu.getMessage(789)?.editCount).toBe(0);
  });

  it('destroys the socket without an answer on a reset fault', async () => {
    setup = await startDemo();
    setup.emu.inject({ kind: 'reset' });
    await expect(edit('changed')).rejects.toThrow();
    expect(setup.emu.getMessage(789)?.editCount).toBe(0);
    expect(setup.emu.calls.at(-1)?.httpStatus).toBe(0);
  });

  it('answers a slow fault normally after the delay', async () => {
    setup = await startDemo();
    setup.emu.inject({ kind: 'slow', delayMs: 300 });
    const started = performance.now();
    const answer = await edit('late');
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(answer.status).toBe(200);
    expect(setup.emu.getMessage(789)?.text).toBe('late');
  });

  it.each([
    ['server-error', 500],
    ['html', 502],
  ] as const)('runs the call first and then fails on an afterApply %s fault', async (kind, status) => {
    setup = await startDemo();
    setup.emu.inject({ kind, afterApply: true });
    const answer = await edit('applied');
    expect(answer.status).toBe(status);
    expect(setup.emu.getMessage(789)).toMatchObject({ text: 'applied', editCount: 1 });
  });

  it('runs the call first and then drops the connection on an afterApply reset fault', async () => {
    setup = await startDemo();
    setup.emu.inject({ kind: 'reset', afterApply: true });
    await expect(edit('applied')).rejects.toThrow();
    expect(setup.emu.getMessage(789)).toMatchObject({ text: 'applied', editCount: 1 });
  });

  it('hits only requests to the named method, as many times as asked', async () => {
    setup = await startDemo();
    setup.emu.inject({ kind: 'server-error', method: UPDATE }, 2);
    expect((await postJson(setup.webhook('imbot.v2.Revision.get'), {})).status).toBe(200);
    expect((await edit('1')).status).toBe(500);
    expect((await edit('2')).status).toBe(500);
    expect((await edit('3')).status).toBe(200);
  });

  it('treats a batch as one request: a batch fault refuses it before any command runs', async () => {
    setup = await startDemo();
    setup.emu.inject({ kind: 'query-limit', method: 'batch' });
    const cmd = { a: `${UPDATE}?botId=456&botToken=my_bot_token&messageId=789&fields[message]=x` };
    const refused = await postJson(setup.webhook('batch'), { cmd });
    expect(refused.status).toBe(503);
    expect(setup.emu.getMessage(789)?.editCount).toBe(0);
    expect(setup.emu.calls.filter((c) => c.viaBatch)).toHaveLength(0);
  });

  it('answers a scripted error with the given status, code and description', async () => {
    setup = await startDemo();
    setup.emu.inject({ kind: 'error', status: 400, code: 'CANT_EDIT_MESSAGE', description: 'Too old' });
    const answer = await edit('x');
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: 'CANT_EDIT_MESSAGE', error_description: 'Too old' });
  });

  it('leaves OAuth refreshes alone unless a fault names oauth/token', async () => {
    setup = await startDemo();
    const grant = setup.emu.addOAuthApp({ clientId: 'app.f', clientSecret: 'secret-f' });
    const url = `${setup.emu.oauthUrl}?grant_type=refresh_token&client_id=app.f&client_secret=secret-f&refresh_token=${grant.refreshToken}`;
    setup.emu.inject({ kind: 'server-error' });
    setup.emu.inject({ kind: 'overload', method: 'oauth/token' });
    expect((await send(url)).body.error).toBe('OVERLOAD_LIMIT');
    expect((await send(url)).status).toBe(200);
    expect((await edit('x')).status).toBe(500);
  });
});

describe('random faults', () => {
  it('fails the share of requests the rate asks for, using the injected random source', async () => {
    const draws = [0.1, 0, 0.9, 0.7, 0.2, 0.99, 0.9];
    let i = 0;
    setup = await startDemo({ random: () => draws[i++ % draws.length] ?? 0 });
    setup.emu.setRandomFaults({ rate: 0.5, kinds: ['overload', 'query-limit'] });
    // 0.1 < 0.5 fails, kind index floor(0 * 2) = overload; 0.9 passes; 0.7 passes; 0.2 fails, floor(0.99 * 2) = query-limit.
    const statuses = [];
    for (let n = 0; n < 4; n++) {
      const answer = await postJson(setup.webhook('imbot.v2.Revision.get'), {});
      statuses.push(answer.body.error ?? answer.status);
    }
    expect(statuses).toEqual(['OVERLOAD_LIMIT', 200, 200, 'QUERY_LIMIT_EXCEEDED']);
  });

  it('stops once random faults are set to null', async () => {
    setup = await startDemo({ random: () => 0 });
    setup.emu.setRandomFaults({ rate: 1, kinds: ['server-error'] });
    expect((await edit('x')).status).toBe(500);
    setup.emu.setRandomFaults(null);
    expect((await edit('x')).status).toBe(200);
  });

  it('rejects random faults without kinds or with a rate outside 0..1', async () => {
    setup = await startDemo();
    const kinds: FaultKind[] = ['server-error', 'html', 'reset'];
    expect(() => setup.emu.setRandomFaults({ rate: 2, kinds })).toThrow(/rate/);
    expect(() => setup.emu.setRandomFaults({ rate: 0.5, kinds: [] })).toThrow(/kind/);
  });

  it('delays random slow faults by slowMs and then answers', async () => {
    setup = await startDemo({ random: () => 0 });
    setup.emu.setRandomFaults({ rate: 1, kinds: ['slow'], slowMs: 150 });
    const started = performance.now();
    expect((await edit('x')).status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
  });
});

describe('closing', () => {
  it('closes promptly while a slow request is still waiting, dropping its socket', async () => {
    setup = await startDemo();
    setup.emu.inject({ kind: 'slow', delayMs: 10_000 });
    const pending = edit('never');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = performance.now();
    await setup.emu.close();
    expect(performance.now() - started).toBeLessThan(1_000);
    await expect(pending).rejects.toThrow();
  });
});

describe('every Bitrix24 code of the error table', () => {
  const localCodes: ReadonlySet<string> = new Set(Object.values(LocalCode));
  // Rows without a status are our client's own codes; Bitrix24 never sends them.
  const cases = ERROR_TABLE.filter((row) => row.statuses.length > 0 && !localCodes.has(row.code)).flatMap(
    (row) => row.statuses.map((status) => [row.code, status] as const),
  );

  it.each(cases)('answers an injected %s with exactly that code and HTTP %i', async (code, status) => {
    setup = await startDemo();
    setup.emu.inject({ kind: 'error', code, status });
    const answer = await edit('x');
    expect(answer.status).toBe(status);
    expect(answer.body.error).toBe(code);
    expect(answer.body.error_description).toEqual(expect.any(String));
    expect(setup.emu.getMessage(789)?.editCount).toBe(0);
  });
});
