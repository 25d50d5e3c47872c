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
  queue: { waiting: number; inFlight: number; failed: number };
  drain: { running: boolean; note: string; pause?: DrainPauseView };
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
  it('holds 20 edits in the queue and the ledger while paused, with no Bitrix24 call, and lands them in at most 2 calls on resume', async () => {
    const ports = await freePorts();
    const api = `http://127.0.0.1:${ports.API_PORT}/rest/imbot.v2.Chat.Message.update`;
    const emulator = `http://127.0.0.1:${ports.EMULATOR_PORT}`;
    const sandbox = `http://127.0.0.1:${ports.SANDBOX_PORT}`;
    // A sweep every second: unless the pause holds it, it applies the edits while they are counted.
    // No status schedules: they spend calls of their own.
    const stack = npmStart({ ...ports, SWEEP_INTERVAL_SECONDS: '1', STATUS_SPECS_FILE: 'off' });
    started.push(stack);
    await stack.waitFor(READY, 20_000);

    const paused = await json<SwitchAnswer>(`${sandbox}/api/drain/pause`, { method: 'POST' });
    expect(paused).toMatchObject({ ok: true, drain: { paused: true, editsWhilePaused: 0 } });
    await stack.waitFor(/drain paused: edits wait in the queue and the ledger/);
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
    // Long enough for two sweeps and a drain receive, had they not been paused.
    await new Promise((resolve) => setTimeout(resolve, 2_000));

    expect((await json<CallRecord[]>(`${emulator}/_emulator/calls`)).slice(mark)).toEqual([]);
    const held = await json<SandboxState>(`${sandbox}/api/state`);
    expect(held.drain).toMatchObject({ running: false, pause: { paused: true, editsWhilePaused: EDITS } });
    expect(held.queue.waiting + held.queue.inFlight).toBe(EDITS);
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
    expect(landed.queue).toMatchObject({ waiting: 0, inFlight: 0, failed: 0 });
    const calls = (await json<CallRecord[]>(`${emulator}/_emulator/calls`))
      .slice(mark)
      .filter((call) => !call.viaBatch);
    expect(calls.length).toBeGreaterThan(0);
    expect(calls.length).toBeLessThanOrEqual(2);
    expect(calls.map((call) => call.method)).toEqual(calls.map(() => 'batch'));
    expect(resumed.drain.lastResume?.calls).toBe(calls.length);
    await stack.waitFor(new RegExp(`drain resumed: ${EDITS} edits → ${calls.length} Bitrix24 call`));
    expect(await (await fetch(`${sandbox}/`)).text()).toMatch(
      new RegExp(
        `data-testid="last-resume">Last resume at [\\d:]+: ${EDITS} edits → ${calls.length} Bitrix24 call`,
      ),
    );
  }, 60_000);
});
