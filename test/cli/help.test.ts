import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = new URL('../..', import.meta.url).pathname;
const scratch = mkdtempSync(join(tmpdir(), 'b24-help-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function run(script: string, args: string[]) {
  return spawnSync(process.execPath, [join(root, script), ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 15_000,
    // Ports of `npm start` that nothing may take: a start that ignored --help would be seen here.
    env: { ...process.env, API_PORT: '0', SANDBOX_PORT: '0', EMULATOR_PORT: '0', SQS_PORT: '0' },
  });
}

const TRACE = /^\s+at .+:\d+:\d+\)?$/m;

const COMMANDS = [
  { command: 'npm start', script: 'local/start.ts', args: [] as string[], bad: ['--port', '1'] },
  {
    command: 'the emulator CLI',
    script: 'local/bitrix24-emulator/cli.ts',
    args: [],
    bad: ['--shape', 'round'],
  },
  { command: 'npm run package', script: 'scripts/package.ts', args: [], bad: ['--dist'] },
  { command: 'npm run deploy', script: 'scripts/deploy.ts', args: [], bad: ['--status-file'] },
  { command: 'npm run b24', script: 'scripts/b24.ts', args: [], bad: ['frobnicate'] },
  { command: 'npm run b24 -- send', script: 'scripts/b24.ts', args: ['send'], bad: ['send', '--dialog'] },
  { command: 'npm run b24 -- status', script: 'scripts/b24.ts', args: ['status'], bad: ['status', 'acme'] },
  {
    command: 'npm run b24 -- replay-failed',
    script: 'scripts/b24.ts',
    args: ['replay-failed'],
    bad: ['replay-failed', '--max', 'lots'],
  },
  {
    command: 'npm run b24 -- register-bot',
    script: 'scripts/b24.ts',
    args: ['register-bot'],
    bad: ['register-bot', '--colour', 'red'],
  },
  { command: 'npm run bench:drain', script: 'bench/drain.ts', args: [], bad: ['--messages', 'many'] },
  { command: 'npm run bench:update', script: 'bench/update.ts', args: [], bad: ['--iterations', '5'] },
];

describe('every command', () => {
  it.each(COMMANDS)(
    '$command --help prints usage, options and an example, and starts nothing',
    ({ script, args }) => {
      const result = run(script, [...args, '--help']);
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/^Usage: /m);
      expect(result.stdout).toMatch(/^Options:\n/m);
      expect(result.stdout).toMatch(/^ {2}-h, --help/m);
      expect(result.stdout).toMatch(/^Examples?:\n {2}\S/m);
      expect(result.stdout).not.toContain('Ready in');
      expect(result.stdout).not.toContain('valid schedule');
      expect(result.stderr).toBe('');
    },
  );

  it.each(COMMANDS)(
    '$command turns a bad argument into one line and exit 2, never a stack trace',
    ({ script, bad }) => {
      const result = run(script, bad);
      expect(result.status, `${result.stdout}\n${result.stderr}`).toBe(2);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(/--help\.$/m);
      expect(result.stderr).not.toMatch(TRACE);
    },
  );

  it('npm run package -- --help builds nothing, even with a --dist folder given', () => {
    const dist = join(scratch, 'dist');
    const result = run('scripts/package.ts', ['--dist', dist, '--help']);
    expect(result.status).toBe(0);
    expect(existsSync(dist)).toBe(false);
  });
});
