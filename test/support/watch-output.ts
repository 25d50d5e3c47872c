// Loaded before every test file: watches everything written to stdout/stderr and the console, and
// fails the file if a test secret (they all carry SECRET_MARKER) ever appears in it.
import { afterAll, expect } from 'vitest';

const MARKER = 's3cr3t';
const leaks: string[] = [];

function scan(chunk: unknown): void {
  const text =
    typeof chunk === 'string' ? chunk : chunk instanceof Uint8Array ? Buffer.from(chunk).toString() : '';
  if (text.includes(MARKER)) leaks.push(text.slice(0, 500));
}

for (const stream of [process.stdout, process.stderr]) {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    scan(chunk);
    return write(chunk, ...rest);
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
