import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startScheduler } from '../../local/stack/scheduler.ts';
import { loadStatusSchedules, parseRate, type StatusSchedule } from '../../local/stack/status-schedules.ts';

const VARS = { PORTAL: 'demo', SANDBOX_URL: 'http://127.0.0.1:8024', API_URL: 'http://127.0.0.1:3000' };
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'status-schedules-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(text: string): Promise<string> {
  const path = join(dir, `${Math.random().toString(36).slice(2)}.yml`);
  await writeFile(path, text);
  return path;
}

const SPEC = `
    portal: \${PORTAL}
    botId: 456
    messageId: 791
    source: { type: http-json, url: "\${SANDBOX_URL}/demo/deploy-status.json" }
    template: "{{#ok}}green{{/ok}}"`;

describe('local status schedules', () => {
  it.each([
    ['rate(10 seconds)', 10_000],
    ['rate(1 minute)', 60_000],
    ['rate(5 minutes)', 300_000],
    ['rate(2 hours)', 7_200_000],
  ])('reads %s as %i ms', (rate, ms) => {
    expect(parseRate(rate)).toBe(ms);
  });

  it.each(['cron(0/10 * * * ? *)', '10s', 'rate(0 seconds)', 'rate(1 fortnight)', 42])(
    'refuses %s as a local rate',
    (rate) => {
      expect(parseRate(rate)).toBeUndefined();
    },
  );

  it('loads the repository’s local file with the variables filled in', async () => {
    const schedules = await loadStatusSchedules('local/status-messages.local.yml', VARS);
    expect(schedules).toHaveLength(1);
    expect(schedules[0]).toMatchObject({ name: 'deploy status', everyMs: 10_000, messageIds: [791] });
    expect(schedules[0]?.input).toMatchObject({
      portal: 'demo',
      source: { url: 'http://127.0.0.1:8024/demo/deploy-status.json' },
    });
  });

  it('loads the deployed file format: a list, several messages per schedule, disabled ones skipped', async () => {
    const path = await file(`
- description: two messages
  rate: [rate(5 minutes), rate(1 minute)]
  input:
    messages:
      - { portal: demo, botId: 456, messageId: 789, source: { type: none }, template: "a {{now}}" }
      - { portal: demo, botId: 456, messageId: 790, source: { type: none }, template: "b {{now}}" }
- rate: rate(1 minute)
  enabled: false
  input: { portal: demo, botId: 456, messageId: 791, source: { type: none }, template: "c" }
`);
    const schedules = await loadStatusSchedules(path, VARS);
    expect(schedules).toEqual([
      expect.objectContaining({ name: 'two messages', everyMs: 60_000, messageIds: [789, 790] }),
    ]);
  });

  it('stops on a bad spec naming the schedule and the field', async () => {
    const path = await file(
      `- rate: rate(1 minute)\n  input:\n    portal: demo\n    botId: 456\n    template: "x"\n    source: { type: none }\n`,
    );
    await expect(loadStatusSchedules(path, VARS)).rejects.toThrow(`${path}[0].input.messageId is required`);
  });

  it('stops on a cron schedule, which only runs when deployed', async () => {
    const path = await file(`- rate: cron(0/10 * * * ? *)\n  input:${SPEC}\n`);
    await expect(loadStatusSchedules(path, VARS)).rejects.toThrow(/rate must be rate\(N seconds\|minutes/);
  });

  it('stops on an unknown variable instead of leaving it empty', async () => {
    const path = await file(`- rate: rate(1 minute)\n  input:${SPEC.replace('PORTAL', 'PORTL')}\n`);
    await expect(loadStatusSchedules(path, VARS)).rejects.toThrow(`unknown variable ${'$'}{PORTL}`);
  });

  it('names the variable that turns schedules off when the file is missing', async () => {
    await expect(loadStatusSchedules(join(dir, 'nope.yml'), VARS)).rejects.toThrow('STATUS_SPECS_FILE=off');
  });
});

describe('the local scheduler', () => {
  const schedule: StatusSchedule = { name: 's', everyMs: 1_000, input: { n: 1 }, messageIds: [1] };

  it('runs each schedule at start and on its interval, with a fresh copy of its input', async () => {
    const inputs: unknown[] = [];
    const scheduler = startScheduler({
      schedules: [{ ...schedule, everyMs: 60 }],
      functionName: 'refreshStatus',
      timeoutMs: 1_000,
      handler: async (event) => {
        inputs.push(event);
        (event as { n: number }).n = 99;
        return { updated: 1 };
      },
    });
    await expect.poll(() => inputs.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
    await scheduler.close();
    expect(inputs.every((i) => (i as { n: number }).n === 99)).toBe(true);
    expect(scheduler.lastRuns()[0]).toMatchObject({ schedule: 's', result: { updated: 1 } });
  });

  it('does not start a run while the previous one of that schedule is still going', async () => {
    let running = 0;
    let most = 0;
    let runs = 0;
    const scheduler = startScheduler({
      schedules: [{ ...schedule, everyMs: 20 }],
      functionName: 'refreshStatus',
      timeoutMs: 1_000,
      handler: async () => {
        running += 1;
        runs += 1;
        most = Math.max(most, running);
        await new Promise((resolve) => setTimeout(resolve, 120));
        running -= 1;
        return {};
      },
    });
    await expect.poll(() => runs, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    await scheduler.close();
    expect(most).toBe(1);
  });

  it('records a run that throws with the error’s name and message', async () => {
    const runs: string[] = [];
    const scheduler = startScheduler({
      schedules: [schedule],
      functionName: 'refreshStatus',
      timeoutMs: 1_000,
      handler: async () => {
        throw new TypeError('bad input');
      },
      onRun: (run) => runs.push(run.error ?? ''),
    });
    await expect.poll(() => runs).toEqual(['TypeError: bad input']);
    await scheduler.close();
  });

  it('runs a schedule on demand and stops firing once closed', async () => {
    let runs = 0;
    const scheduler = startScheduler({
      schedules: [{ ...schedule, everyMs: 3_600_000 }],
      functionName: 'refreshStatus',
      timeoutMs: 1_000,
      handler: async () => {
        runs += 1;
        return {};
      },
    });
    await expect.poll(() => runs).toBe(1);
    await scheduler.runNow();
    expect(runs).toBe(2);
    await scheduler.close();
    await scheduler.runNow();
    expect(runs).toBe(2);
  });
});
