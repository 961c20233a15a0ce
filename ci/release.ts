// The release, step by step: what .github/workflows/release.yml runs, and what a maintainer runs for a dry run.
//   npm run release -- <step> [--dry-run] [options]      (node --import tsx ci/release.ts …)
// Every step takes --dry-run: nothing is published, no secret is read (a throwaway key signs), and commands that
// would build or talk to GitHub are printed instead of run. docs: ci/releasing.md.
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { UserError, isUserError } from '../builder/errors.ts';
import { displayCommand, run } from '../builder/exec.ts';
import { BuildLog } from '../builder/log.ts';
import { listPresets } from '../builder/recipe/presets.ts';
import { type ReleaseManifest, readReleaseManifest } from '../builder/publish/read-manifest.ts';
import { OS_LIST, assembleRelease, ghReleaseCreateArgs, presetAssets, releaseDownloadUrl, releaseFiles } from '../builder/publish/release-assets.ts';
import { releaseNotesMarkdown } from '../builder/publish/release-notes-md.ts';
import { checkReleaseDirectory } from '../builder/publish/check-release.ts';
import { SUMS_FILE } from '../builder/outputs/sha256sums.ts';
import { SIGNATURE_SUFFIX } from '../builder/signing/signed-files.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(REPO, 'bin/simplex-pi.mjs');

export const STEPS = ['build-all', 'assemble', 'sign', 'previous', 'notes', 'publish', 'all'] as const;
type Step = (typeof STEPS)[number];

const USAGE = `ci/release.ts <step> [--dry-run] [options]   (npm run release -- <step> …)

steps, in the order a release runs them (all: every one):
  build-all  build every preset in recipes/ from the Raspberry Pi OS base, for this release's download URL (root)
  assemble   the release's files from the builds: <preset>.img.xz, <preset>.manifest.json, <preset>.rpi-imager.json,
             os-list.json (every preset, for Raspberry Pi Imager), the relay update bundle (from --cache) and
             SHA256SUMS
  sign       check the release directory against its SHA256SUMS (every listed file present and matching,
             nothing unlisted), sign it with the key in $SIMPLEX_PI_SIGNING_KEY (--key-env), verify with --pubkey
  previous   fetch the previous release's manifests from GitHub (gh), for the notes' "what changed"
  notes      write the release notes from the manifests
  publish    check the files against SHA256SUMS and the signatures against --pubkey, then
             gh release create <tag> with the notes and every file

options:
  --dry-run        publish nothing, read no secret: sign with a throwaway key, print build and gh commands
  --tag TAG        the release tag (default $GITHUB_REF_NAME); a release needs v<version>
  --repo O/R       the GitHub repository (default $GITHUB_REPOSITORY)
  --work DIR       where everything goes (default output/release-work): out/<preset>/, release/, notes.md
  --outputs DIR    take the builds from DIR/<preset>/ instead of WORK/out (e.g. --outputs output)
  --cache DIR      build-all: the build cache; assemble: the same cache, where the relay update bundle's binaries are
  --key-env NAME   sign: the environment variable holding the secret key file's content
  --pubkey KEY     sign, publish: the public key (base64 or file) the signatures must verify with
                   (default $SIMPLEX_PI_PUBLIC_KEY; a dry run's publish takes only --pubkey, or the key
                   its own sign step made)
  --previous DIR   notes: the previous release's <preset>.manifest.json files (default WORK/previous)
  --previous-tag T notes: the previous release's tag (default: DIR/TAG)`;

interface Context {
  dryRun: boolean;
  tag: string;
  repo: string;
  work: string;
  outputs: string;
  releaseDir: string;
  notesFile: string;
  previousDir: string;
  previousTag?: string;
  cache?: string;
  keyEnv: string;
  pubkey?: string;
  /** --pubkey as given, without the $SIMPLEX_PI_PUBLIC_KEY default: what a dry run's publish checks with. */
  pubkeyFlag?: string;
  /** The throwaway key a dry run's sign step used in this process (base64). */
  throwawayPubkey?: string;
  downloadUrl: string;
  log: BuildLog;
}

const say = (line: string) => process.stdout.write(`${line}\n`);

function contextFrom(args: string[]): { step: Step; ctx: Context } {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      'dry-run': { type: 'boolean', default: false },
      tag: { type: 'string' },
      repo: { type: 'string' },
      work: { type: 'string' },
      outputs: { type: 'string' },
      cache: { type: 'string' },
      'key-env': { type: 'string', default: 'SIMPLEX_PI_SIGNING_KEY' },
      pubkey: { type: 'string' },
      previous: { type: 'string' },
      'previous-tag': { type: 'string' },
    },
  });
  const step = positionals[0] as Step | undefined;
  if (!step || !STEPS.includes(step)) throw new UserError(`${step ? `unknown step "${step}"` : 'which step?'}\n\n${USAGE}`);
  const dryRun = values['dry-run'];
  // A dry run on a maintainer's machine has no tag or repository of GitHub's; placeholders show where they go.
  const tag = values.tag ?? process.env.GITHUB_REF_NAME ?? (dryRun ? 'v0.0.0-dry-run' : undefined);
  const repo = values.repo ?? process.env.GITHUB_REPOSITORY ?? (dryRun ? 'OWNER/simplex-pi' : undefined);
  if (!tag) throw new UserError('no release tag: give --tag v<version> (GitHub Actions sets GITHUB_REF_NAME)');
  if (!repo || !/^[\w.-]+\/[\w.-]+$/.test(repo)) throw new UserError(`--repo must be OWNER/NAME (GitHub Actions sets GITHUB_REPOSITORY); got "${repo ?? ''}"`);
  const work = resolve(values.work ?? join(REPO, 'output/release-work'));
  return {
    step,
    ctx: {
      dryRun,
      tag,
      repo,
      work,
      outputs: resolve(values.outputs ?? join(work, 'out')),
      releaseDir: join(work, 'release'),
      notesFile: join(work, 'notes.md'),
      previousDir: resolve(values.previous ?? join(work, 'previous')),
      previousTag: values['previous-tag'],
      cache: values.cache,
      keyEnv: values['key-env'],
      pubkey: values.pubkey ?? process.env.SIMPLEX_PI_PUBLIC_KEY,
      pubkeyFlag: values.pubkey,
      downloadUrl: releaseDownloadUrl(repo, tag),
      log: new BuildLog(join(work, 'release.log'), (line) => process.stderr.write(`${line}\n`)),
    },
  };
}

/** Run a command, or in a dry run print it. Output goes to WORK/release.log; a failure shows its last lines. */
async function runOrShow(ctx: Context, file: string, args: string[], what: string): Promise<string> {
  if (ctx.dryRun) {
    say(`would run: ${displayCommand(file, args)}`);
    return '';
  }
  return (await run(file, args, { log: ctx.log, what })).stdout;
}

function cli(args: string[]): [string, string[]] {
  return [process.execPath, [CLI, ...args]];
}

async function buildAll(ctx: Context): Promise<void> {
  const presets = await listPresets();
  for (const preset of presets) {
    const name = preset.recipe.name;
    const args = ['build', '--recipe', preset.file, '--base', 'raspios', '--out', join(ctx.outputs, name), '--publish-url', ctx.downloadUrl];
    if (ctx.cache) args.push('--cache', ctx.cache);
    say(`build-all: ${name}`);
    const started = performance.now();
    await runOrShow(ctx, ...cli(args), `build the ${name} preset`);
    if (!ctx.dryRun) say(`build-all: ${name} built in ${Math.round((performance.now() - started) / 1000)} s`);
  }
}

/** The finished builds under the outputs directory (those with a SHA256SUMS, which a build writes last). */
async function buildOutputs(ctx: Context): Promise<string[]> {
  const entries = await readdir(ctx.outputs, { withFileTypes: true }).catch(() => {
    throw new UserError(`${ctx.outputs} does not exist: run build-all first, or give --outputs DIR with one build per preset`);
  });
  const dirs = entries.filter((e) => e.isDirectory()).map((e) => join(ctx.outputs, e.name));
  return dirs.filter((dir) => existsSync(join(dir, SUMS_FILE))).sort();
}

async function assemble(ctx: Context): Promise<void> {
  const outputs = await buildOutputs(ctx);
  say(`assemble: ${outputs.length} build(s) from ${ctx.outputs}`);
  const release = await assembleRelease({ outputs, releaseDir: ctx.releaseDir, downloadUrl: ctx.downloadUrl, rewriteUrls: ctx.dryRun, cacheRoot: ctx.cache });
  for (const notice of release.notices) say(`assemble: ${notice}`);
  say(`assemble: ${release.assets.length} files in ${ctx.releaseDir}: ${release.assets.join(', ')}`);
}

/** The secret key, written where only this user can read it, for as long as `fn` runs. */
async function withSecretKey<T>(ctx: Context, fn: (keyFile: string, pubkey: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'simplex-pi-key-'));
  await chmod(dir, 0o700);
  try {
    if (ctx.dryRun) {
      // A throwaway key: the dry run signs and verifies for real, without the release key.
      await run(...cli(['keygen', '--out', dir, '--unencrypted']), { log: ctx.log, what: 'make a throwaway signing key' });
      const pub = (await readFile(join(dir, 'minisign.pub'), 'utf8')).trim().split('\n').at(-1);
      say(`sign: dry run, signing with a throwaway key (not the release key), public key ${pub}`);
      ctx.throwawayPubkey = pub;
      return await fn(join(dir, 'minisign.key'), join(dir, 'minisign.pub'));
    }
    const secret = process.env[ctx.keyEnv];
    if (!secret?.trim()) throw new UserError(`$${ctx.keyEnv} is empty: store the secret key file's content as the repository secret ${ctx.keyEnv} (ci/releasing.md)`);
    if (!ctx.pubkey) {
      throw new UserError('no public key to check the signatures with: set the repository variable SIMPLEX_PI_PUBLIC_KEY to the key published in README.md (or give --pubkey)');
    }
    const keyFile = join(dir, 'minisign.key');
    await writeFile(keyFile, secret.endsWith('\n') ? secret : `${secret}\n`, { mode: 0o600 });
    return await fn(keyFile, ctx.pubkey);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function sign(ctx: Context): Promise<void> {
  if (!existsSync(join(ctx.releaseDir, SUMS_FILE))) throw new UserError(`${ctx.releaseDir} has no ${SUMS_FILE}: run assemble first`);
  // Before the key is read: in the workflow these files come from the build job, which ran recipes and downloads.
  // Only a directory that is exactly what its SHA256SUMS lists gets a signature.
  const checked = await checkReleaseDirectory(ctx.releaseDir, 'nothing was signed');
  say(`sign: ${checked.listed.length} files match ${SUMS_FILE}, and nothing else is in ${ctx.releaseDir}`);
  await withSecretKey(ctx, async (keyFile, pubkey) => {
    await run(...cli(['sign', ctx.releaseDir, '--key', keyFile]), { log: ctx.log, what: 'sign the release' });
    // A release signed with a key other than the published one would fail for every user: check it here.
    await run(...cli(['verify', ctx.releaseDir, '--pubkey', pubkey]), { log: ctx.log, what: 'verify the signatures with the published public key' });
  });
  const signatures = (await releaseFiles(ctx.releaseDir)).filter((f) => f.endsWith(SIGNATURE_SUFFIX));
  say(`sign: ${signatures.join(', ')} (verified)`);
}

async function previous(ctx: Context): Promise<void> {
  const view = ['release', 'view', '--repo', ctx.repo, '--json', 'tagName', '--jq', '.tagName'];
  if (ctx.dryRun) {
    say(`would run: ${displayCommand('gh', view)}`);
    say(`would run: ${displayCommand('gh', ['release', 'download', '<that tag>', '--repo', ctx.repo, '--pattern', '*.manifest.json', '--dir', ctx.previousDir])}`);
    return;
  }
  const latest = await run('gh', view, { log: ctx.log, allowFailure: true });
  if (latest.exitCode !== 0 && !/release not found/i.test(latest.stderr)) {
    throw new UserError(`\`${displayCommand('gh', view)}\` failed${latest.stderr.trim() ? `: ${latest.stderr.trim()}` : ' (is the GitHub CLI installed, and GH_TOKEN set?)'}`);
  }
  const tag = latest.exitCode === 0 ? latest.stdout.trim() : '';
  if (!tag || tag === ctx.tag) {
    say('previous: no earlier release; the notes will not say what changed');
    return;
  }
  await rm(ctx.previousDir, { recursive: true, force: true });
  await mkdir(ctx.previousDir, { recursive: true });
  await run('gh', ['release', 'download', tag, '--repo', ctx.repo, '--pattern', '*.manifest.json', '--dir', ctx.previousDir], {
    log: ctx.log,
    what: `download the manifests of ${tag}`,
  });
  await writeFile(join(ctx.previousDir, 'TAG'), `${tag}\n`);
  say(`previous: ${tag}`);
}

async function manifestsIn(dir: string): Promise<ReleaseManifest[]> {
  const names = (await readdir(dir)).filter((f) => f.endsWith('.manifest.json')).sort();
  return Promise.all(names.map((n) => readReleaseManifest(join(dir, n))));
}

async function notes(ctx: Context): Promise<void> {
  const manifests = await manifestsIn(ctx.releaseDir).catch(() => {
    throw new UserError(`${ctx.releaseDir} is missing: run assemble first`);
  });
  if (!manifests.length) throw new UserError(`${ctx.releaseDir} holds no <preset>.manifest.json: run assemble first`);
  let before: { tag: string; manifests: ReleaseManifest[] } | undefined;
  if (existsSync(ctx.previousDir)) {
    const tag = ctx.previousTag ?? (await readFile(join(ctx.previousDir, 'TAG'), 'utf8').catch(() => '')).trim();
    if (!tag) throw new UserError(`${ctx.previousDir} has no TAG file: give --previous-tag, the tag those manifests were released as`);
    before = { tag, manifests: await manifestsIn(ctx.previousDir) };
  }
  const text = releaseNotesMarkdown({ tag: ctx.tag, downloadUrl: ctx.downloadUrl, osListName: OS_LIST, manifests, previous: before });
  await writeFile(ctx.notesFile, text);
  say(`notes: ${ctx.notesFile}${before ? ` (changes since ${before.tag})` : ''}`);
  if (ctx.dryRun) say(`\n${text}`);
}

async function publish(ctx: Context): Promise<void> {
  if (!ctx.dryRun && !/^v\d+\.\d+\.\d+([-+][\w.-]+)?$/.test(ctx.tag)) {
    throw new UserError(`"${ctx.tag}" is not a version tag (v1.2.3): releases are published from version tags only`);
  }
  const files = await releaseFiles(ctx.releaseDir);
  for (const required of [SUMS_FILE, `${SUMS_FILE}${SIGNATURE_SUFFIX}`, OS_LIST, `${OS_LIST}${SIGNATURE_SUFFIX}`]) {
    if (!files.includes(required)) throw new UserError(`${ctx.releaseDir} has no ${required}: run assemble and sign first; an unsigned release is never published`);
  }
  if (!existsSync(ctx.notesFile)) throw new UserError(`${ctx.notesFile} is missing: run notes first`);
  const names = new Set(files);
  for (const manifest of await manifestsIn(ctx.releaseDir)) {
    for (const asset of Object.values(presetAssets(manifest.recipe.name))) if (!names.has(asset)) throw new UserError(`${ctx.releaseDir} has no ${asset}`);
  }
  // Every file in the directory is uploaded: none that SHA256SUMS does not list, none that changed since signing
  // (in the workflow they reached this job as the sign job's artifact), and signatures by the published key.
  await checkReleaseDirectory(ctx.releaseDir, 'nothing was published');
  // A dry run's signatures are a throwaway key's: checked with it when this run signed, else with --pubkey if given.
  const pubkey = ctx.dryRun ? (ctx.throwawayPubkey ?? ctx.pubkeyFlag) : ctx.pubkey;
  if (pubkey) {
    const key = ctx.dryRun ? "the dry run's key" : 'the published public key';
    await run(...cli(['verify', ctx.releaseDir, '--pubkey', pubkey]), { log: ctx.log, what: `verify the release with ${key} before publishing it; nothing was published` });
    say(`publish: the files match SHA256SUMS and the signatures verify with ${key}`);
  } else if (ctx.dryRun) {
    say('publish: the files match SHA256SUMS; dry run: the signatures were made by another run\'s throwaway key and are not checked (give --pubkey)');
  } else {
    throw new UserError('no public key to check the signatures with before publishing: set the repository variable SIMPLEX_PI_PUBLIC_KEY to the key published in README.md (or give --pubkey); nothing was published');
  }
  await runOrShow(ctx, 'gh', ghReleaseCreateArgs({ repo: ctx.repo, tag: ctx.tag, notesFile: ctx.notesFile, files: files.map((f) => join(ctx.releaseDir, f)) }), `publish release ${ctx.tag}`);
  say(ctx.dryRun ? `publish: dry run, nothing published (${files.length} files)` : `publish: ${ctx.tag} published with ${files.length} files`);
}

const ACTIONS: Record<Exclude<Step, 'all'>, (ctx: Context) => Promise<void>> = {
  'build-all': buildAll,
  assemble,
  sign,
  previous,
  notes,
  publish,
};

async function main(args: string[]): Promise<void> {
  if (!args.length || ['help', '--help', '-h'].includes(args[0]!)) {
    say(USAGE);
    return;
  }
  const { step, ctx } = contextFrom(args);
  await mkdir(ctx.work, { recursive: true });
  const steps = step === 'all' ? STEPS.filter((s): s is Exclude<Step, 'all'> => s !== 'all') : [step];
  for (const each of steps) await ACTIONS[each](ctx);
}

try {
  await main(process.argv.slice(2));
} catch (error) {
  const expected = isUserError(error) || (error instanceof Error && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'));
  process.stderr.write(expected ? `error: ${(error as Error).message}\n` : `ci/release.ts failed unexpectedly:\n${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
}
