import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { expect } from 'vitest';
import { DEFAULT_PORTS, tlsCertificateFile } from '../../../local/stack/config.ts';

/** The local stack's port variables, each on a port that was free a moment ago. */
export async function freePorts(): Promise<Record<string, string>> {
  const names = Object.keys(DEFAULT_PORTS);
  const servers: Server[] = [];
  try {
    const ports: Record<string, string> = {};
    // All held open at once, so that no two variables get the same port.
    for (const name of names) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      ports[name] = String((server.address() as { port: number }).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

export interface StartedProcess {
  readonly child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves with the output once `pattern` appears; rejects (with the output) after `timeoutMs` or on exit. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with npm's exit code (or the signal name) once it has exited. */
  readonly exited: Promise<number | string>;
  /**
   * Resolves once stdout and stderr are closed: every process of the group that held them (npm, the
   * shell, node) has exited. npm exits by a signal it was sent itself, as a shell expects, so this is
   * how a test knows the stack itself has stopped.
   */
  readonly closed: Promise<void>;
  /** Sends `signal` to the whole process group, as a terminal's Ctrl-C does. */
  signal(signal: NodeJS.Signals): void;
  /** SIGKILLs the group if it is still running, and removes the certificate file it left (test clean-up). */
  kill(): Promise<void>;
}

/**
 * `npm start` as a user runs it, in its own process group, with `env` added to the environment and
 * `args` after `--` (`npm start -- --paused`). POWERTOOLS_LOG_LEVEL is cleared so the stack's own
 * default applies.
 */
export function npmStart(env: Record<string, string>, args: readonly string[] = []): StartedProcess {
  const { POWERTOOLS_LOG_LEVEL: _level, POWERTOOLS_DEV: _dev, ...inherited } = process.env;
  const child = spawn('npm', ['start', '--silent', ...(args.length > 0 ? ['--', ...args] : [])], {
    env: { ...inherited, ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  const listeners = new Set<() => void>();
  const append = (chunk: Buffer) => {
    text += chunk.toString('utf8');
    for (const listener of listeners) listener();
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  let running = true;
  const exited = once(child, 'exit').then(([code, signal]) => {
    running = false;
    for (const listener of listeners) listener();
    return (code as number | null) ?? (signal as string);
  });

  function signalGroup(signal: NodeJS.Signals): void {
    if (running && child.pid !== undefined) {
      try {
        process.kill(-child.pid, signal);
      } catch {
        // Already gone.
      }
    }
  }

  const closed = Promise.all([
    child.stdout ? once(child.stdout, 'close') : undefined,
    child.stderr ? once(child.stderr, 'close') : undefined,
  ]).then(() => undefined);

  return {
    child,
    output: () => text,
    exited,
    closed,
    signal: signalGroup,
    waitFor(pattern, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pattern.test(text)) {
            done();
            resolve(text);
          } else if (!running) {
            done();
            reject(new Error(`npm start exited before printing ${pattern}:\n${text}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`npm start did not print ${pattern} within ${timeoutMs} ms:\n${text}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    async kill() {
      if (!running) return;
      signalGroup('SIGKILL');
      await exited;
      // Killed, the stack cannot remove its certificate file from the temp directory; its port was this run's.
      const port = Number(env.API_TLS_PORT);
      if (port > 0) await rm(tlsCertificateFile(port), { force: true });
    },
  };
}

export const README_CURL_BODY =
  '{"botId":456,"botToken":"my_bot_token","messageId":789,"fields":{"message":"Updated text"}}';

/**
 * Runs the README's curl (the exact command, against `methodUrl`); without curl on the machine, the
 * same request with fetch. Returns the status and the parsed body.
 */
export async function readmeCurl(
  methodUrl: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const args = ['-sS', '-w', '\n%{http_code}', '-X', 'POST', '-H', 'Content-Type: application/json'];
  const child = spawn('curl', [...args, '-d', README_CURL_BODY, methodUrl], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
  });
  const result = await new Promise<number | 'missing'>((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ENOENT' ? 'missing' : -1));
    child.once('exit', (code) => resolve(code ?? -1));
  });
  if (result === 'missing') {
    const response = await fetch(methodUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: README_CURL_BODY,
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }
  if (result !== 0) throw new Error(`curl exited with ${result}: ${out}`);
  const newline = out.lastIndexOf('\n');
  return { status: Number(out.slice(newline + 1)), body: JSON.parse(out.slice(0, newline)) };
}

/** Polls `read` until `accept` holds; fails with the last value seen. */
export async function eventually<T>(
  read: () => Promise<T>,
  accept: (value: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await read();
    if (accept(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(last)}`);
}

/** A JSON answer of the local stack, which must be a success (the failure names the request and status). */
export async function json<T>(url: string, init?: RequestInit): Promise<T> {
  const response = await fetch(url, init);
  expect(response.ok, `${init?.method ?? 'GET'} ${url} answered ${response.status}`).toBe(true);
  return (await response.json()) as T;
}

/**
 * A command run to its end from the project's root, as a reader runs it in a shell beside
 * `npm start` (`env` added to the environment): its exit code and everything it printed. Killed
 * after a minute.
 */
export function runCommand(
  file: string,
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      cwd: new URL('../../..', import.meta.url).pathname,
      env: { ...process.env, ...env },
    });
    let out = '';
    child.stdout?.on('data', (chunk) => {
      out += String(chunk);
    });
    child.stderr?.on('data', (chunk) => {
      out += String(chunk);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}
