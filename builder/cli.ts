import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { formatBytes } from './base/download.ts';
import { Cache } from './cache.ts';
import { doctor } from './doctor.ts';
import { BuildFailed, UserError, isUserError } from './errors.ts';
import { killRunning } from './exec.ts';
import { build, toolVersion } from './pipeline.ts';
import { baseOverride } from './recipe/base-override.ts';
import { Resources } from './resources.ts';

const USAGE = `simplex-pi: build a Raspberry Pi image that runs a private, Tor-only SimpleX relay cluster

Usage:
  simplex-pi build [--recipe FILE] [--base raspios|debian|file:PATH [--base-sha256 HEX]]
                   [--out DIR] [--compress xz|none] [--xz-level 0-9] [--cache DIR] [--verbose]
  simplex-pi doctor [--cache DIR]
  simplex-pi --version

build    Build the image described by a recipe (default recipes/family.yaml) into output/<name>/:
         <name>.img, <name>.img.xz, manifest.json, SHA256SUMS and the build log. Needs root.
doctor   Check this host (tools, binfmt, loop devices, disk space) and release the mounts and loop devices
         a killed build left behind.

The cache (base images, downloads, package layers) is at $XDG_CACHE_HOME/simplex-pi unless --cache or
SIMPLEX_PI_CACHE says otherwise.`;

const DEFAULT_RECIPE = resolve(import.meta.dirname, '../recipes/family.yaml');

async function buildCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      recipe: { type: 'string' },
      base: { type: 'string' },
      'base-sha256': { type: 'string' },
      out: { type: 'string' },
      compress: { type: 'string', default: 'xz' },
      'xz-level': { type: 'string', default: '6' },
      cache: { type: 'string' },
      verbose: { type: 'boolean', short: 'v', default: false },
    },
    strict: true,
  });
  if (values.compress !== 'xz' && values.compress !== 'none') throw new UserError(`--compress must be xz or none (got "${values.compress}")`);
  const xzLevel = Number(values['xz-level']);
  if (!Number.isInteger(xzLevel) || xzLevel < 0 || xzLevel > 9) throw new UserError(`--xz-level must be 0–9 (got "${values['xz-level']}")`);
  const override = values.base ? baseOverride(values.base, values['base-sha256']) : undefined;
  const resources = new Resources();
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping, releasing mounts and loop devices…\n`);
    killRunning();
    void resources.releaseAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const outcome = await build({
    recipePath: values.recipe ?? DEFAULT_RECIPE,
    baseOverride: override,
    outDir: values.out,
    compress: values.compress,
    xzLevel,
    cacheRoot: resolve(values.cache ?? Cache.defaultRoot()),
    verbose: values.verbose,
    resources,
  });
  const { result } = outcome;
  process.stdout.write(`\nBuilt ${result.manifest.recipe.name} in ${result.outDir}:\n`);
  for (const file of result.files) process.stdout.write(`  ${file.name.padEnd(28)} ${formatBytes(file.size).padStart(10)}  sha256 ${file.sha256}\n`);
  process.stdout.write(`  SHA256SUMS (check with: cd ${result.outDir} && sha256sum -c SHA256SUMS)\n  build log: ${outcome.logPath}\n`);
}

async function doctorCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { cache: { type: 'string' } }, strict: true });
  const cacheRoot = resolve(values.cache ?? Cache.defaultRoot());
  const { checks, released } = await doctor(cacheRoot);
  for (const check of checks) process.stdout.write(`${check.ok ? 'ok  ' : 'FAIL'}  ${check.name.padEnd(7)} ${check.detail}\n`);
  const count = released.mounts.length + released.loops.length + released.workDirs.length;
  process.stdout.write(
    count
      ? `released what a killed build left: ${released.mounts.length} mount(s), ${released.loops.length} loop device(s), ${released.workDirs.length} work directory(ies)\n`
      : 'nothing left behind by earlier builds\n',
  );
  if (checks.some((c) => !c.ok)) process.exitCode = 1;
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'build':
      return buildCommand(rest);
    case 'doctor':
      return doctorCommand(rest);
    case '--version':
    case 'version': {
      const { version, commit } = await toolVersion();
      process.stdout.write(`simplex-pi ${version}${commit ? ` (${commit})` : ''}\n`);
      return;
    }
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
      throw new UserError(`unknown command "${command}"\n\n${USAGE}`);
  }
}

try {
  await main(process.argv.slice(2));
} catch (error) {
  const reason = error instanceof BuildFailed ? error.reason : error;
  if (isUserError(reason) || (reason instanceof Error && 'code' in reason && String(reason.code).startsWith('ERR_PARSE_ARGS'))) {
    process.stderr.write(`error: ${reason.message}\n`);
  } else {
    process.stderr.write(`simplex-pi failed unexpectedly (a bug; please report it with the build log):\n${reason instanceof Error ? reason.stack : String(reason)}\n`);
  }
  if (error instanceof BuildFailed) process.stderr.write(`build log: ${error.logPath}\n`);
  process.exitCode = isUserError(reason) ? reason.exitCode : 1;
}
