// npm run package [-- --stage prod] [--region eu-west-1] [--param "key=value"] [--status-file path]
//
// Turns a clone into a deployable package, offline and without AWS credentials:
//   1. validates the status messages file (status-messages.yml, or --status-file / STATUS_MESSAGES_FILE)
//      with the refresh handler's own schema, before anything is built;
//   2. builds the esbuild bundles (scripts/build.mjs) and zips each as dist/<name>.zip;
//   3. writes the refreshStatus schedules to dist/refresh-status.schedules.json;
//   4. runs `osls package` (other arguments are passed to it) and checks the generated template.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { ConfigError } from '../lib/errors.ts';
import { assertTemplateConsistent } from './package/check-template.ts';
import { loadStatusSchedules } from './package/status-schedules.ts';
import { zip } from './package/zip.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
export const SCHEDULES_FILE = 'dist/refresh-status.schedules.json';

interface Options {
  statusFile: string;
  packageDir: string;
  slsArgs: string[];
}

function parseArgs(argv: readonly string[]): Options {
  const slsArgs: string[] = [];
  let statusFile = process.env.STATUS_MESSAGES_FILE || 'status-messages.yml';
  let packageDir = '.serverless';
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s) : [arg, undefined];
    const value = () => {
      const next = inline ?? argv[++i];
      if (next === undefined) throw new ConfigError(flag ?? arg, `${flag} needs a value`);
      return next;
    };
    if (flag === '--status-file') {
      statusFile = value();
    } else if (flag === '--package' || flag === '-p') {
      packageDir = value();
      slsArgs.push('--package', packageDir);
    } else {
      slsArgs.push(arg);
    }
  }
  return { statusFile, packageDir, slsArgs };
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): void {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env });
  if (result.status !== 0) {
    throw new Error(`${[command, ...args].join(' ')} failed (${result.signal ?? `exit ${result.status}`})`);
  }
}

/** Each function's artifact as serverless.yml names it, and the handler source it is built from. */
function declaredArtifacts(): Array<{ fn: string; artifact: string; source: string }> {
  const config = parse(readFileSync(join(root, 'serverless.yml'), 'utf8')) as {
    functions: Record<string, { package?: { artifact?: string } }>;
  };
  return Object.entries(config.functions).map(([fn, def]) => {
    const artifact = def.package?.artifact ?? '';
    const name = artifact.replace(/^dist\//, '').replace(/\.zip$/, '');
    return { fn, artifact, source: `functions/${name}.ts` };
  });
}

function zipBundles(): void {
  const dist = join(root, 'dist');
  for (const name of readdirSync(dist)) {
    const bundle = join(dist, name, 'index.mjs');
    if (!existsSync(bundle)) continue;
    const archive = zip([{ name: 'index.mjs', data: readFileSync(bundle) }]);
    writeFileSync(join(dist, `${name}.zip`), archive);
    console.log(`dist/${name}.zip ${(archive.length / 1024).toFixed(1)} KiB`);
  }
}

function main(): void {
  const options = parseArgs(process.argv.slice(2));
  const statusPath = resolve(root, options.statusFile);
  const inTree = relative(root, statusPath);
  const statusLabel = inTree && !inTree.startsWith('..') ? inTree : options.statusFile;
  const schedules = loadStatusSchedules(statusPath, statusLabel);
  console.log(`${statusLabel}: ${schedules.length} valid schedule(s)`);

  const missing = declaredArtifacts().filter(({ source }) => !existsSync(join(root, source)));
  if (missing.length > 0) {
    throw new ConfigError(
      'serverless.yml',
      `serverless.yml declares functions whose handlers do not exist: ${missing
        .map(({ fn, source }) => `${fn} (${source})`)
        .join(', ')}`,
    );
  }

  run(process.execPath, [join(root, 'scripts/build.mjs')]);
  zipBundles();
  writeFileSync(join(root, SCHEDULES_FILE), `${JSON.stringify({ events: schedules }, null, 2)}\n`);

  // Packaging needs no AWS account; the telemetry and update notices would only try the network.
  run(process.execPath, [join(root, 'node_modules/osls/bin/serverless.js'), 'package', ...options.slsArgs], {
    ...process.env,
    SLS_TELEMETRY_DISABLED: '1',
    SLS_NOTIFICATIONS_MODE: 'off',
  });

  const packageDir = isAbsolute(options.packageDir) ? options.packageDir : join(root, options.packageDir);
  const templatePath = join(packageDir, 'cloudformation-template-update-stack.json');
  assertTemplateConsistent(JSON.parse(readFileSync(templatePath, 'utf8')), relative(root, templatePath));
  console.log(`Packaged: ${relative(root, templatePath)}`);
}

try {
  main();
} catch (error) {
  // Configuration problems are for the person packaging: the message, not a stack trace.
  console.error(error instanceof ConfigError ? error.message : error);
  process.exitCode = 1;
}
