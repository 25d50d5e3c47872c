import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = new URL('../..', import.meta.url).pathname;
const fixture = join(root, 'test/deploy/fixtures/status-messages.yml');
const scratch = mkdtempSync(join(tmpdir(), 'b24-deploy-cmd-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** No AWS credentials, profile, config file or instance metadata within reach: osls cannot reach AWS. */
function offlineEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('AWS_')));
  return {
    ...env,
    HOME: mkdtempSync(join(scratch, 'home-')),
    AWS_EC2_METADATA_DISABLED: 'true',
    STATUS_MESSAGES_FILE: fixture,
  };
}

function deploy(args: string[]): SpawnSyncReturns<string> {
  return spawnSync(
    process.execPath,
    [
      join(root, 'scripts/deploy.ts'),
      '--dist',
      mkdtempSync(join(scratch, 'dist-')),
      '--package',
      mkdtempSync(join(scratch, 'sls-')),
      ...args,
    ],
    { cwd: root, env: offlineEnv(), encoding: 'utf8', timeout: 110_000 },
  );
}

/** What the repository's own dist/ looks like, to prove a run left it alone. */
function repositoryDist(): string {
  const dist = join(root, 'dist');
  return existsSync(dist) ? `dist/ modified ${statSync(dist).mtimeMs}` : 'no dist/';
}

describe('npm run deploy', () => {
  it("packages, checks and warns of alarms without a topic, then ends with osls's own message when AWS cannot be reached, leaving dist/ alone", () => {
    const before = repositoryDist();
    const result = deploy(['--stage', 'citest']);
    const output = `${result.stdout}\n${result.stderr}`;
    expect(result.stderr).toContain(
      'Warning: alarmTopicArn is empty, so the 6 alarms (FailedEditsAlarm, OldestEditAgeAlarm, PortalCircuitOpenAlarm, DrainErrorsAlarm, ReconcileErrorsAlarm, PortalWorkDeadLetterAlarm) notify nobody',
    );
    expect(result.status, output).toBe(1);
    expect(result.stdout).toContain('2 valid schedule(s)');
    expect(result.stdout).toMatch(/Packaged: .*cloudformation-template-update-stack\.json/);
    // osls writes its error last, on stdout; no Node trace anywhere.
    expect(result.stdout.trimEnd()).toMatch(/AWS provider credentials not found[^\n]*$/);
    expect(output).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
    expect(repositoryDist()).toBe(before);
  }, 120_000);

  it('refuses to deploy a package whose template fails the checks, before osls deploy starts', () => {
    const result = deploy(['--stage', 'citest', '--param', 'b24TimeoutMs=58000']);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(
      'ReconcilePortalsLambdaFunction: B24_TIMEOUT_MS (58000) + DEADLINE_MARGIN_MS (1000) + one AWS request (3000 ms) must fit in its timeout (60000 ms)',
    );
    expect(`${result.stdout}${result.stderr}`).not.toContain('AWS provider credentials');
    expect(result.stdout).not.toContain('Packaged:');
    expect(result.stderr).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
  }, 120_000);
});

describe('npm run deploy with a misspelt option', () => {
  it('answers one line naming the option it resembles and exits 2, before anything is built', () => {
    const result = deploy(['--stag', 'prod']);
    expect(result.status).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('unknown option --stag: did you mean --stage?');
    expect(result.stdout).not.toContain('Packaged:');
  }, 30_000);
});

describe('npm run package when osls fails', () => {
  it("ends with osls's own message and its exit code, never a Node trace", () => {
    const result = spawnSync(
      process.execPath,
      [
        join(root, 'scripts/package.ts'),
        '--dist',
        mkdtempSync(join(scratch, 'dist-')),
        '--package',
        mkdtempSync(join(scratch, 'sls-')),
        '--param',
        'maxReceiveCount',
      ],
      { cwd: root, env: offlineEnv(), encoding: 'utf8', timeout: 110_000 },
    );
    expect(result.status).toBe(1);
    expect(result.stdout.trimEnd()).toMatch(/Supported format: "--param='<key>=<val>'"$/);
    expect(result.stderr.trimEnd()).toMatch(/Docs: +github\.com\/oss-serverless\/osls$/);
    expect(`${result.stdout}${result.stderr}`).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
    expect(result.stdout).not.toContain('Packaged:');
  }, 120_000);
});
