import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { WorkerSettings } from './drain-worker.ts';

const WORKER = fileURLToPath(new URL('./drain-worker.ts', import.meta.url));

export interface Worker {
  child: ChildProcess;
  /** Everything the worker wrote, stdout and stderr. */
  output(): string;
  ready: Promise<void>;
  /** SIGKILL: a crash mid-invocation. */
  kill(): Promise<void>;
  /** SIGTERM: stop after the in-flight invocations; resolves with the worker's stats line. */
  stop(): Promise<Record<string, number>>;
}

/** Starts the drain in its own Node process (process.execPath: the Node 24 npm put on PATH). */
export function spawnWorker(settings: WorkerSettings, env: Record<string, string> = {}): Worker {
  const child = spawn(process.execPath, [WORKER, JSON.stringify(settings)], {
    env: { ...process.env, POWERTOOLS_METRICS_DISABLED: 'true', ...env },
    // The IPC channel closes when this process dies: the worker then exits too (no orphan left polling).
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`drain worker did not start: ${out.slice(-2000)}`)),
      20_000,
    );
    const check = () => {
      if (out.includes('DRAIN-READY')) {
        clearTimeout(timer);
        child.stdout?.off('data', check);
        resolve();
      }
    };
    child.stdout?.on('data', check);
    child.once('exit', () => {
      clearTimeout(timer);
      if (!out.includes('DRAIN-READY')) reject(new Error(`drain worker exited: ${out.slice(-2000)}`));
    });
  });
  return {
    child,
    output: () => out,
    ready,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('DRAIN-STATS '));
      return line ? (JSON.parse(line.slice('DRAIN-STATS '.length)) as Record<string, number>) : {};
    },
  };
}
