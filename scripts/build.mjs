// One minified ESM bundle per handler in functions/, written to dist/<function-name>/index.mjs.
import { readdirSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;
const { values } = parseArgs({ options: { outdir: { type: 'string', default: 'dist' } } });
const outdir = resolve(root, values.outdir);
const entries = readdirSync(join(root, 'functions')).filter((f) => f.endsWith('.ts'));
rmSync(outdir, { recursive: true, force: true });

for (const file of entries) {
  const name = basename(file, '.ts');
  const result = await build({
    entryPoints: [join(root, 'functions', file)],
    outfile: join(outdir, name, 'index.mjs'),
    bundle: true,
    minify: true,
    platform: 'node',
    target: 'node24',
    format: 'esm',
    // The AWS SDK's CommonJS builds call require('node:https'), which an ESM bundle cannot do.
    mainFields: ['module', 'main'],
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
  });
  const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
  console.log(`${join(values.outdir, name, 'index.mjs')} ${(bytes / 1024).toFixed(1)} KiB`);
}
