import { parseArgs } from 'node:util';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatBytes } from './format-bytes.ts';
import { Cache } from './cache.ts';
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
import { loadRecipe } from './recipe/load.ts';
import { listPresets, newRecipe } from './recipe/presets.ts';
import { renderToDirectory } from './render/render-command.ts';
import { writeFile } from 'node:fs/promises';
import { Resources } from './resources.ts';

const USAGE = `simplex-pi: build a Raspberry Pi image that runs a private, Tor-only SimpleX relay cluster

Usage:
  simplex-pi build [--recipe FILE] [--base raspios|debian|file:PATH [--base-sha256 HEX]]
                   [--out DIR] [--compress xz|none] [--xz-level 0-9] [--publish-url URL]
                   [--cache DIR] [--verbose]
  simplex-pi render [--recipe FILE] --out DIR [--base raspios|debian|file:PATH]
  simplex-pi recipes
  simplex-pi recipes new --group-size N [--name NAME] [--out FILE]
  simplex-pi doctor [--cache DIR]
  simplex-pi inspect-base IMAGE [--json] [--tmp DIR]
  simplex-pi keygen (--out DIR | --secret-key FILE --public-key FILE) [--unencrypted]
  simplex-pi sign DIR --key FILE
  simplex-pi verify DIR|URL --pubkey FILE|KEY
  simplex-pi --version

build    Build the image described by a recipe (default recipes/family.yaml) into output/<name>/:
         <name>.img, <name>.img.xz, manifest.json, SHA256SUMS, the build log, and for Raspberry Pi Imager
         <name>.rpi-imager-manifest (double-click it) and <name>.rpi-imager.json (a repository; with
         --publish-url it points at URL/<name>.img.xz, where you will publish the image). Needs root.
render   Write the configuration files the build would put into the image (Tor, units, firewall, sshd) and the
         plan.json the Pi reads, into DIR, for review. No root needed.
recipes  List the preset recipes; \`recipes new\` writes a recipe scaled for a group size.
doctor   Check this host (Node.js, tools, binfmt, loop devices, disk space) and release the mounts and loop devices
         a killed build left behind.
inspect-base
         Report what the build relies on in a base image (.img or .img.xz, e.g. Raspberry Pi OS Lite):
         partition table, boot partition and cmdline.txt, ext4 features, fstab, machine-id, enabled first-boot
         units, cloud-init, the Imager init_format it implies, initramfs resize scripts, packages, apt sources,
         the first user. Reads only: the root partition is mounted read-only from a read-only loop device, an
         .img.xz is decompressed into --tmp (default $TMPDIR or /tmp) and removed. Needs root. --json for machines.
keygen   Make a minisign key pair for signing releases (DIR/minisign.key, mode 0600, and DIR/minisign.pub).
         The secret key is encrypted with a password from $SIMPLEX_PI_KEY_PASSWORD or typed at the prompt;
         --unencrypted for a key kept in a CI secret store. Never replaces an existing file.
sign     Check every checksum in DIR/SHA256SUMS, then sign SHA256SUMS and the Raspberry Pi Imager files with a
         minisign secret key, writing <file>.minisig next to each.
verify   Check a release directory or URL: the signature of SHA256SUMS with the public key (a minisign.pub
         file or the base64 key), the sha256 of every file it lists, and the signed Imager files. Exits 0
         only if everything verified.

The cache (base images, downloads, package layers) is at $XDG_CACHE_HOME/simplex-pi unless --cache or
SIMPLEX_PI_CACHE says otherwise.`;

const DEFAULT_RECIPE = resolve(dirname(fileURLToPath(import.meta.url)), '../recipes/family.yaml');

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
      'publish-url': { type: 'string' },
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
  // Stays registered (not `once`): execa's exit hook re-raises a signal when no other listener is left, which
  // would kill this process before the mounts are released. A second Ctrl-C while releasing is ignored.
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${signal}: stopping, releasing mounts and loop devices…\n`);
    killRunning();
    void resources.releaseAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const outcome = await build({
    recipePath: values.recipe ?? DEFAULT_RECIPE,
    baseOverride: override,
    outDir: values.out,
    compress: values.compress,
    xzLevel,
    publishUrl: values['publish-url'] === undefined ? undefined : checkPublishUrl(values['publish-url']),
    cacheRoot: resolve(values.cache ?? Cache.defaultRoot()),
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
  const { values } = parseArgs({
    args,
    options: { recipe: { type: 'string' }, out: { type: 'string' }, base: { type: 'string' }, 'base-sha256': { type: 'string' } },
    strict: true,
  });
  if (!values.out) throw new UserError('render needs --out DIR');
  const override = values.base ? baseOverride(values.base, values['base-sha256']) : undefined;
  const { loaded, plan } = await loadPlan(values.recipe ?? DEFAULT_RECIPE, override);
  const out = resolve(values.out);
  for (const warning of loaded.warnings) process.stderr.write(`warning: ${warning}\n`);
  const entries = await renderToDirectory(plan, out);
  process.stdout.write(`Rendered ${entries.length} entries for "${plan.name}" into ${out}/rootfs; owners and modes in ${out}/files.txt, the plan in ${out}/plan.json\n`);
}

async function recipesCommand(args: string[]): Promise<void> {
  if (args[0] === 'new') {
    const { values } = parseArgs({ args: args.slice(1), options: { 'group-size': { type: 'string' }, name: { type: 'string' }, out: { type: 'string' } }, strict: true });
    if (!values['group-size']) throw new UserError('recipes new needs --group-size N');
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
    return;
  }
  if (args.length) throw new UserError(`unknown recipes command "${args[0]}"; use \`recipes\` or \`recipes new --group-size N\``);
  for (const preset of await listPresets()) {
    process.stdout.write(`${preset.recipe.name.padEnd(8)} ${preset.recipe.description}\n         ${preset.file}\n`);
  }
}

async function doctorCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { cache: { type: 'string' } }, strict: true });
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
  const { values, positionals } = parseArgs({ args, options: { json: { type: 'boolean', default: false }, tmp: { type: 'string' } }, allowPositionals: true, strict: true });
  if (positionals.length !== 1) throw new UserError('inspect-base takes one image: simplex-pi inspect-base IMAGE [--json] (a .img or .img.xz)');
  const resources = new Resources();
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${signal}: stopping, releasing the mount, loop device and temporary files…\n`);
    killRunning();
    void resources.releaseAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const report = await inspectBase(resolve(positionals[0]!), {
    tmpDir: values.tmp === undefined ? undefined : resolve(values.tmp),
    resources,
    status: values.json ? undefined : (message) => process.stderr.write(`${message}…\n`),
  });
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report));
}

const printLine = (line: string) => process.stdout.write(`${line}\n`);

async function keygenCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { out: { type: 'string' }, 'secret-key': { type: 'string' }, 'public-key': { type: 'string' }, unencrypted: { type: 'boolean', default: false } },
    strict: true,
  });
  await keygen({ out: values.out, secretKey: values['secret-key'], publicKey: values['public-key'], unencrypted: values.unencrypted, print: printLine });
}

async function signCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, options: { key: { type: 'string' } }, allowPositionals: true, strict: true });
  if (positionals.length !== 1) throw new UserError('sign takes one output directory: simplex-pi sign DIR --key FILE');
  if (!values.key) throw new UserError('sign needs --key FILE: a secret key made by `simplex-pi keygen` (or `minisign -G`)');
  await signRelease({ dir: positionals[0]!, keyFile: values.key, print: printLine });
}

async function verifyCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, options: { pubkey: { type: 'string' } }, allowPositionals: true, strict: true });
  if (positionals.length !== 1) throw new UserError('verify takes one release directory or URL: simplex-pi verify DIR|URL --pubkey FILE|KEY');
  if (!values.pubkey) throw new UserError("verify needs --pubkey: the project's published public key (the base64 line starting with RW) or its minisign.pub file");
  await verifyRelease({ target: positionals[0]!, pubkey: values.pubkey, print: printLine });
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'build':
      return buildCommand(rest);
    case 'doctor':
      return doctorCommand(rest);
    case 'render':
      return renderCommand(rest);
    case 'recipes':
      return recipesCommand(rest);
    case 'inspect-base':
      return inspectBaseCommand(rest);
    case 'keygen':
      return keygenCommand(rest);
    case 'sign':
      return signCommand(rest);
    case 'verify':
      return verifyCommand(rest);
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
