import { createServer, type Server } from 'node:net';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import { Ledger } from '../../lib/ledger/messages.ts';
import { SWEEP_GRACE_MS } from '../../lib/schedule/sweep.ts';
import { LEDGER_TABLE_NAME, LOCAL_AWS } from '../../local/stack/local-aws.ts';
import {
  eventually,
  freePorts,
  json,
  npmStart,
  readmeCurl,
  type StartedProcess,
} from './support/npm-start.ts';

// The demo's secret values: documentation examples, yet never to be printed.
const DEMO_SECRETS = ['my_bot_token', 'demo_webhook_code'];
const READY = /^Ready in \d+ ms/m;

interface EmulatedMessage {
  text: string;
  editCount: number;
  history: string[];
}

interface SandboxState {
  chat: { messages: Array<{ id: number; text: string; editCount: number }> };
  queue: {
    waiting: number;
    inFlight: number;
    failed: number;
    failures: Array<{ errorCode: string }>;
    wakeups: { ready: number; delayed: number; inFlight: number };
  };
  wakeups: Array<{ portal: string; wakeAt: string; leaseHeld: boolean }>;
  requests: Array<{ status: number; outcome: string; reason?: string }>;
  drain: {
    totals: {
      merged: number;
      applied: number;
      superseded: number;
      failed: number;
      deferred: number;
      calls: number;
    };
  };
}

/** Nothing waits: no edit record, no portal wake-up. */
function settled(state: SandboxState): boolean {
  const { waiting, inFlight, wakeups } = state.queue;
  return waiting + inFlight + wakeups.ready + wakeups.delayed + wakeups.inFlight === 0;
}

const started: StartedProcess[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.kill()));
});

function start(env: Record<string, string>): StartedProcess {
  const process = npmStart(env);
  started.push(process);
  return process;
}

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

/** What GET /messages/{portal}/{botId}/{messageId} answers (the fields these tests read). */
interface MessageFate {
  status: 'applied' | 'pending' | 'failed';
  applied: boolean;
  version: number;
  appliedVersion: number;
  desired: { message?: { value: unknown; editId: string } };
  pendingEditIds: string[];
  lastError?: { code: string; description: string };
}

describe('npm start', () => {
  it("applies the README's curl to message 789, has the reconcile apply an edit deferred while Bitrix24 is busy, answers each edit's fate, and stops on Ctrl-C", async () => {
    const ports = await freePorts();
    const base = `http://127.0.0.1:${ports.API_PORT}`;
    const api = `${base}/rest/imbot.v2.Chat.Message.update`;
    const emulator = `http://127.0.0.1:${ports.EMULATOR_PORT}`;
    const sandbox = `http://127.0.0.1:${ports.SANDBOX_PORT}`;
    // One sweep at start, then none, and no status refresh that could take the injected fault or
    // reconcile the portal: what converges here, the reconcile of the woken portal applied. No
    // cadence either: the deferred edit follows the applied one within a second. No linger: the
    // API calls the portal itself however soon after its last call, and so meets the fault.
    const stack = start({
      ...ports,
      SWEEP_INTERVAL_SECONDS: '3600',
      STATUS_SPECS_FILE: 'off',
      MESSAGE_MIN_INTERVAL_MS: '0',
      BATCH_LINGER_MS: '0',
    });
    const banner = await stack.waitFor(READY, 20_000);
    expect(banner).toContain(api);
    expect(banner).toContain(`${sandbox}/`);
    expect(banner).toContain(`http://127.0.0.1:${ports.DYNAMODB_PORT}  dynalite: table ledger`);

    const before = await json<EmulatedMessage>(`${emulator}/_emulator/messages/789`);
    expect(before.text).not.toBe('Updated text');

    const applied = await readmeCurl(api);
    expect(applied.status).toBe(200);
    expect(applied.body.result).toBe(true);
    const edited = await json<EmulatedMessage>(`${emulator}/_emulator/messages/789`);
    expect(edited.text).toBe('Updated text');
    expect(edited.editCount).toBe(1);
    const state = await json<SandboxState>(`${sandbox}/api/state`);
    expect(state.chat.messages.find((m) => m.id === 789)?.text).toBe('Updated text');
    // The page's HTML carries the messages without any script.
    expect(await (await fetch(`${sandbox}/`)).text()).toContain('Updated text');

    await json(`${emulator}/_emulator/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ fault: { kind: 'query-limit' }, times: 1 }),
    });
    const deferred = await fetch(api, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ botId: 456, messageId: 789, fields: { message: 'Deferred text' } }),
    });
    expect(deferred.status).toBe(202);
    const deferredBody = (await deferred.json()) as { editId: string };
    expect(deferredBody).toMatchObject({ result: true, deferred: true, reason: 'QUERY_LIMIT_EXCEEDED' });
    const converged = await eventually(
      () => json<EmulatedMessage>(`${emulator}/_emulator/messages/789`),
      (m) => m.editCount === 2,
      15_000,
    );
    expect(converged.history.at(-1)).toBe('Deferred text');
    // The portal's wake-up was taken and none is left: nothing else waits in the ledger.
    const drained = await eventually(
      () => json<SandboxState>(`${sandbox}/api/state`),
      (s) => settled(s) && s.wakeups[0]?.wakeAt === 'none',
    );
    expect(drained.queue.failed).toBe(0);
    expect(drained.wakeups).toEqual([expect.objectContaining({ portal: 'demo', leaseHeld: false })]);
    expect(drained.requests.map((r) => r.outcome)).toEqual(['deferred', 'applied']);
    await stack.waitFor(/reconcile: \d+ wake-ups? received: 1 applied \(1 Bitrix24 call\)/);
    // The API deferred the edit into the ledger: no edits queue record, so the drain had nothing to do.
    expect(stack.output()).not.toMatch(/drain: \d+ edits? received/);

    // The fate route reads the ledger: the deferred edit, applied by the reconcile.
    const fate = await json<MessageFate>(`${base}/messages/demo/456/789`);
    expect(fate).toMatchObject({ status: 'applied', applied: true, pendingEditIds: [] });
    expect(fate.appliedVersion).toBe(fate.version);
    expect(fate.desired.message).toMatchObject({ value: 'Deferred text', editId: deferredBody.editId });
    expect((await fetch(`${base}/messages/demo/456/790`)).status).toBe(404);

    // An edit the reconcile cannot apply (a person's message) ends in the failed-edits queue with its reason.
    const refused = await fetch(api, {
      method: 'POST',
      headers: { 'content-type': 'application/json', prefer: 'respond-async' },
      body: JSON.stringify({ botId: 456, messageId: 800, fields: { message: 'Not the bot’s to edit' } }),
    });
    expect(refused.status).toBe(202);
    const failed = await eventually(
      () => json<SandboxState>(`${sandbox}/api/state`),
      (s) => s.queue.failed === 1,
    );
    expect(failed.queue.failures[0]?.errorCode).toBe('ACCESS_DENIED');
    await stack.waitFor(/reconcile: \d+ wake-ups? received: none applied \(1 Bitrix24 call\)/);
    // The failed-edits queue can show the edit before the reconcile's invocation has reported its counts.
    const counted = await eventually(
      () => json<SandboxState>(`${sandbox}/api/state`),
      (s) => s.drain.totals.calls >= 2,
    );
    // Applied: the deferred edit (the README's curl was applied by the API itself); merged: none,
    // since nothing came through the edits queue.
    expect(counted.drain.totals).toMatchObject({ applied: 1, merged: 0, superseded: 0 });
    const refusedFate = await json<MessageFate>(`${base}/messages/demo/456/800`);
    expect(refusedFate).toMatchObject({
      status: 'failed',
      applied: false,
      lastError: { code: 'ACCESS_DENIED' },
    });

    const stoppedAt = Date.now();
    stack.signal('SIGINT');
    await stack.closed;
    expect(Date.now() - stoppedAt).toBeLessThan(5_000);
    // npm re-raises the Ctrl-C it received once the stack has exited, as a shell expects.
    expect([0, 'SIGINT']).toContain(await stack.exited);
    expect(stack.output()).toMatch(/Stopped\.\s*$/);
    for (const secret of DEMO_SECRETS) expect(stack.output()).not.toContain(secret);

    // A second start right after the first, on the same ports, with nothing kept: not the
    // emulator's messages, not the ledger.
    const again = start(ports);
    await again.waitFor(READY, 20_000);
    expect((await json<EmulatedMessage>(`${emulator}/_emulator/messages/789`)).editCount).toBe(0);
    expect((await fetch(`${base}/messages/demo/456/789`)).status).toBe(404);
    again.signal('SIGTERM');
    await again.closed;
    expect(again.output()).toMatch(/SIGTERM: stopping the local stack…[\s\S]*Stopped\.\s*$/);
  }, 90_000);

  it('has the sweep wake a portal whose wake-up never reached the queue, and the reconcile apply its edit', async () => {
    const ports = await freePorts();
    const emulator = `http://127.0.0.1:${ports.EMULATOR_PORT}`;
    const sandbox = `http://127.0.0.1:${ports.SANDBOX_PORT}`;
    // No status schedules: their refresh reconciles the portal's dirty messages too.
    const stack = start({ ...ports, SWEEP_INTERVAL_SECONDS: '1', STATUS_SPECS_FILE: 'off' });
    await stack.waitFor(READY, 20_000);
    const client = new DynamoDBClient({ ...LOCAL_AWS, endpoint: `http://127.0.0.1:${ports.DYNAMODB_PORT}` });
    try {
      // A producer that merged an edit and was elected to wake the portal, long enough ago for the
      // sweep to give the wake-up up for lost, and whose wake-up never reached the queue.
      const ledger = new Ledger({ tableName: LEDGER_TABLE_NAME, client });
      const key = { portal: 'demo', botId: 456, messageId: 790 };
      const edit = { ...key, fields: { message: 'Swept text' }, editId: 'sweep-1', at: Date.now(), seq: '' };
      await ledger.merge(key, [edit], { messageMinIntervalMs: 0, ambiguousSettleMs: 65_000 });
      await ledger.portals.touch('demo');
      expect(await ledger.portals.electWake('demo', Date.now() - 2 * SWEEP_GRACE_MS)).toBe(true);

      const swept = await eventually(
        () => json<EmulatedMessage>(`${emulator}/_emulator/messages/790`),
        (m) => m.text === 'Swept text',
        15_000,
      );
      expect(swept.editCount).toBe(1);
      await stack.waitFor(/sweep: 1 portal overdue, 1 woken/);
      await stack.waitFor(/reconcile: 1 wake-up received: 1 applied \(1 Bitrix24 call\)/);
      expect(stack.output()).not.toMatch(/drain: \d+ edits? received/);
      const fate = await json<MessageFate>(`http://127.0.0.1:${ports.API_PORT}/messages/demo/456/790`);
      expect(fate).toMatchObject({ status: 'applied', desired: { message: { value: 'Swept text' } } });
      // The reconcile let the portal go with nothing left: no wake-up scheduled, none on the queue.
      const state = await eventually(
        () => json<SandboxState>(`${sandbox}/api/state`),
        (s) => settled(s) && s.wakeups[0]?.wakeAt === 'none',
      );
      expect(state.wakeups).toEqual([expect.objectContaining({ portal: 'demo', leaseHeld: false })]);
    } finally {
      client.destroy();
    }
  }, 40_000);

  it('names the port and the variable that changes it when a port is taken, and leaves no service behind', async () => {
    const ports = await freePorts();
    const blocker = await listenOn(Number(ports.API_PORT));
    try {
      const stack = start(ports);
      expect(await stack.exited).toBe(1);
      expect(stack.output()).toContain(
        `Port ${ports.API_PORT} on 127.0.0.1 (the update API) is already in use`,
      );
      expect(stack.output()).toContain('API_PORT=');
      // What started before the API (emulator, Secrets Manager, SQS, DynamoDB) was stopped again.
      for (const name of ['EMULATOR_PORT', 'SQS_PORT', 'SECRETS_MANAGER_PORT', 'DYNAMODB_PORT']) {
        const probe = await listenOn(Number(ports[name]));
        await new Promise((resolve) => probe.close(resolve));
      }
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  }, 30_000);

  it('refuses a port variable that is not a port, naming it', async () => {
    const stack = start({ ...(await freePorts()), SANDBOX_PORT: 'eighty' });
    expect(await stack.exited).toBe(1);
    expect(stack.output()).toContain('Expected SANDBOX_PORT to be a port number from 0 to 65535');
  }, 30_000);
});
