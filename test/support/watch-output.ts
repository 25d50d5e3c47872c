// Loaded before every test file: watches everything written to stdout/stderr and the console, and
// fails the file if a test secret (they all carry SECRET_MARKER) ever appears in it.
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, expect } from 'vitest';

const MARKER = 's3cr3t';
const leaks: string[] = [];

function scan(chunk: unknown): void {
  const text =
    typeof chunk === 'string' ? chunk : chunk instanceof Uint8Array ? Buffer.from(chunk).toString() : '';
  if (text.includes(MARKER)) leaks.push(text.slice(0, 500));
}

// The handlers' JSON log lines and EMF metrics (Powertools writes them straight to stdout) go to
// .reports/handler-logs.jsonl instead of the console, so the suite's output stays readable; they are
// still scanned for secrets first, and a test that captures stdout itself still sees them.
const LOG_FILE = join(process.cwd(), '.reports', 'handler-logs.jsonl');
mkdirSync(dirname(LOG_FILE), { recursive: true });
const isHandlerLog = (text: string) => text.startsWith('{"level":') || text.startsWith('{"_aws":');

for (const stream of [process.stdout, process.stderr]) {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    scan(chunk);
    const text =
      typeof chunk === 'string' ? chunk : chunk instanceof Uint8Array ? Buffer.from(chunk).toString() : '';
    if (!isHandlerLog(text)) return write(chunk, ...rest);
    appendFileSync(LOG_FILE, text.endsWith('\n') ? text : `${text}\n`);
    const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined;
    callback?.();
    return true;
  }) as typeof stream.write;
}
for (const level of ['log', 'info', 'warn', 'error', 'debug'] as const) {
  const original = console[level].bind(console);
  console[level] = (...args: unknown[]) => {
    for (const arg of args) scan(typeof arg === 'string' ? arg : safeJson(arg));
    original(...args);
  };
}

function safeJson(value: unknown): string {
  try {
    return value instanceof Error ? `${value.message} ${value.stack ?? ''}` : JSON.stringify(value);
  } catch {
    return String(value);
  }
}

afterAll(() => {
  expect(leaks, 'a secret value reached the output').toEqual([]);
});
