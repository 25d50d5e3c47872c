import { afterEach, describe, expect, it } from 'vitest';
import { eventually, freePorts, json, npmStart, type StartedProcess } from './support/npm-start.ts';

const READY = /^Ready in \d+ ms/m;
const MESSAGES = [789, 790, 791];
const EDITS = 20;

/** The emulator's record of one HTTP request (GET /_emulator/calls), the fields read here. */
interface CallRecord {
  seq: number;
  method: string;
  viaBatch: boolean;
}

interface LedgerView {
  text: string | undefined;
  status: string;
  version: number;
  appliedVersion: number;
}

interface ResumeReport {
  edits: number;
  calls: number;
  landed: boolean;
}

interface DrainPauseView {
  paused: boolean;
  editsWhilePaused: number;
  resuming: boolean;
  lastResume?: ResumeReport;
}

interface SandboxState {
  chat: { messages: Array<{ id: number; text: string; ledger?: LedgerView | null }> };
  queue: {
    waiting: number;
    inFlight: number;
    failed: number;
    wakeups: { ready: number; delayed: number; inFlight: number };
  };
  wakeups: Array<{ portal: string; wakeAt: string; leaseHeld: boolean }>;
  drain: {
    running: boolean;
    note: string;
    totals: { applied: number; calls: number };
    pause?: DrainPauseView;
  };
}

interface SwitchAnswer {
  ok: boolean;
  summary: string;
  drain: DrainPauseView;
}

const started: StartedProcess[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.kill()));
});

describe('the sandbox drain switch', () => {
  it("holds 20 edits in the ledger with their portal's wake-up while paused, with no Bitrix24 call, and lands them in at most 2 calls on resume", async () => {
    const ports = await freePorts();
    const api = `http://127.0.0.1:${ports.API_PORT}/rest/imbot.v2.Chat.Message.update`;
    const emulator = `http://127.0.0.1:${ports.EMULATOR_PORT}`;
    const sandbox = `http://127.0.0.1:${ports.SANDBOX_PORT}`;
    // A sweep every second: unless the pause holds it, it wakes the portal while the edits are
    // counted. No status schedules: they spend calls of their own.
    const stack = npmStart({ ...ports, SWEEP_INTERVAL_SECONDS: '1', STATUS_SPECS_FILE: 'off' });
    started.push(stack);
    await stack.waitFor(READY, 20_000);

    const paused = await json<SwitchAnswer>(`${sandbox}/api/drain/pause`, { method: 'POST' });
    expect(paused).toMatchObject({ ok: true, drain: { paused: true, editsWhilePaused: 0 } });
    await stack.waitFor(
      /drain paused: edits wait in the ledger and the queues until resume, with no Bitrix24 call/,
    );
    const mark = (await json<CallRecord[]>(`${emulator}/_emulator/calls`)).length;

    const last = new Map<number, string>();
    for (let i = 1; i <= EDITS; i += 1) {
      const messageId = MESSAGES[i % MESSAGES.length] as number;
      const text = `Edit ${i} of #${messageId}`;
      const response = await fetch(api, {
        method: 'POST',
        headers: { 'content-type': 'application/json', prefer: 'respond-async' },
        body: JSON.stringify({ botId: 456, messageId, fields: { message: text } }),
      });
      expect(response.status).toBe(202);
      last.set(messageId, text);
    }
    // Long enough for two sweeps and a reconcile receive, had they not been paused.
    await new Promise((resolve) => setTimeout(resolve, 2_000));

    expect((await json<CallRecord[]>(`${emulator}/_emulator/calls`)).slice(mark)).toEqual([]);
    const held = await json<SandboxState>(`${sandbox}/api/state`);
    expect(held.drain).toMatchObject({ running: false, pause: { paused: true, editsWhilePaused: EDITS } });
    // The API records deferred edits in the ledger, not in the edits queue; their portal's one
    // wake-up waits on the portal work queue, received by nobody.
    expect(held.queue).toMatchObject({ waiting: 0, inFlight: 0 });
    expect(held.queue.wakeups.ready + held.queue.wakeups.delayed).toBeGreaterThanOrEqual(1);
    expect(held.queue.wakeups.inFlight).toBe(0);
    expect(held.wakeups).toHaveLength(1);
    expect(held.wakeups[0]).toMatchObject({ portal: 'demo', leaseHeld: false });
    expect(held.wakeups[0]?.wakeAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(held.drain.totals).toMatchObject({ applied: 0, calls: 0 });
    for (const id of MESSAGES) {
      const message = held.chat.messages.find((m) => m.id === id);
      expect(message?.text).not.toBe(last.get(id));
      expect(message?.ledger).toMatchObject({ text: last.get(id), status: 'pending' });
      expect(message?.ledger?.version).toBeGreaterThan(message?.ledger?.appliedVersion ?? 0);
    }
    const page = await (await fetch(`${sandbox}/`)).text();
    expect(page).toContain('data-testid="drain-paused"');
    expect(page).toContain('<strong>Drain paused</strong>');

    const resumed = await json<SwitchAnswer>(`${sandbox}/api/drain/resume`, { method: 'POST' });
    expect(resumed.drain).toMatchObject({ paused: false, resuming: false });
    expect(resumed.drain.lastResume).toMatchObject({ edits: EDITS, landed: true });
    expect(resumed.summary).toMatch(new RegExp(`^Resumed: ${EDITS} edits → [12] Bitrix24 calls? in `));

    const landed = await eventually(
      () => json<SandboxState>(`${sandbox}/api/state`),
      (s) => MESSAGES.every((id) => s.chat.messages.find((m) => m.id === id)?.text === last.get(id)),
      10_000,
    );
    for (const id of MESSAGES) {
      const ledger = landed.chat.messages.find((m) => m.id === id)?.ledger;
      expect(ledger).toMatchObject({ text: last.get(id), status: 'applied' });
      expect(ledger?.appliedVersion).toBe(ledger?.version);
    }
    expect(landed.queue).toMatchObject({
      waiting: 0,
      inFlight: 0,
      failed: 0,
      wakeups: { ready: 0, delayed: 0, inFlight: 0 },
    });
    // Nothing left in the ledger: the reconcile let the portal go with no next wake-up.
    const idle = await eventually(
      () => json<SandboxState>(`${sandbox}/api/state`),
      (s) => s.wakeups[0]?.wakeAt === 'none',
    );
    expect(idle.wakeups[0]).toMatchObject({ leaseHeld: false });
    const calls = (await json<CallRecord[]>(`${emulator}/_emulator/calls`))
      .slice(mark)
      .filter((call) => !call.viaBatch);
    expect(calls.length).toBeGreaterThan(0);
    expect(calls.length).toBeLessThanOrEqual(2);
    expect(calls.map((call) => call.method)).toEqual(calls.map(() => 'batch'));
    expect(resumed.drain.lastResume?.calls).toBe(calls.length);
    // The reconcile runner made them: its own count of applied messages and calls.
    expect(idle.drain.totals).toMatchObject({ applied: MESSAGES.length, calls: calls.length });
    await stack.waitFor(new RegExp(`drain resumed: ${EDITS} edits → ${calls.length} Bitrix24 call`));
    expect(await (await fetch(`${sandbox}/`)).text()).toMatch(
      new RegExp(
        `data-testid="last-resume">Last resume at [\\d:]+: ${EDITS} edits → ${calls.length} Bitrix24 call`,
      ),
    );
  }, 60_000);

  it('starts with the reconcile paused too under --paused: a deferred edit waits with its wake-up until Resume', async () => {
    const ports = await freePorts();
    const api = `http://127.0.0.1:${ports.API_PORT}/rest/imbot.v2.Chat.Message.update`;
    const emulator = `http://127.0.0.1:${ports.EMULATOR_PORT}`;
    const sandbox = `http://127.0.0.1:${ports.SANDBOX_PORT}`;
    const stack = npmStart({ ...ports, SWEEP_INTERVAL_SECONDS: '1', STATUS_SPECS_FILE: 'off' }, ['--paused']);
    started.push(stack);
    const banner = await stack.waitFor(READY, 20_000);
    expect(banner).toMatch(/^ {2}Reconcile +polls portal-work: .*; PAUSED$/m);
    const mark = (await json<CallRecord[]>(`${emulator}/_emulator/calls`)).length;

    const response = await fetch(api, {
      method: 'POST',
      headers: { 'content-type': 'application/json', prefer: 'respond-async' },
      body: JSON.stringify({ botId: 456, messageId: 790, fields: { message: 'Waits for Resume' } }),
    });
    expect(response.status).toBe(202);
    // Long enough for a reconcile receive and a sweep, had they not been paused.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect((await json<CallRecord[]>(`${emulator}/_emulator/calls`)).slice(mark)).toEqual([]);
    const held = await json<SandboxState>(`${sandbox}/api/state`);
    expect(held.queue.wakeups.ready + held.queue.wakeups.delayed).toBeGreaterThanOrEqual(1);
    expect(held.wakeups[0]?.wakeAt).toMatch(/^\d{4}-/);
    expect(held.chat.messages.find((m) => m.id === 790)?.ledger).toMatchObject({
      text: 'Waits for Resume',
      status: 'pending',
    });

    const resumed = await json<SwitchAnswer>(`${sandbox}/api/drain/resume`, { method: 'POST' });
    expect(resumed.drain.lastResume).toMatchObject({ edits: 1, landed: true });
    const landed = await eventually(
      () => json<SandboxState>(`${sandbox}/api/state`),
      (s) => s.chat.messages.find((m) => m.id === 790)?.text === 'Waits for Resume',
      10_000,
    );
    expect(landed.chat.messages.find((m) => m.id === 790)?.ledger).toMatchObject({ status: 'applied' });
  }, 60_000);
});
