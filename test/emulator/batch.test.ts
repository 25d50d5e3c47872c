import { afterEach, describe, expect, it } from 'vitest';
import { type Bitrix24Emulator, startBitrix24Emulator } from '../../local/bitrix24-emulator/index.ts';
import { type DemoSetup, postForm, postJson, startDemo, UPDATE } from './helpers.ts';

let setup: DemoSetup | undefined;
let oauthEmu: Bitrix24Emulator | undefined;

afterEach(async () => {
  await setup?.emu.close();
  await oauthEmu?.close();
  setup = undefined;
  oauthEmu = undefined;
});

interface BatchResult {
  result: Record<string, unknown> | [];
  result_error: Record<string, { error: string; error_description: string }> | [];
  result_total: unknown;
  result_next: unknown;
  result_time: Record<string, unknown> | [];
}

const update = (messageId: number, text: string, extra = '') =>
  `${UPDATE}?botId=456&botToken=my_bot_token&messageId=${messageId}&fields[message]=${encodeURIComponent(text)}${extra}`;

async function batch(body: Record<string, unknown>) {
  if (!setup) throw new Error('Start the demo portal before calling batch()');
  const answer = await postJson(setup.webhook('batch'), body);
  return { ...answer, batch: answer.body.result as BatchResult };
}

describe('batch', () => {
  it('answers 200 with results and errors side by side when some commands fail, timing only the successes', async () => {
    setup = await startDemo();
    const {
      status,
      batch: result,
      body,
    } = await batch({
      cmd: { ok: update(789, 'Build #41: passed'), human: update(800, 'nope'), system: update(801, 'nope') },
    });
    expect(status).toBe(200);
    expect(result.result).toEqual({ ok: { result: true } });
    expect(result.result_error).toEqual({
      human: { error: 'ACCESS_DENIED', error_description: expect.any(String) },
      system: { error: 'ACCESS_DENIED', error_description: expect.any(String) },
    });
    expect(result.result_total).toEqual([]);
    expect(result.result_next).toEqual([]);
    expect(Object.keys(result.result_time)).toEqual(['ok']);
    expect(body.time).toMatchObject({ start: expect.any(Number), operating: expect.any(Number) });
    expect(setup.emu.getMessage(789)?.text).toBe('Build #41: passed');
  });

  it('renders empty sections as [] like PHP does', async () => {
    setup = await startDemo();
    const { batch: result } = await batch({ cmd: { a: update(789, 'x') } });
    expect(result.result_error).toEqual([]);
  });

  it('gives each command the result the method alone would give, by the success shape', async () => {
    setup = await startDemo({ successShape: 'flat' });
    const { batch: result } = await batch({ cmd: { a: update(789, 'x') } });
    expect(result.result).toEqual({ a: true });
  });

  it('stops at the first failing command with halt=1, leaving later ones out of every section', async () => {
    setup = await startDemo();
    const { batch: result } = await batch({
      halt: 1,
      cmd: { first: update(789, 'one'), bad: update(800, 'two'), later: update(790, 'three') },
    });
    expect(result.result).toEqual({ first: { result: true } });
    expect(Object.keys(result.result_error)).toEqual(['bad']);
    expect(Object.keys(result.result_time)).not.toContain('later');
    expect(setup.emu.getMessage(790)?.editCount).toBe(0);
  });

  it('runs every command with halt=false', async () => {
    setup = await startDemo();
    const { batch: result } = await batch({
      halt: false,
      cmd: { bad: update(800, 'two'), later: update(790, 'three') },
    });
    expect(result.result).toEqual({ later: { result: true } });
  });

  it.each([
    ['"false"', 'false'],
    ['"N"', 'N'],
    ['"0.0"', '0.0'],
    ['{a: 1}', { a: 1 }],
  ])('halts on halt=%s, which PHP casts to true', async (_, halt) => {
    setup = await startDemo();
    const { batch: result } = await batch({
      halt,
      cmd: { bad: update(800, 'two'), later: update(790, 'three') },
    });
    expect(Object.keys(result.result_error)).toEqual(['bad']);
    expect(result.result).toEqual([]);
    expect(setup.emu.getMessage(790)?.editCount).toBe(0);
  });

  it.each([
    ['"0"', '0'],
    ['""', ''],
    ['0', 0],
    ['[]', []],
    ['null', null],
  ])('runs every command with halt=%s, which PHP casts to false', async (_, halt) => {
    setup = await startDemo();
    const { batch: result } = await batch({
      halt,
      cmd: { bad: update(800, 'two'), later: update(790, 'three') },
    });
    expect(result.result).toEqual({ later: { result: true } });
  });

  it('halts on halt=false sent in a form body, a non-empty string to PHP', async () => {
    setup = await startDemo();
    const cmd = `cmd[bad]=${encodeURIComponent(update(800, 'two'))}&cmd[later]=${encodeURIComponent(update(790, 'three'))}`;
    const answer = await postForm(setup.webhook('batch'), `halt=false&${cmd}`);
    const result = answer.body.result as BatchResult;
    expect(Object.keys(result.result_error)).toEqual(['bad']);
    expect(setup.emu.getMessage(790)?.editCount).toBe(0);
  });

  it('runs the first 50 commands and fails each one past 50 with ERROR_BATCH_LENGTH_EXCEEDED', async () => {
    setup = await startDemo();
    const cmd = Object.fromEntries(Array.from({ length: 52 }, (_, i) => [`c${i}`, update(789, `t${i}`)]));
    const { status, batch: result } = await batch({ cmd });
    expect(status).toBe(200);
    expect(Object.keys(result.result)).toHaveLength(50);
    expect(result.result_error).toEqual({
      c50: { error: 'ERROR_BATCH_LENGTH_EXCEEDED', error_description: expect.any(String) },
      c51: { error: 'ERROR_BATCH_LENGTH_EXCEEDED', error_description: expect.any(String) },
    });
    expect(Object.keys(result.result_time)).not.toContain('c50');
    expect(setup.emu.getMessage(789)).toMatchObject({ editCount: 50, text: 't49' });
  });

  it('accepts exactly 50 commands', async () => {
    setup = await startDemo();
    const cmd = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`c${i}`, update(789, `t${i}`)]));
    const answer = await batch({ cmd });
    expect(answer.status).toBe(200);
    expect(setup.emu.getMessage(789)?.editCount).toBe(50);
  });

  it('refuses a nested batch per command with ERROR_BATCH_METHOD_NOT_ALLOWED', async () => {
    setup = await startDemo();
    const { batch: result } = await batch({
      cmd: { inner: 'batch?cmd[x]=imbot.v2.Revision.get', a: update(789, 'x') },
    });
    expect(result.result_error).toEqual({
      inner: expect.objectContaining({ error: 'ERROR_BATCH_METHOD_NOT_ALLOWED' }),
    });
    expect(result.result).toEqual({ a: { result: true } });
  });

  it('fails only the disallowed commands in "command" mode', async () => {
    setup = await startDemo();
    setup.emu.disallowInBatch(UPDATE, 'command');
    const { status, batch: result } = await batch({
      cmd: { a: update(789, 'x'), r: 'imbot.v2.Revision.get' },
    });
    expect(status).toBe(200);
    expect(result.result_error).toEqual({
      a: expect.objectContaining({ error: 'ERROR_BATCH_METHOD_NOT_ALLOWED' }),
    });
    expect(result.result).toEqual({ r: expect.objectContaining({ rest: expect.any(Number) }) });
    expect(setup.emu.getMessage(789)?.editCount).toBe(0);
  });

  it('refuses the whole call with HTTP 405 in "call" mode', async () => {
    setup = await startDemo();
    setup.emu.disallowInBatch(UPDATE, 'call');
    const answer = await batch({ cmd: { r: 'imbot.v2.Revision.get', a: update(789, 'x') } });
    expect(answer.status).toBe(405);
    expect(answer.body.error).toBe('ERROR_BATCH_METHOD_NOT_ALLOWED');
    expect(setup.emu.getMessage(789)?.editCount).toBe(0);
  });

  it('reads bracket-notation parameters: keyboards, attach and digit-string ids', async () => {
    setup = await startDemo();
    const keyboard =
      '&fields[keyboard][BOT_ID]=456&fields[keyboard][BUTTONS][0][TEXT]=Open&fields[keyboard][BUTTONS][0][LINK]=' +
      encodeURIComponent('https://example.com/b/41?x=1&y=2') +
      '&fields[keyboard][BUTTONS][1][TYPE]=NEWLINE&fields[attach][0][MESSAGE]=Tests%3A+120+passed&fields[urlPreview]=N';
    const { batch: result } = await batch({
      cmd: { a: update(789, 'Build #41 & friends: passed', keyboard) },
    });
    expect(result.result).toEqual({ a: { result: true } });
    expect(setup.emu.getMessage(789)).toMatchObject({
      text: 'Build #41 & friends: passed',
      keyboard: {
        BOT_ID: '456',
        BUTTONS: [{ TEXT: 'Open', LINK: 'https://example.com/b/41?x=1&y=2' }, { TYPE: 'NEWLINE' }],
      },
      attach: [{ MESSAGE: 'Tests: 120 passed' }],
      urlPreview: false,
    });
  });

  it('accepts a keyboard given as a JSON string inside a command', async () => {
    setup = await startDemo();
    const buttons = [{ TEXT: 'Ok', COMMAND: 'ok' }];
    const extra = `&fields[keyboard]=${encodeURIComponent(JSON.stringify(buttons))}`;
    await batch({ cmd: { a: update(789, 'x', extra) } });
    expect(setup.emu.getMessage(789)?.keyboard).toEqual({ BUTTONS: buttons });
  });

  it('still needs botToken inside each webhook command', async () => {
    setup = await startDemo();
    const { batch: result } = await batch({
      cmd: { a: `${UPDATE}?botId=456&messageId=789&fields[message]=x` },
    });
    expect(result.result_error).toEqual({ a: expect.objectContaining({ error: 'BOT_TOKEN_NOT_SPECIFIED' }) });
  });

  it('accepts a form-encoded batch whose commands are URL-encoded twice', async () => {
    setup = await startDemo();
    const form = `halt=0&cmd[a]=${encodeURIComponent(update(789, 'via form'))}`;
    const answer = await postForm(setup.webhook('batch'), form);
    expect((answer.body.result as BatchResult).result).toEqual({ a: { result: true } });
    expect(setup.emu.getMessage(789)?.text).toBe('via form');
  });

  it('applies the outer OAuth token to every command', async () => {
    const emu = await startBitrix24Emulator();
    oauthEmu = emu;
    const grant = emu.addOAuthApp({ clientId: 'app.b', clientSecret: 'secret-b' });
    const botId = emu.registerBot({ owner: { clientId: 'app.b' } });
    const one = emu.addMessage({ botId, text: 'one' });
    const two = emu.addMessage({ botId, text: 'two' });
    const answer = await postJson(`${emu.url}/rest/batch`, {
      auth: grant.accessToken,
      cmd: {
        a: `${UPDATE}?botId=${botId}&messageId=${one}&fields[message]=ONE`,
        b: `${UPDATE}?botId=${botId}&messageId=${two}&fields[message]=TWO`,
      },
    });
    expect((answer.body.result as BatchResult).result).toEqual({ a: { result: true }, b: { result: true } });
    expect(emu.messages().map((m) => m.text)).toEqual(['ONE', 'TWO']);
  });

  it('substitutes $result references to earlier commands', async () => {
    setup = await startDemo();
    const { batch: result } = await batch({
      halt: 1,
      cmd: {
        sent: 'imbot.v2.Chat.Message.send?botId=456&botToken=my_bot_token&dialogId=chat12&fields[message]=new',
        edit: `${UPDATE}?botId=456&botToken=my_bot_token&messageId=$result[sent][id]&fields[message]=edited`,
      },
    });
    const id = (result.result as { sent: { id: number } }).sent.id;
    expect(setup.emu.getMessage(id)?.text).toBe('edited');
  });

  it('records one call for the batch and one per command, marked viaBatch with its key', async () => {
    setup = await startDemo();
    await batch({ cmd: { a: update(789, 'x'), b: update(800, 'y') } });
    expect(setup.emu.calls.map((c) => [c.method, c.viaBatch, c.batchKey, c.httpStatus, c.code])).toEqual([
      ['batch', false, undefined, 200, undefined],
      [UPDATE, true, 'a', 200, undefined],
      [UPDATE, true, 'b', 403, 'ACCESS_DENIED'],
    ]);
  });
});
