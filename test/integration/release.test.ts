import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, copyFile, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REPO, scratch } from '../helpers/env.ts';
import { imagerSchemaErrors } from '../helpers/imager-schema.ts';
import { PACKAGES, syntheticBuild } from '../helpers/synthetic-output.ts';
import { buildStandin } from '../fixtures/standin/build.ts';
import { parsePublicKey } from '../../builder/signing/minisign.ts';
import { openUpdateBundle } from '../../builder/update/open-bundle.ts';
import { type Workflow, releaseWorkflowProblems } from '../helpers/release-workflow.ts';

// The release workflow and its scripts: the workflow names only what exists, and the release steps run here as a
// dry run, for real as far as they can without GitHub: builds (synthetic), assembly, signing with a throwaway key,
// notes, and the `gh` commands printed.

const TAG = 'v1.2.0';
const GH_REPO = 'example/simplex-pi';
const DOWNLOAD = `https://github.com/${GH_REPO}/releases/download/${TAG}`;

async function release(args: string[], env: Record<string, string> = {}) {
  const result = await execa('node', ['--import', 'tsx', join(REPO, 'ci/release.ts'), ...args], {
    cwd: REPO,
    reject: false,
    all: true,
    // No GitHub: the steps must not rely on the runner's variables, nor on a key in this environment.
    env: { GITHUB_REF_NAME: '', GITHUB_REPOSITORY: '', SIMPLEX_PI_SIGNING_KEY: '', SIMPLEX_PI_PUBLIC_KEY: '', ...env },
  });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), all: String(result.all) };
}

const sha256 = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

describe('.github/workflows/release.yml', () => {
  const workflow = parse(readFileSync(join(REPO, '.github/workflows/release.yml'), 'utf8')) as Workflow;
  const steps = Object.values(workflow.jobs).flatMap((job) => job.steps);
  const runs = steps.map((s) => s.run ?? '').join('\n');

  it('runs on version tags and by hand with a dry-run switch that is on by default, one release of a ref at a time', () => {
    expect(Object.keys(workflow.on).sort()).toEqual(['push', 'workflow_dispatch']);
    expect(workflow.on.push.tags).toEqual(['v*']);
    expect(workflow.on.workflow_dispatch.inputs.dry_run).toMatchObject({ type: 'boolean', default: true });
    expect(workflow.concurrency).toEqual({ group: 'release-${{ github.ref }}', 'cancel-in-progress': false });
  });

  it('calls only scripts and npm scripts that exist, and release steps that ci/release.ts has', async () => {
    const paths = [...runs.matchAll(/(?:^|[\s"'])(ci\/[\w./-]+)/g)].map((m) => m[1]!);
    expect(paths).toContain('ci/setup-host.sh');
    for (const path of paths) {
      const info = await stat(join(REPO, path));
      if (path.endsWith('.sh')) expect(info.mode & 0o111, `${path} is not executable`).not.toBe(0);
    }
    const scripts = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).scripts as Record<string, string>;
    const npmRuns = [...runs.matchAll(/npm run ([\w:-]+)(?: -- (\S+))?/g)];
    expect(npmRuns.length).toBeGreaterThanOrEqual(6);
    const help = (await release(['help'])).stdout;
    for (const [, script, step] of npmRuns) {
      expect(scripts, `npm script ${script}`).toHaveProperty(script!);
      if (script === 'release') expect(help, `release step ${step}`).toMatch(new RegExp(`^  ${step} `, 'm'));
    }
    expect(npmRuns.map((m) => m[2])).toEqual(['build-all', 'assemble', 'sign', 'previous', 'notes', 'publish']);
  });

  it('builds, signs and publishes in three jobs: the build holds no secret and no write token, the key is seen only by sign, only publish may write', () => {
    expect(releaseWorkflowProblems(workflow)).toEqual([]);
    // What the rules found, by name, so a renamed job is a change someone sees here.
    expect(Object.keys(workflow.jobs)).toEqual(['build', 'sign', 'publish']);
    expect(workflow.permissions).toEqual({});
    expect(Object.fromEntries(Object.entries(workflow.jobs).map(([name, job]) => [name, job.permissions]))).toEqual({
      build: { contents: 'read' },
      sign: { contents: 'read' },
      publish: { contents: 'write' },
    });
  });

  // Each rule, shown to catch what it is for: the real workflow altered one way at a time.
  type Alter = (w: Workflow) => void;
  const step = (w: Workflow, job: string, pattern: RegExp) => w.jobs[job]!.steps.find((s) => pattern.test(s.run ?? s.uses ?? ''))!;
  const alterations: Array<[string, Alter, string]> = [
    ['a checkout that keeps the token', (w) => delete step(w, 'build', /actions\/checkout/).with!['persist-credentials'], 'job build: actions/checkout without persist-credentials: false'],
    ['publish checks out with the token kept', (w) => (step(w, 'publish', /actions\/checkout/).with!['persist-credentials'] = true), 'job publish: actions/checkout without persist-credentials: false'],
    ['top-level contents: write', (w) => (w.permissions = { contents: 'write' }), 'top-level permissions {"contents":"write"} may write'],
    ['no top-level permissions', (w) => delete w.permissions, "top-level permissions \"(none: GitHub's default)\" may write"],
    ['a token in the workflow-wide env', (w) => (w.env!.GH_TOKEN = '${{ github.token }}'), 'a secret or token is named outside the jobs'],
    ['the build job may write', (w) => (w.jobs.build!.permissions = { contents: 'write' }), 'job build may write ({"contents":"write"}); only the publish job may'],
    ['the sign job may write', (w) => (w.jobs.sign!.permissions = 'write-all'), 'job sign may write ("write-all"); only the publish job may'],
    ['publish may also write packages', (w) => (w.jobs.publish!.permissions = { contents: 'write', packages: 'write' }), 'job publish may write more than contents'],
    ['a job without its own permissions', (w) => delete w.jobs.sign!.permissions, 'job sign has no permissions of its own'],
    ['a token in the build job', (w) => (step(w, 'build', /build-all/).env = { GH_TOKEN: '${{ github.token }}' }), 'job build builds (recipes, downloads) and names a secret or token'],
    ['a secret in the build job', (w) => (step(w, 'build', /assemble/).env = { X: '${{ secrets.OTHER }}' }), 'job build names a secret or the signing key; only the sign job may'],
    ['the signing key in the publish job', (w) => (step(w, 'publish', /release -- publish/).env!.SIMPLEX_PI_SIGNING_KEY = '${{ secrets.SIMPLEX_PI_SIGNING_KEY }}'), 'job publish names a secret or the signing key; only the sign job may'],
    ['the signing key on a command line', (w) => (step(w, 'sign', /release -- sign/).run += ' --key-env "${{ secrets.SIMPLEX_PI_SIGNING_KEY }}"'), 'job sign: the signing key is on a command line'],
    ['the signing key given to a dry run', (w) => (step(w, 'sign', /release -- sign/).env!.SIMPLEX_PI_SIGNING_KEY = '${{ secrets.SIMPLEX_PI_SIGNING_KEY }}'), 'for real releases only'],
    ['the signing key in another step of the sign job', (w) => (step(w, 'sign', /npm ci/).env = { K: '${{ secrets.SIMPLEX_PI_SIGNING_KEY }}' }), 'names a secret and is not the sign step'],
    ['the sign job sets up the host', (w) => w.jobs.sign!.steps.splice(3, 0, { run: 'sudo env "PATH=$PATH" ci/setup-host.sh' }), 'job sign runs "setup-host"'],
    ['the sign job builds', (w) => w.jobs.sign!.steps.splice(3, 0, { run: 'npm run release -- build-all --work "$WORK"' }), 'the build steps (build-all, assemble) must run in exactly one job, not in build, sign'],
    ['the publish job builds', (w) => w.jobs.publish!.steps.splice(3, 0, { run: 'npm run release -- build-all --work "$WORK"' }), 'must run in exactly one job, not in build, publish'],
    ['the publish job runs something as root', (w) => w.jobs.publish!.steps.splice(3, 0, { run: 'sudo apt-get install -y minisign' }), 'job publish runs "sudo"'],
    ['a third-party action where the key is', (w) => w.jobs.sign!.steps.splice(1, 0, { uses: 'someone/cache-action@v1' }), 'job sign uses someone/cache-action@v1'],
    ['install scripts where the write token is', (w) => (step(w, 'publish', /npm ci/).run = 'npm ci'), 'job publish installs npm packages with their install scripts'],
    ['sign before the build is done', (w) => delete w.jobs.sign!.needs, 'job sign must need build'],
    ['publish without waiting for the signatures', (w) => (w.jobs.publish!.needs = 'build'), 'job publish must need sign'],
    ['the build after something else', (w) => (w.jobs.build!.needs = 'publish'), 'job build builds and must come first'],
    ['sign takes another artifact', (w) => (step(w, 'sign', /download-artifact/).with!.name = 'something-else'), 'job sign does not download what job build uploads before it runs sign'],
    ['publish takes the unsigned files', (w) => (step(w, 'publish', /download-artifact/).with!.name = 'release-unsigned'), 'job publish does not download what job sign uploads before it runs previous'],
    ['no failure logs', (w) => (w.jobs.build!.steps = w.jobs.build!.steps.filter((s) => s.if !== 'failure()')), 'job build keeps no logs of a failed build'],
    [
      'everything in one job again, as before the review',
      (w) => {
        w.jobs = { release: { permissions: { contents: 'write' }, steps: [...w.jobs.build!.steps, ...w.jobs.sign!.steps, ...w.jobs.publish!.steps] } };
        w.permissions = { contents: 'write' };
      },
      'build, sign and publish must be three jobs; they are release, release, release',
    ],
  ];
  it.each(alterations)('catches %s', (_what, alter, problem) => {
    const altered = structuredClone(workflow);
    alter(altered);
    expect(releaseWorkflowProblems(altered).join('\n')).toContain(problem);
  });
});

describe('ci/release.ts', () => {
  let dir: string;
  let outputs: string;
  let previous: string;
  /** The release key's public key, and another key's, from the signing test (base64). */
  let published: string;
  let other: string;

  beforeAll(async () => {
    dir = await scratch('release');
    outputs = join(dir, 'out');
    previous = join(dir, 'previous');
    // This release: solo built for the release's URL (as build-all does); team built locally, without --publish-url.
    await syntheticBuild({ name: 'solo', outDir: join(outputs, 'solo'), recipe: 'models: [zero2w, pi3, pi4, pi5]\n', publishUrl: DOWNLOAD });
    await syntheticBuild({ name: 'team', outDir: join(outputs, 'team'), recipe: 'models: [pi4, pi5]\n' });
    // The previous release had solo only, with an older simplexmq and Tor.
    const old = await syntheticBuild({
      name: 'solo',
      outDir: join(dir, 'old', 'solo'),
      simplexmqVersion: '6.5.1',
      packages: PACKAGES.map((p) => (p.name === 'tor' ? { ...p, version: '0.4.8.15-1' } : p)).filter((p) => p.name !== 'openssl'),
    });
    await mkdir(previous);
    await copyFile(join(old.outDir, 'manifest.json'), join(previous, 'solo.manifest.json'));
  }, 60_000);

  it('a dry run of every step: the release files, a combined os-list.json for Imager, signatures, notes and the gh command', { timeout: 120_000 }, async () => {
    const work = join(dir, 'work');
    const result = await release(['all', '--dry-run', '--work', work, '--outputs', outputs, '--tag', TAG, '--repo', GH_REPO, '--previous', previous, '--previous-tag', 'v1.1.0']);
    expect(result.exitCode, result.all).toBe(0);

    // build-all prints the builds it would run, each for this release's URL.
    for (const preset of ['solo', 'family', 'team', 'org']) {
      expect(result.stdout).toContain(`would run: ${process.execPath} ${join(REPO, 'bin/simplex-pi.mjs')} build --recipe ${join(REPO, 'recipes', `${preset}.yaml`)} --base raspios --out ${join(outputs, preset)} --publish-url ${DOWNLOAD}`);
    }

    const releaseDir = join(work, 'release');
    const files = (await readdir(releaseDir)).sort();
    expect(files).toEqual(
      [
        'SHA256SUMS', 'SHA256SUMS.minisig', 'os-list.json', 'os-list.json.minisig',
        'solo.img.xz', 'solo.manifest.json', 'solo.manifest.json.minisig', 'solo.rpi-imager.json', 'solo.rpi-imager.json.minisig',
        'team.img.xz', 'team.manifest.json', 'team.manifest.json.minisig', 'team.rpi-imager.json', 'team.rpi-imager.json.minisig',
      ].sort(),
    );
    // The images are the builds' own, and SHA256SUMS checks every published file.
    expect(await sha256(join(releaseDir, 'solo.img.xz'))).toBe(await sha256(join(outputs, 'solo', 'solo.img.xz')));
    expect(await sha256(join(releaseDir, 'solo.manifest.json'))).toBe(await sha256(join(outputs, 'solo', 'manifest.json')));
    expect(execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: releaseDir }).toString().trim().split('\n')).toEqual(
      ['solo.img.xz', 'solo.manifest.json', 'solo.rpi-imager.json', 'team.img.xz', 'team.manifest.json', 'team.rpi-imager.json', 'os-list.json'].map((f) => `${f}: OK`),
    );

    // os-list.json: valid for Imager, one entry per preset, downloading from the release, with the images' sizes and hashes.
    const osList = JSON.parse(await readFile(join(releaseDir, 'os-list.json'), 'utf8'));
    expect(imagerSchemaErrors(osList)).toEqual([]);
    expect(osList.os_list.map((e: { name: string }) => e.name)).toEqual(['SimpleX relays: solo', 'SimpleX relays: team']);
    expect(osList.imager.devices.map((d: { name: string }) => d.name)).toEqual(['Raspberry Pi 5', 'Raspberry Pi 4', 'Raspberry Pi 3', 'Raspberry Pi Zero 2 W']);
    for (const [index, name] of ['solo', 'team'].entries()) {
      const entry = osList.os_list[index];
      const xz = join(releaseDir, `${name}.img.xz`);
      expect(entry.url).toBe(`${DOWNLOAD}/${name}.img.xz`);
      expect([entry.image_download_size, entry.image_download_sha256]).toEqual([(await stat(xz)).size, await sha256(xz)]);
      const img = join(outputs, name, `${name}.img`);
      expect([entry.extract_size, entry.extract_sha256]).toEqual([(await stat(img)).size, await sha256(img)]);
      expect(JSON.parse(await readFile(join(releaseDir, `${name}.rpi-imager.json`), 'utf8')).os_list).toEqual([entry]);
    }
    // team was built without --publish-url: a dry run points it at the release and says so.
    expect(result.stdout).toContain(`team.rpi-imager.json: pointed at ${DOWNLOAD}`);
    expect(result.stdout).not.toContain('solo.rpi-imager.json: pointed at');

    // Signed with a throwaway key; minisign itself checks every signature against the key the dry run printed.
    const publicKey = /throwaway key \(not the release key\), public key (\S+)/.exec(result.stdout)?.[1];
    expect(publicKey).toMatch(/^RW[A-Za-z0-9+/]{54}$/);
    for (const signed of files.filter((f) => f.endsWith('.minisig')).map((f) => f.slice(0, -'.minisig'.length))) {
      execFileSync('minisign', ['-V', '-q', '-P', publicKey!, '-m', join(releaseDir, signed)]);
    }

    // The notes: versions from the manifests and what changed since the previous release.
    const notes = await readFile(join(work, 'notes.md'), 'utf8');
    expect(notes).toMatch(/^# simplex-pi v1\.2\.0$/m);
    expect(notes).toContain('| solo | Synthetic solo | 5, 4, 3, Zero 2 W | 6.5.2 | 0.4.8.16-1 |');
    expect(notes).toContain(`rpi-imager --repo ${DOWNLOAD}/os-list.json`);
    const solo = notes.slice(notes.indexOf('### solo'), notes.indexOf('### team'));
    expect(solo).toContain('- Changed since v1.1.0:\n  - simplexmq 6.5.1 → 6.5.2\n  - openssl 3.5.1-1 (added)\n  - tor 0.4.8.15-1 → 0.4.8.16-1');
    expect(notes.slice(notes.indexOf('### team'))).toContain('- New in this release (not in v1.1.0).');

    // What would be published: every file of the release directory, with the notes, for the tag; nothing else.
    const gh = result.stdout.split('\n').filter((l) => l.startsWith('would run: gh'));
    expect(gh[0]).toBe(`would run: gh release view --repo ${GH_REPO} --json tagName --jq .tagName`);
    expect(gh.at(-1)).toBe(
      `would run: gh release create ${TAG} --repo ${GH_REPO} --verify-tag --title 'simplex-pi ${TAG}' --notes-file ${join(work, 'notes.md')} ${files.map((f) => join(releaseDir, f)).join(' ')}`,
    );
    expect(result.stdout).toContain(`sign: 7 files match SHA256SUMS, and nothing else is in ${releaseDir}`);
    expect(result.stdout).toContain("publish: the files match SHA256SUMS and the signatures verify with the dry run's key");
    expect(result.stdout).toContain('publish: dry run, nothing published (14 files)');
  });

  it('a real release refuses a build made for another download URL, and says how to build it', async () => {
    const result = await release(['assemble', '--work', join(dir, 'real'), '--outputs', outputs, '--tag', TAG, '--repo', GH_REPO]);
    expect(result.exitCode).toBe(1);
    expect(result.all).toContain(`team.rpi-imager.json in ${join(outputs, 'team')} points at file://`);
    expect(result.all).toContain(`build team with --publish-url ${DOWNLOAD}`);
  });

  it('refuses a build whose files changed after it was built', async () => {
    const tampered = join(dir, 'tampered');
    await syntheticBuild({ name: 'solo', outDir: join(tampered, 'solo'), publishUrl: DOWNLOAD });
    await appendFile(join(tampered, 'solo', 'solo.img.xz'), 'x');
    const result = await release(['assemble', '--work', join(dir, 'tampered-work'), '--outputs', tampered, '--tag', TAG, '--repo', GH_REPO]);
    expect(result.exitCode).toBe(1);
    expect(result.all).toMatch(/solo\.img\.xz has sha256 [0-9a-f]{64}, but .*SHA256SUMS says [0-9a-f]{64}: the file changed after the build/);
  });

  it('sign and publish refuse a release directory that is not exactly what its SHA256SUMS lists, and say which files', { timeout: 120_000 }, async () => {
    // As in the workflow: the release directory made by another job, changed on its way to the sign job.
    const built = join(dir, 'checked-out');
    await syntheticBuild({ name: 'solo', outDir: join(built, 'solo'), publishUrl: DOWNLOAD });
    const work = join(dir, 'checked');
    const releaseDir = join(work, 'release');
    const common = ['--work', work, '--outputs', built, '--tag', TAG, '--repo', GH_REPO];
    // A dry run's assemble: these synthetic builds have no binaries in a cache to make a relay update bundle from.
    const assembled = async () => expect((await release(['assemble', '--dry-run', ...common])).exitCode).toBe(0);
    const signatures = async () => (await readdir(releaseDir)).filter((f) => f.endsWith('.minisig'));
    await assembled();
    const listed = (await readFile(join(releaseDir, 'SHA256SUMS'), 'utf8')).trim().split('\n').map((l) => l.split('  ') as [string, string]);
    const expected = Object.fromEntries(listed.map(([hash, name]) => [name, hash]));

    // A changed image (a new file: the release's is a hard link to the build's), a listed file gone, a file nobody
    // listed, and a signature of a file that is not signed: each named, and no key made, nothing signed.
    const image = join(releaseDir, 'solo.img.xz');
    const changed = Buffer.concat([await readFile(image), Buffer.from('x')]);
    await rm(image);
    await writeFile(image, changed);
    const changedHash = createHash('sha256').update(changed).digest('hex');
    await rm(join(releaseDir, 'solo.rpi-imager.json'));
    await writeFile(join(releaseDir, 'extra.bin'), 'not from the build\n');
    await writeFile(join(releaseDir, 'solo.img.xz.minisig'), 'untrusted comment: not ours\n');
    const refused = await release(['sign', '--dry-run', ...common]);
    expect(refused.exitCode, refused.all).toBe(1);
    expect(refused.all).toContain(`error: ${releaseDir} does not match its SHA256SUMS; nothing was signed:`);
    expect(refused.all).toContain(`  - solo.img.xz has sha256 ${changedHash}, but SHA256SUMS says ${expected['solo.img.xz']}\n`);
    expect(refused.all).toContain('  - solo.rpi-imager.json is listed in SHA256SUMS but missing\n');
    expect(refused.all).toContain('  - extra.bin (a file) is in the release directory but not listed in SHA256SUMS\n');
    expect(refused.all).toContain('  - solo.img.xz.minisig (a file) is in the release directory but not listed in SHA256SUMS\n');
    expect(refused.all).not.toContain('throwaway key');
    expect(await signatures()).toEqual(['solo.img.xz.minisig']);

    // One change alone is enough: the same directory with only the image changed.
    await assembled();
    await rm(image);
    await writeFile(image, changed);
    const imageOnly = await release(['sign', '--dry-run', ...common]);
    expect(imageOnly.exitCode).toBe(1);
    expect(imageOnly.all).toMatch(/does not match its SHA256SUMS; nothing was signed:\n {2}- solo\.img\.xz has sha256 [0-9a-f]{64}, but SHA256SUMS says [0-9a-f]{64}\nA release directory/);
    expect(await signatures()).toEqual([]);

    // Untouched, it is signed; signed again (the signatures are the only files SHA256SUMS need not list) too.
    await assembled();
    for (const attempt of [1, 2]) {
      const signed = await release(['sign', '--dry-run', ...common]);
      expect(signed.exitCode, `attempt ${attempt}: ${signed.all}`).toBe(0);
      expect(signed.stdout).toContain(`sign: 4 files match SHA256SUMS, and nothing else is in ${releaseDir}`);
    }
    expect((await signatures()).sort()).toEqual(['SHA256SUMS.minisig', 'os-list.json.minisig', 'solo.manifest.json.minisig', 'solo.rpi-imager.json.minisig']);

    // Publish checks again: a file that appeared after signing would be uploaded without a signature vouching for it.
    expect((await release(['notes', '--dry-run', ...common])).exitCode).toBe(0);
    await writeFile(join(releaseDir, 'late.txt'), 'added after signing\n');
    const late = await release(['publish', '--dry-run', ...common]);
    expect(late.exitCode).toBe(1);
    expect(late.all).toContain(`${releaseDir} does not match its SHA256SUMS; nothing was published:\n  - late.txt (a file) is in the release directory but not listed in SHA256SUMS`);
    expect(late.stdout).not.toContain('would run: gh release create');
    await rm(join(releaseDir, 'late.txt'));
    const dryPublish = await release(['publish', '--dry-run', ...common]);
    expect(dryPublish.exitCode, dryPublish.all).toBe(0);
    expect(dryPublish.stdout).toContain("publish: the files match SHA256SUMS; dry run: the signatures were made by another run's throwaway key and are not checked");
  });

  it('signs with the key from the secret only if it verifies with the published public key, and removes the key file', { timeout: 60_000 }, async () => {
    const keys = join(dir, 'keys');
    for (const name of ['release', 'other']) await execa('node', [join(REPO, 'bin/simplex-pi.mjs'), 'keygen', '--out', join(keys, name), '--unencrypted']);
    const secret = await readFile(join(keys, 'release', 'minisign.key'), 'utf8');
    published = (await readFile(join(keys, 'release', 'minisign.pub'), 'utf8')).trim().split('\n').at(-1)!;
    other = (await readFile(join(keys, 'other', 'minisign.pub'), 'utf8')).trim().split('\n').at(-1)!;
    const work = join(dir, 'signed');
    const outputsForRelease = join(dir, 'for-release');
    // The binaries the build verified, where build-all's cache keeps them (named by their sha256): the relay update
    // bundle is made from them.
    const cache = join(dir, 'release-cache');
    await mkdir(join(cache, 'downloads'), { recursive: true });
    const binarySha256: Record<string, string> = {};
    for (const kind of ['smp', 'xftp'] as const) {
      const built = await buildStandin({ kind, version: '6.5.2.0', output: join(dir, `${kind}-server`) });
      const bytes = await readFile(built);
      binarySha256[`${kind}-server`] = createHash('sha256').update(bytes).digest('hex');
      await writeFile(join(cache, 'downloads', binarySha256[`${kind}-server`]!), bytes);
    }
    await syntheticBuild({ name: 'solo', outDir: join(outputsForRelease, 'solo'), publishUrl: DOWNLOAD, binarySha256 });
    const common = ['--work', work, '--outputs', outputsForRelease, '--tag', TAG, '--repo', GH_REPO];
    const noCache = await release(['assemble', ...common]);
    expect(noCache.exitCode).toBe(1);
    expect(noCache.all).toContain('a release carries the relay update bundle, made from the binaries the builds verified: give assemble the --cache that build-all used');
    expect((await release(['assemble', ...common, '--cache', cache])).exitCode).toBe(0);
    const bundleName = 'simplex-pi-relay-update-6.5.2.tar';
    expect(await readFile(join(work, 'release', 'SHA256SUMS'), 'utf8')).toMatch(new RegExp(`^[0-9a-f]{64}  ${bundleName.replaceAll('.', '\\.')}$`, 'm'));

    const noKey = await release(['sign', ...common]);
    expect(noKey.exitCode).toBe(1);
    expect(noKey.all).toContain('$SIMPLEX_PI_SIGNING_KEY is empty: store the secret key file\'s content as the repository secret SIMPLEX_PI_SIGNING_KEY');

    const wrongKey = await release(['sign', ...common], { SIMPLEX_PI_SIGNING_KEY: secret, SIMPLEX_PI_PUBLIC_KEY: other });
    expect(wrongKey.exitCode).toBe(1);
    expect(wrongKey.all).toContain('Could not verify the signatures with the published public key');
    expect(wrongKey.all).not.toContain(secret.trim().split('\n').at(-1)!);

    const signed = await release(['sign', ...common], { SIMPLEX_PI_SIGNING_KEY: secret, SIMPLEX_PI_PUBLIC_KEY: published });
    expect(signed.exitCode, signed.all).toBe(0);
    expect(signed.all).not.toContain(secret.trim().split('\n').at(-1)!);
    execFileSync('minisign', ['-V', '-q', '-P', published, '-m', join(work, 'release', 'SHA256SUMS')]);
    // The relay update bundle carries its own signature, which the Pi checks before it reads a byte of the tar.
    execFileSync('minisign', ['-V', '-q', '-P', published, '-m', join(work, 'release', bundleName)]);
    const opened = await openUpdateBundle(
      await readFile(join(work, 'release', bundleName)),
      await readFile(join(work, 'release', `${bundleName}.minisig`)),
      parsePublicKey(published, 'the published key'),
      bundleName,
    );
    expect(opened.manifest.simplexmq).toBe('6.5.2');
    expect(Object.fromEntries([...opened.binaries].map(([name, bytes]) => [name, createHash('sha256').update(bytes).digest('hex')]))).toEqual(binarySha256);
    // The key file lived in a temporary directory named in the log; it is gone.
    const keyDirs = [...(await readFile(join(work, 'release.log'), 'utf8')).matchAll(/--key (\S+)\/minisign\.key/g)].map((m) => m[1]!);
    expect(keyDirs.length).toBeGreaterThan(0);
    for (const keyDir of keyDirs) expect(existsSync(keyDir)).toBe(false);

    // Publishing for real needs a version tag.
    const notTag = await release(['publish', '--work', work, '--tag', 'main', '--repo', GH_REPO]);
    expect(notTag.exitCode).toBe(1);
    expect(notTag.all).toContain('"main" is not a version tag (v1.2.3)');
  });

  it('previous, notes and publish for real, against a stand-in for the GitHub CLI', { timeout: 60_000 }, async () => {
    // The signed release of the test before; `gh` is a script that records its arguments and plays GitHub.
    const work = join(dir, 'signed');
    const bin = join(dir, 'bin');
    await mkdir(bin, { recursive: true });
    const log = join(dir, 'gh.log');
    await writeFile(
      join(bin, 'gh'),
      [
        '#!/bin/sh',
        'echo "$*" >> "$FAKE_GH_LOG"',
        'case "$1 $2" in',
        '  "release view") echo v1.1.0 ;;',
        '  "release download") while [ $# -gt 0 ]; do [ "$1" = --dir ] && dir="$2"; shift; done; cp "$FAKE_GH_MANIFEST" "$dir/solo.manifest.json" ;;',
        'esac',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const env = { PATH: `${bin}:${process.env.PATH}`, FAKE_GH_LOG: log, FAKE_GH_MANIFEST: join(previous, 'solo.manifest.json'), SIMPLEX_PI_PUBLIC_KEY: published };
    const common = ['--work', work, '--tag', TAG, '--repo', GH_REPO];
    for (const step of ['previous', 'notes']) {
      const result = await release([step, ...common], env);
      expect(result.exitCode, `${step}: ${result.all}`).toBe(0);
    }
    // Publish checks the signatures with the published key first: without one, or with another key, nothing goes out.
    const noKey = await release(['publish', ...common], { ...env, SIMPLEX_PI_PUBLIC_KEY: '' });
    expect(noKey.exitCode).toBe(1);
    expect(noKey.all).toContain('no public key to check the signatures with before publishing');
    const otherKey = await release(['publish', ...common], { ...env, SIMPLEX_PI_PUBLIC_KEY: other });
    expect(otherKey.exitCode).toBe(1);
    expect(otherKey.all).toContain("Could not verify the release with the published public key before publishing it; nothing was published");
    const done = await release(['publish', ...common], env);
    expect(done.exitCode, done.all).toBe(0);
    expect(done.stdout).toContain('publish: the files match SHA256SUMS and the signatures verify with the published public key');
    const calls = (await readFile(log, 'utf8')).trim().split('\n');
    expect(calls[0]).toBe(`release view --repo ${GH_REPO} --json tagName --jq .tagName`);
    expect(calls[1]).toBe(`release download v1.1.0 --repo ${GH_REPO} --pattern *.manifest.json --dir ${join(work, 'previous')}`);
    const files = (await readdir(join(work, 'release'))).sort();
    expect(files).toContain('SHA256SUMS.minisig');
    expect(calls[2]).toBe(`release create ${TAG} --repo ${GH_REPO} --verify-tag --title simplex-pi ${TAG} --notes-file ${join(work, 'notes.md')} ${files.map((f) => join(work, 'release', f)).join(' ')}`);
    expect(calls).toHaveLength(3);
    expect(await readFile(join(work, 'notes.md'), 'utf8')).toContain('- Changed since v1.1.0:\n  - simplexmq 6.5.1 → 6.5.2');
  });
});
