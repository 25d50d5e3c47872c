import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_PORTS } from '../../local/stack/config.ts';
import { freePorts, npmStart, runCommand, type StartedProcess } from './support/npm-start.ts';

// The README's quick start, run as a reader would run it after `npm start`: every command of its
// shell blocks (on this run's free ports instead of the defaults), each answer compared with what
// the README says of it.

const root = join(import.meta.dirname, '../..');
const READY = /^Ready in \d+ ms/m;

/** The commands of the README's "Quick start" shell blocks after the first (the first starts things). */
function quickStartCommands(): string[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const section = readme.slice(
    readme.indexOf('## Quick start'),
    readme.indexOf('\n## ', readme.indexOf('## Quick start') + 3),
  );
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] as string);
  return blocks
    .slice(1)
    .flatMap((block) => block.replace(/\\\n\s*/g, '').split('\n'))
    .map((line) => line.trim())
    .filter((line) => line !== '');
}

/** The command on this run's ports: the README's default ports replaced by the ones in use. */
function onPorts(command: string, ports: Record<string, string>): string {
  let out = command;
  for (const [name, port] of Object.entries(DEFAULT_PORTS)) {
    out = out.replaceAll(`127.0.0.1:${port}`, `127.0.0.1:${ports[name]}`);
  }
  return out;
}

const started: StartedProcess[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.kill()));
});

describe('the README’s quick start', () => {
  it('runs every command after npm start as written, and each answers what the README says', async () => {
    const commands = quickStartCommands();
    // The curl, the fate, a send through the emulator's webhook and the CLI's status, at least.
    expect(commands.length).toBeGreaterThanOrEqual(4);
    const ports = await freePorts();
    const stack = npmStart({ ...ports, STATUS_SPECS_FILE: 'off' });
    started.push(stack);
    await stack.waitFor(READY, 20_000);
    for (const line of commands) {
      const [command = '', said] = line.split(/\s{2,}#\s*/, 2);
      const { code, out } = await runCommand('sh', ['-c', onPorts(command, ports)], ports);
      expect({ command, code }).toEqual({ command, code: 0 });
      if (command.startsWith('curl -X POST')) expect(out).toContain('"result":true');
      // What a comment says the answer holds ("status":"applied"), where it quotes it.
      const quoted = said?.match(/"[^"]+":"[^"]+"/)?.[0];
      if (quoted) expect(out.replaceAll(/\s/g, '')).toContain(quoted);
      if (command.includes('b24 -- send')) expect(out).toMatch(/\b\d+\b/);
    }
  }, 120_000);
});
