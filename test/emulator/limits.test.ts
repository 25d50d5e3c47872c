import { afterEach, describe, expect, it } from 'vitest';
import { type DemoSetup, manualClock, postJson, startDemo, UPDATE } from './helpers.ts';

let setup: DemoSetup;

afterEach(async () => {
  await setup?.emu.close();
});

const revision = () => postJson(setup.webhook('imbot.v2.Revision.get'), {});

describe('leaky bucket', () => {
  it('refuses the request that would go above burst with 503 QUERY_LIMIT_EXCEEDED, adding nothing', async () => {
    const clock = manualClock();
    setup = await startDemo({ now: clock.now, limits: { burst: 3, perSecond: 1 } });
    for (let i = 0; i < 3; i++) expect((await revision()).status).toBe(200);
    const refused = await revision();
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({
      error: 'QUERY_LIMIT_EXCEEDED',
      error_description: 'Too many requests',
    });
    expect(setup.emu.bucketLevel()).toBe(3);
  });

  it('lets requests through again as the level drains by perSecond', async () => {
    const clock = manualClock();
    setup = await startDemo({ now: clock.now, limits: { burst: 3, perSecond: 2 } });
    for (let i = 0; i < 3; i++) await revision();
    expect((await revision()).status).toBe(503);
    clock.advance(500);
    expect(setup.emu.bucketLevel()).toBe(2);
    expect((await revision()).status).toBe(200);
    expect((await revision()).status).toBe(503);
    clock.advance(1_500);
    expect(setup.emu.bucketLevel()).toBe(0);
    for (let i = 0; i < 3; i++) expect((await revision()).status).toBe(200);
  });

  it('counts a batch call once, however many commands it carries', async () => {
    const clock = manualClock();
    setup = await startDemo({ now: clock.now, limits: { burst: 2, perSecond: 1 } });
    const cmd = Object.fromEntries(
      Array.from({ length: 10 }, (_, i) => [`c${i}`, 'imbot.v2.Revision.get?botToken=my_bot_token']),
    );
    const batch = await postJson(setup.webhook('batch'), { cmd });
    expect(batch.status).toBe(200);
    expect(setup.emu.bucketLevel()).toBe(1);
  });

  it('never refuses when limits are null, and applies limits set later', async () => {
    const clock = manualClock();
    setup = await startDemo({ now: clock.now, limits: null });
    for (let i = 0; i < 60; i++) expect((await revision()).status).toBe(200);
    setup.emu.setLimits({ burst: 1, perSecond: 1 });
    expect((await revision()).status).toBe(200);
    expect((await revision()).status).toBe(503);
  });

  it('uses the standard plan by default: 50 requests pass, the 51st is refused', async () => {
    const clock = manualClock();
    setup = await startDemo({ now: clock.now });
    for (let i = 0; i < 50; i++) expect((await revision()).status).toBe(200);
    expect((await revision()).status).toBe(503);
  });
});

describe('operating-time limit', () => {
  const edit = (text: string) => setup.asBot(UPDATE, { messageId: 789, fields: { message: text } });

  it('answers 429 OPERATION_TIME_LIMIT once the method has used its budget (successes carry operating and operating_reset_at, the refusal no time)', async () => {
    const clock = manualClock();
    setup = await startDemo({ now: clock.now, operatingLimitSeconds: 1, processingMs: 400 });
    const startSeconds = Math.floor(clock.now() / 1000);
    const first = await edit('a');
    expect(first.body.time).toMatchObject({ operating: 0.4, operating_reset_at: startSeconds + 600 });
    clock.advance(1_000);
    await edit('b');
    // The call that crosses the limit still runs; only the next one is refused.
    const crossing = await edit('c');
    expect(crossing.status).toBe(200);
    expect(crossing.body.time?.operating).toBeCloseTo(1.2);
    const refused = await edit('d');
    expect(refused.status).toBe(429);
    expect(refused.body.error).toBe('OPERATION_TIME_LIMIT');
    expect(refused.body).not.toHaveProperty('time');
    expect(setup.emu.getMessage(789)?.text).toBe('c');
  });

  it('blocks only that method for that webhook', async () => {
    const clock = manualClock();
    setup = await startDemo({ now: clock.now, operatingLimitSeconds: 0.5, processingMs: 500 });
    await edit('a');
    expect((await edit('b')).status).toBe(429);
    expect((await revision()).status).toBe(200);
    setup.emu.addWebhook({ userId: 1, code: 'second_hook_of_user_1' });
    const otherHook = await postJson(`${setup.emu.url}/rest/1/second_hook_of_user_1/${UPDATE}`, {
      botId: 456,
      botToken: 'my_bot_token',
      messageId: 789,
      fields: { message: 'other hook' },
    });
    expect(otherHook.status).toBe(200);
  });

  it('unblocks when enough one-minute baskets have dropped out of the ten-minute window', async () => {
    const clock = manualClock();
    setup = await startDemo({ now: clock.now, operatingLimitSeconds: 1, processingMs: 600 });
    await edit('minute 0');
    clock.advance(120_000);
    await edit('minute 2');
    expect((await edit('blocked')).status).toBe(429);
    clock.advance(480_000);
    // The first basket (minute 0) has dropped; the one of minute 2 alone is under the limit.
    const after = await edit('free again');
    expect(after.status).toBe(200);
    expect(after.body.time?.operating).toBeCloseTo(1.2);
  });

  it('counts the commands of a batch against their own method, not against batch', async () => {
    const clock = manualClock();
    setup = await startDemo({ now: clock.now, operatingLimitSeconds: 1, processingMs: 500 });
    const update = (id: number) =>
      `${UPDATE}?botId=456&botToken=my_bot_token&messageId=${id}&fields[message]=batched`;
    const batch = await postJson(setup.webhook('batch'), {
      cmd: { a: update(789), b: update(790), c: update(791) },
    });
    expect(batch.status).toBe(200);
    const result = batch.body.result as { result_error: Record<string, { error: string }> };
    expect(result.result_error).toEqual({ c: expect.objectContaining({ error: 'OPERATION_TIME_LIMIT' }) });
    expect((await edit('direct')).status).toBe(429);
    const again = await postJson(setup.webhook('batch'), { cmd: { r: 'imbot.v2.Revision.get' } });
    expect(again.status).toBe(200);
  });

  it('bills a batch as the method batch when set per batch: every command shows the batch’s operating, and a spent batch budget refuses the whole call', async () => {
    const clock = manualClock();
    setup = await startDemo({
      now: clock.now,
      operatingLimitSeconds: 1,
      processingMs: 300,
      operatingBilling: 'per-batch',
    });
    const update = (id: number) =>
      `${UPDATE}?botId=456&botToken=my_bot_token&messageId=${id}&fields[message]=batched`;
    const first = await postJson(setup.webhook('batch'), {
      cmd: { a: update(789), b: update(790), c: update(791), d: update(789) },
    });
    expect(first.status).toBe(200);
    const result = first.body.result as {
      result_error: unknown;
      result_time: Record<string, { operating: number }>;
    };
    // The batch budget is checked before the call, so all four commands ran (1.2 s crosses it).
    expect(result.result_error).toEqual([]);
    expect(first.body.time?.operating).toBeCloseTo(1.2);
    expect(Object.values(result.result_time).map((t) => t.operating)).toEqual([1.2, 1.2, 1.2, 1.2]);
    const refused = await postJson(setup.webhook('batch'), { cmd: { a: update(790) } });
    expect(refused.status).toBe(429);
    expect(refused.body.error).toBe('OPERATION_TIME_LIMIT');
    // The update method itself was never billed: a single call still goes through.
    expect((await edit('single call')).status).toBe(200);
  });

  it('scales the ten baskets down to the basket length it is given, with reset times in milliseconds', async () => {
    const clock = manualClock();
    setup = await startDemo({
      now: clock.now,
      operatingLimitSeconds: 0.5,
      processingMs: 500,
      operatingBasketMs: 100,
    });
    const startMs = clock.now();
    const first = await edit('a');
    expect(first.body.time).toMatchObject({ operating: 0.5, operating_reset_at: (startMs + 1_000) / 1000 });
    clock.advance(999);
    expect((await edit('still blocked')).status).toBe(429);
    clock.advance(1);
    expect((await edit('a second later')).status).toBe(200);
  });
});
