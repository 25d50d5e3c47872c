import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
const functions = readdirSync(join(root, 'functions'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3));
let outdir: string;

beforeAll(async () => {
  outdir = mkdtempSync(join(tmpdir(), 'b24-bundles-'));
  await run(process.execPath, [join(root, 'scripts/build.mjs'), '--outdir', outdir], { cwd: root });
}, 120_000);
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

describe('the build', () => {
  it('writes one minified ESM bundle per function', () => {
    expect(functions.length).toBeGreaterThan(0);
    expect(readdirSync(outdir).sort()).toEqual([...functions].sort());
    for (const name of functions) {
      const size = statSync(join(outdir, name, 'index.mjs')).size;
      expect(size).toBeGreaterThan(10_000);
      expect(size).toBeLessThan(1_500_000);
    }
  });

  it.each(functions)('imports %s as real ESM in a fresh Node process and exports a handler', async (name) => {
    const script = `const m = await import(${JSON.stringify(`file://${join(outdir, name, 'index.mjs')}`)});
      if (typeof m.handler !== 'function') { console.error('no handler'); process.exit(2); }
      console.log('handler ok');`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      cwd: outdir,
      env: { PATH: process.env.PATH ?? '', AWS_REGION: 'us-east-1' },
      timeout: 30_000,
    });
    expect(stdout).toContain('handler ok');
  });

  it('answers an HTTP event through the bundled update-message handler without any AWS access', async () => {
    const script = `const { handler } = await import(${JSON.stringify(`file://${join(outdir, 'update-message', 'index.mjs')}`)});
      const event = { version: '2.0', rawPath: '/rest/imbot.v2.Chat.Message.update', headers: {},
        requestContext: { http: { method: 'GET' }, requestId: 'r' }, isBase64Encoded: false };
      const res = await handler(event, { getRemainingTimeInMillis: () => 10000 });
      console.log(JSON.stringify(res));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      cwd: outdir,
      env: { PATH: process.env.PATH ?? '', AWS_REGION: 'us-east-1' },
      timeout: 30_000,
    });
    const response = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}');
    expect(response.statusCode).toBe(405);
    expect(JSON.parse(response.body)).toMatchObject({ error: 'METHOD_NOT_ALLOWED' });
  });
});
