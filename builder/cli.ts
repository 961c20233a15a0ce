import { backupInfo, restore } from './restore/restore.ts';
import type { Compression } from './pipeline/context.ts';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatBytes } from './format-bytes.ts';
import { Cache } from './cache.ts';
import { COMMANDS, PROGRAM, commandNamed, findCommand } from './cli-commands.ts';
import { commandHelp, parseCommand, programHelp, wantsHelp } from './command-table.ts';
import { doctor } from './doctor.ts';
import { inspectBase } from './inspect/inspect-base.ts';
import { renderReport } from './inspect/render.ts';
import { formatCheck } from './host-check.mjs';
import { BuildFailed, UserError, isUserError } from './errors.ts';
import { killRunning } from './exec.ts';
import { build } from './pipeline/build.ts';
import { loadPlan } from './pipeline/load-plan.ts';
import { toolVersion } from './pipeline/tool-version.ts';
import { baseOverride } from './recipe/base-override.ts';
import { checkPublishUrl } from './outputs/imager-repository.ts';
import { keygen } from './signing/keygen-command.ts';
import { signRelease } from './signing/sign-command.ts';
import { verifyRelease } from './signing/verify-command.ts';
import { rebuildCheck } from './rebuild/rebuild-check.ts';
import { listPresets, newRecipe } from './recipe/presets.ts';
import { renderToDirectory } from './render/render-command.ts';
import { writeFile } from 'node:fs/promises';
import { Resources } from './resources.ts';

const usage = () =>
  programHelp(PROGRAM, COMMANDS, {
    title: `${PROGRAM}: build a Raspberry Pi image that runs a private, Tor-only SimpleX relay cluster`,
    more: [`${PROGRAM} --version`, `${PROGRAM} COMMAND --help    (each command's options, with their defaults)`],
    footer: 'The cache (base images, downloads, package layers) is at $XDG_CACHE_HOME/simplex-pi unless --cache or SIMPLEX_PI_CACHE says otherwise.',
  });

const DEFAULT_RECIPE = resolve(dirname(fileURLToPath(import.meta.url)), '../recipes/family.yaml');

interface BuildValues {
  recipe?: string;
  base?: string;
  'base-sha256'?: string;
  out?: string;
  compress: Compression;
  'xz-level': string;
  'publish-url'?: string;
  cache?: string;
  lock?: string;
  'update-lock': boolean;
  verbose: boolean;
}

/**
 * What a build holds (mounts, loop devices), released on Ctrl-C or SIGTERM before the process exits. Stays
 * registered (not `once`): execa's exit hook re-raises a signal when no other listener is left, which would kill
 * this process before the mounts are released. A second Ctrl-C while releasing is ignored.
 */
function releasedOnSignal(what = 'mounts and loop devices'): Resources {
  const resources = new Resources();
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${signal}: stopping, releasing ${what}…\n`);
    killRunning();
    void resources.releaseAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return resources;
}

async function buildCommand(args: string[]): Promise<void> {
  const values = parseCommand<BuildValues>(commandNamed('build'), args).values;
  // --compress and --xz-level are checked against their choices by the table.
  const xzLevel = Number(values['xz-level']);
  const override = values.base ? baseOverride(values.base, values['base-sha256']) : undefined;
  const resources = releasedOnSignal();
  const outcome = await build({
    recipePath: values.recipe ?? DEFAULT_RECIPE,
    baseOverride: override,
    outDir: values.out,
    compress: values.compress,
    xzLevel,
    publishUrl: values['publish-url'] === undefined ? undefined : checkPublishUrl(values['publish-url']),
    cacheRoot: resolve(values.cache ?? Cache.defaultRoot()),
    lockPath: values.lock === undefined ? undefined : resolve(values.lock),
    updateLock: values['update-lock'],
    verbose: values.verbose,
    resources,
  });
  const { result } = outcome;
  process.stdout.write(`\nBuilt ${result.manifest.recipe.name} in ${result.outDir}:\n`);
  for (const file of result.files) process.stdout.write(`  ${file.name.padEnd(28)} ${formatBytes(file.size).padStart(10)}  sha256 ${file.sha256}\n`);
  process.stdout.write(`  SHA256SUMS (check with: cd ${result.outDir} && sha256sum -c SHA256SUMS)\n  build log: ${outcome.logPath}\n`);
  for (const warning of outcome.warnings) process.stderr.write(`warning: ${warning}\n`);
}

async function renderCommand(args: string[]): Promise<void> {
  const values = parseCommand<{ recipe?: string; out: string; base?: string; 'base-sha256'?: string }>(commandNamed('render'), args).values;
  const override = values.base ? baseOverride(values.base, values['base-sha256']) : undefined;
  const { loaded, plan } = await loadPlan(values.recipe ?? DEFAULT_RECIPE, override);
  const out = resolve(values.out);
  for (const warning of loaded.warnings) process.stderr.write(`warning: ${warning}\n`);
  const entries = await renderToDirectory(plan, out);
  process.stdout.write(`Rendered ${entries.length} entries for "${plan.name}" into ${out}/rootfs; owners and modes in ${out}/files.txt, the plan in ${out}/plan.json\n`);
}

async function newRecipeCommand(args: string[]): Promise<void> {
  const values = parseCommand<{ 'group-size': string; name?: string; out?: string }>(commandNamed('recipes new'), args).values;
  const people = Number(values['group-size']);
  const name = values.name ?? `group-${values['group-size']}`;
  const text = newRecipe(people, name);
  const out = resolve(values.out ?? `${name}.yaml`);
  try {
    await writeFile(out, text, { flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new UserError(`${out} already exists; choose another --out or --name`);
    throw error;
  }
  process.stdout.write(`Wrote ${out}:\n\n${text}`);
}

async function recipesCommand(args: string[]): Promise<void> {
  if (args.length) throw new UserError(`unknown recipes command "${args[0]}"; use \`recipes\` or \`recipes new --group-size N\``);
  for (const preset of await listPresets()) {
    process.stdout.write(`${preset.recipe.name.padEnd(8)} ${preset.recipe.description}\n         ${preset.file}\n`);
  }
}

async function doctorCommand(args: string[]): Promise<void> {
  const values = parseCommand<{ cache?: string }>(commandNamed('doctor'), args).values;
  const cacheRoot = resolve(values.cache ?? Cache.defaultRoot());
  const { checks, released } = await doctor(cacheRoot);
  for (const check of checks) process.stdout.write(`${formatCheck(check)}\n`);
  const count = released.mounts.length + released.loops.length + released.workDirs.length;
  process.stdout.write(
    count
      ? `released what a killed build left: ${released.mounts.length} mount(s), ${released.loops.length} loop device(s), ${released.workDirs.length} work directory(ies)\n`
      : 'nothing left behind by earlier builds\n',
  );
  if (checks.some((c) => !c.ok)) process.exitCode = 1;
}

async function inspectBaseCommand(args: string[]): Promise<void> {
  const parsed = parseCommand<{ json: boolean; tmp?: string }>(commandNamed('inspect-base'), args);
  const { values } = parsed;
  const resources = releasedOnSignal('the mount, loop device and temporary files');
  const report = await inspectBase(resolve(parsed.positional!), {
    tmpDir: values.tmp === undefined ? undefined : resolve(values.tmp),
    resources,
    status: values.json ? undefined : (message) => process.stderr.write(`${message}…\n`),
  });
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report));
}

const printLine = (line: string) => process.stdout.write(`${line}\n`);

async function keygenCommand(args: string[]): Promise<void> {
  const values = parseCommand<{ out?: string; 'secret-key'?: string; 'public-key'?: string; unencrypted: boolean }>(commandNamed('keygen'), args).values;
  await keygen({ out: values.out, secretKey: values['secret-key'], publicKey: values['public-key'], unencrypted: values.unencrypted, print: printLine });
}

async function signCommand(args: string[]): Promise<void> {
  const { values, positional } = parseCommand<{ key: string }>(commandNamed('sign'), args);
  await signRelease({ dir: positional!, keyFile: values.key, print: printLine });
}

async function verifyCommand(args: string[]): Promise<void> {
  const { values, positional } = parseCommand<{ pubkey: string }>(commandNamed('verify'), args);
  await verifyRelease({ target: positional!, pubkey: values.pubkey, print: printLine });
}

async function rebuildCheckCommand(args: string[]): Promise<void> {
  const { values, positional } = parseCommand<{ recipe?: string; cache?: string; keep?: string; verbose: boolean }>(commandNamed('rebuild-check'), args);
  const resources = releasedOnSignal();
  await rebuildCheck({
    target: positional!,
    recipe: values.recipe,
    cacheRoot: resolve(values.cache ?? Cache.defaultRoot()),
    keep: values.keep,
    verbose: values.verbose,
    resources,
    print: printLine,
  });
}

async function restoreCommand(args: string[]): Promise<void> {
  const { values } = parseCommand<{ backup: string; card: string; identity?: string; passphrase: boolean }>(commandNamed('restore'), args);
  await restore({ backup: resolve(values.backup), card: resolve(values.card), identity: values.identity && resolve(values.identity), passphrase: values.passphrase, print: printLine });
}

async function backupInfoCommand(args: string[]): Promise<void> {
  const { positional } = parseCommand(commandNamed('backup-info'), args);
  await backupInfo(resolve(positional!), printLine);
}

/** Each command's code, by its name in COMMANDS. */
const HANDLERS: Record<string, (args: string[]) => Promise<void>> = {
  build: buildCommand,
  render: renderCommand,
  recipes: recipesCommand,
  'recipes new': newRecipeCommand,
  doctor: doctorCommand,
  'inspect-base': inspectBaseCommand,
  restore: restoreCommand,
  'backup-info': backupInfoCommand,
  keygen: keygenCommand,
  sign: signCommand,
  verify: verifyCommand,
  'rebuild-check': rebuildCheckCommand,
};

async function main(argv: string[]): Promise<void> {
  const [first] = argv;
  if (first === '--version' || first === 'version') {
    const { version, commit } = await toolVersion();
    process.stdout.write(`simplex-pi ${version}${commit ? ` (${commit})` : ''}\n`);
    return;
  }
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  const found = findCommand(argv);
  if (!found) throw new UserError(`unknown command "${first}"\n\n${usage()}`);
  if (wantsHelp(found.rest)) {
    process.stdout.write(`${commandHelp(PROGRAM, found.command)}\n`);
    return;
  }
  return HANDLERS[found.command.name]!(found.rest);
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
