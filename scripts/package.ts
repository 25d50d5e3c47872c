// npm run package [-- --stage prod] [--region eu-west-1] [--param "key=value"] [--status-file path] [--dist dir]
//
// Turns a clone into a deployable package, offline and without AWS credentials:
//   1. validates the status messages file (status-messages.yml, or --status-file / STATUS_MESSAGES_FILE)
//      with the refresh handler's own schema, before anything is built;
//   2. builds the esbuild bundles (scripts/build.mjs) and zips each as <dist>/<name>.zip;
//   3. writes the refreshStatus schedules to <dist>/refresh-status.schedules.json;
//   4. runs `osls package` (other arguments are passed to it) and checks the generated template.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { ConfigError } from '../lib/errors.ts';
import { ChildProcessFailed, type CommandSpec, helpText, runCommand, UsageError, wantsHelp } from './cli.ts';
import { alarmsWithoutActions, assertTemplateConsistent } from './package/check-template.ts';
import { loadStatusSchedules } from './package/status-schedules.ts';
import { zip } from './package/zip.ts';

export const root = fileURLToPath(new URL('..', import.meta.url));
export const SCHEDULES_FILE = 'refresh-status.schedules.json';

export const PACKAGE_OPTIONS: CommandSpec['options'] = {
  stage: {
    type: 'string',
    value: '<stage>',
    default: 'dev',
    description: 'stage (stack b24-message-editor-<stage>)',
  },
  region: { type: 'string', value: '<region>', default: 'eu-central-1', description: 'AWS region' },
  param: {
    type: 'string',
    value: '"key=value"',
    description: 'a stage parameter of serverless.yml (repeatable), e.g. "alarmTopicArn=arn:aws:sns:…"',
  },
  'status-file': {
    type: 'string',
    value: '<path>',
    default: 'status-messages.yml',
    description: 'status messages file (or STATUS_MESSAGES_FILE)',
  },
  dist: {
    type: 'string',
    value: '<dir>',
    default: 'dist',
    description: 'folder the zips and the schedules are written to',
  },
  package: {
    type: 'string',
    short: 'p',
    value: '<dir>',
    default: '.serverless',
    description: 'folder osls writes the CloudFormation template to',
  },
};

const COMMAND: CommandSpec = {
  name: 'npm run package',
  summary:
    'Builds the deployable package offline, without AWS credentials: validates the status messages file,\n' +
    'builds and zips one esbuild bundle per function, writes the schedules, runs `osls package` and checks the\n' +
    'generated template. Other arguments go to osls unchanged.',
  usage: '-- [options] [osls options]',
  options: PACKAGE_OPTIONS,
  examples: [
    'npm run package -- --stage prod --param "alarmTopicArn=arn:aws:sns:eu-central-1:123456789012:alerts"',
  ],
};

export interface PackageOptions {
  statusFile: string;
  /** Absolute. */
  packageDir: string;
  /** Absolute. */
  distDir: string;
  /** Arguments for osls, `--package` and the distDir parameter included. */
  slsArgs: string[];
}

const absolute = (dir: string) => (isAbsolute(dir) ? dir : resolve(root, dir));

/** Options of ours and osls's that a typo most often comes near. */
const KNOWN_FLAGS = [...Object.keys(PACKAGE_OPTIONS ?? {}), 'aws-profile', 'verbose', 'config', 'force'];

/** The known option `name` is a typo of (one or two letters off), or undefined. */
function misspelt(name: string): string | undefined {
  if (KNOWN_FLAGS.includes(name)) return undefined;
  return KNOWN_FLAGS.find((known) => editDistance(name, known) <= (known.length > 4 ? 2 : 1));
}

/** Levenshtein distance: the fewest insertions, deletions and substitutions from `a` to `b`. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

export function parsePackageArgs(argv: readonly string[]): PackageOptions {
  const slsArgs: string[] = [];
  let statusFile = process.env.STATUS_MESSAGES_FILE || 'status-messages.yml';
  let packageDir = '.serverless';
  let distDir = 'dist';
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s) : [arg, undefined];
    const value = () => {
      const next = inline ?? argv[++i];
      if (next === undefined || next === '') throw new UsageError(`${flag} needs a value`);
      return next;
    };
    if (flag === '--status-file') {
      statusFile = value();
    } else if (flag === '--package' || flag === '-p') {
      packageDir = value();
    } else if (flag === '--dist') {
      distDir = value();
    } else if (flag === '--param' && /^distDir=/.test(inline ?? argv[i + 1] ?? '')) {
      throw new UsageError('the distDir parameter is set by --dist <dir>');
    } else if (flag.startsWith('--') && misspelt(flag.slice(2)) !== undefined) {
      // Everything else goes to osls, which would find the typo only after the whole build.
      throw new UsageError(`unknown option ${flag}: did you mean --${misspelt(flag.slice(2))}?`);
    } else {
      slsArgs.push(arg);
    }
  }
  const options = { statusFile, packageDir: absolute(packageDir), distDir: absolute(distDir) };
  return {
    ...options,
    slsArgs: [...slsArgs, '--package', options.packageDir, '--param', `distDir=${options.distDir}`],
  };
}

export function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): void {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env });
  if (result.status !== 0) {
    throw new ChildProcessFailed(args[0] ?? command, result.status ?? 1);
  }
}

/** Runs osls (the dev dependency) without telemetry or update notices, which would only try the network. */
export function osls(args: string[]): void {
  run(process.execPath, [join(root, 'node_modules/osls/bin/serverless.js'), ...args], {
    ...process.env,
    SLS_TELEMETRY_DISABLED: '1',
    SLS_NOTIFICATIONS_MODE: 'off',
  });
}

/** Each function's artifact as serverless.yml names it, and the handler source it is built from. */
function declaredArtifacts(): Array<{ fn: string; artifact: string; source: string }> {
  const config = parse(readFileSync(join(root, 'serverless.yml'), 'utf8')) as {
    functions: Record<string, { package?: { artifact?: string } }>;
  };
  return Object.entries(config.functions).map(([fn, def]) => {
    const artifact = def.package?.artifact ?? '';
    const name = artifact.replace(/^.*\//, '').replace(/\.zip$/, '');
    return { fn, artifact, source: `functions/${name}.ts` };
  });
}

const shown = (path: string) => {
  const inTree = relative(root, path);
  return inTree && !inTree.startsWith('..') ? inTree : path;
};

function zipBundles(dist: string): void {
  for (const name of readdirSync(dist)) {
    const bundle = join(dist, name, 'index.mjs');
    if (!existsSync(bundle)) continue;
    const archive = zip([{ name: 'index.mjs', data: readFileSync(bundle) }]);
    writeFileSync(join(dist, `${name}.zip`), archive);
    console.log(`${shown(join(dist, `${name}.zip`))} ${(archive.length / 1024).toFixed(1)} KiB`);
  }
}

/** Builds, packages and checks; returns the path of the checked template. */
export function packageStack(options: PackageOptions): string {
  const statusPath = resolve(root, options.statusFile);
  const statusLabel = shown(statusPath) === statusPath ? options.statusFile : shown(statusPath);
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

  run(process.execPath, [join(root, 'scripts/build.mjs'), '--outdir', options.distDir]);
  zipBundles(options.distDir);
  writeFileSync(join(options.distDir, SCHEDULES_FILE), `${JSON.stringify({ events: schedules }, null, 2)}\n`);

  osls(['package', ...options.slsArgs]);

  const templatePath = join(options.packageDir, 'cloudformation-template-update-stack.json');
  const template = JSON.parse(readFileSync(templatePath, 'utf8'));
  assertTemplateConsistent(template, shown(templatePath));
  const silent = alarmsWithoutActions(template);
  if (silent.length > 0) {
    console.warn(
      `Warning: alarmTopicArn is empty, so the ${silent.length} alarms (${silent.join(', ')}) notify nobody. ` +
        'Give them an SNS topic: --param "alarmTopicArn=arn:aws:sns:<region>:<account>:<topic>" or params.<stage>.alarmTopicArn in serverless.yml.',
    );
  }
  console.log(`Packaged: ${shown(templatePath)}`);
  return templatePath;
}

/** Configuration problems are for the person packaging: the message, not a stack trace. */
export function explainFailure(error: unknown): string | undefined {
  return error instanceof ConfigError ? error.message : undefined;
}

if (import.meta.main) {
  if (wantsHelp(process.argv.slice(2))) process.stdout.write(helpText(COMMAND));
  else
    await runCommand(
      COMMAND,
      () => void packageStack(parsePackageArgs(process.argv.slice(2))),
      explainFailure,
    );
}
