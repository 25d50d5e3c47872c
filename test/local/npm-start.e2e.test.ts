import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, freePorts, npmStart, readmeCurl, type StartedProcess } from './support/npm-start.ts';

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
  queue: { waiting: number; inFlight: number; failed: number; failures: Array<{ errorCode: string }> };
  requests: Array<{ status: number; outcome: string; reason?: string }>;
}

async function json<T>(url: string, init?: RequestInit): Promise<T> {
  const response = await fetch(url, init);
  expect(response.ok, `${init?.method ?? 'GET'} ${url} answered ${response.status}`).toBe(true);
  return (await response.json()) as T;
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

describe('npm start', () => {
  it("applies the README's curl to message 789, defers it through the queue when Bitrix24 is busy, and stops on Ctrl-C", async () => {
    const ports = await freePorts();
    const api = `http://127.0.0.1:${ports.API_PORT}/rest/imbot.v2.Chat.Message.update`;
    const emulator = `http://127.0.0.1:${ports.EMULATOR_PORT}`;
    const sandbox = `http://127.0.0.1:${ports.SANDBOX_PORT}`;
    const stack = start(ports);
    const banner = await stack.waitFor(READY, 20_000);
    expect(banner).toContain(api);
    expect(banner).toContain(`${sandbox}/`);

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
    const deferred = await readmeCurl(api);
    expect(deferred.status).toBe(202);
    expect(deferred.body).toMatchObject({ result: true, deferred: true, reason: 'QUERY_LIMIT_EXCEEDED' });
    const converged = await eventually(
      () => json<EmulatedMessage>(`${emulator}/_emulator/messages/789`),
      (m) => m.editCount === 2,
      15_000,
    );
    expect(converged.history.at(-1)).toBe('Updated text');
    const drained = await eventually(
      () => json<SandboxState>(`${sandbox}/api/state`),
      (s) => s.queue.waiting === 0 && s.queue.inFlight === 0,
    );
    expect(drained.queue.failed).toBe(0);
    expect(drained.requests.map((r) => r.outcome)).toEqual(['deferred', 'applied']);
    await stack.waitFor(/drain: 1 edit received, 1 settled/);

    // An edit the drain cannot apply (a person's message) ends in the failed-edits queue with its reason.
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

    const stoppedAt = Date.now();
    stack.signal('SIGINT');
    await stack.closed;
    expect(Date.now() - stoppedAt).toBeLessThan(5_000);
    // npm re-raises the Ctrl-C it received once the stack has exited, as a shell expects.
    expect([0, 'SIGINT']).toContain(await stack.exited);
    expect(stack.output()).toMatch(/Stopped\.\s*$/);
    for (const secret of DEMO_SECRETS) expect(stack.output()).not.toContain(secret);

    // A second start right after the first, on the same ports.
    const again = start(ports);
    await again.waitFor(READY, 20_000);
    expect((await json<EmulatedMessage>(`${emulator}/_emulator/messages/789`)).editCount).toBe(0);
    again.signal('SIGTERM');
    await again.closed;
    expect(again.output()).toMatch(/SIGTERM: stopping the local stack…[\s\S]*Stopped\.\s*$/);
  }, 90_000);

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
      // What started before the API (emulator, Secrets Manager, SQS) was stopped again.
      for (const name of ['EMULATOR_PORT', 'SQS_PORT', 'SECRETS_MANAGER_PORT']) {
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
