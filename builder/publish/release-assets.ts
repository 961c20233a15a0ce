import { existsSync } from 'node:fs';
import { copyFile, link, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Cache } from '../cache.ts';
import { UserError } from '../errors.ts';
import { sha256File } from '../hash.ts';
import { type ImagerRepository, combineRepositories, imagerJsonName, imagerJsonText, parseImagerRepository, publishedUrl } from '../outputs/imager-repository.ts';
import type { OutputFile } from '../outputs/manifest.ts';
import { SUMS_FILE, parseSha256Sums, sha256sums } from '../outputs/sha256sums.ts';
import { type ReleaseManifest, manifestDate, readReleaseManifest } from './read-manifest.ts';
import { MANIFEST_FILE } from '../outputs/manifest.ts';
import { UPDATE_BINARIES, type UpdateBinaryName } from '../update/format.ts';
import { writeUpdateBundle } from '../update/write-bundle.ts';

/**
 * A release's files, assembled from the output directories of several builds (one per preset). GitHub keeps a
 * release's files in one flat list, so every preset's files carry its name: `<name>.img.xz` (as built),
 * `<name>.manifest.json` (the build's manifest.json), `<name>.rpi-imager.json`; and the release as a whole has
 * `os-list.json` (one Raspberry Pi Imager repository for every preset) and one `SHA256SUMS` of all of them.
 */

export const OS_LIST = 'os-list.json';

export function releaseDownloadUrl(repo: string, tag: string): string {
  return `https://github.com/${repo}/releases/download/${encodeURIComponent(tag)}`;
}

export function presetAssets(name: string): { image: string; manifest: string; imager: string } {
  return { image: `${name}.img.xz`, manifest: `${name}.manifest.json`, imager: imagerJsonName(name) };
}

interface PresetOutput {
  dir: string;
  manifest: ReleaseManifest;
  sums: Map<string, string>;
  imager: ImagerRepository;
}

async function readPresetOutput(dir: string): Promise<PresetOutput> {
  const sumsPath = join(dir, SUMS_FILE);
  const sumsText = await readFile(sumsPath, 'utf8').catch(() => {
    throw new UserError(`${dir} has no ${SUMS_FILE}: it is not the output of a finished build (build the preset again)`);
  });
  const manifest = await readReleaseManifest(join(dir, MANIFEST_FILE));
  const imagerPath = join(dir, imagerJsonName(manifest.recipe.name));
  const imagerText = await readFile(imagerPath, 'utf8').catch(() => {
    throw new UserError(`${imagerPath} is missing: ${dir} was built by a simplex-pi without Raspberry Pi Imager files; build it again`);
  });
  const sums = new Map(parseSha256Sums(sumsText, sumsPath).map((e) => [e.name, e.sha256]));
  return { dir, manifest, sums, imager: parseImagerRepository(imagerText, imagerPath) };
}

/** Put `from` into the release directory as `name` (a hard link where possible: images are large) and check its hash. */
async function takeFile(output: PresetOutput, file: string, releaseDir: string, name: string): Promise<OutputFile> {
  const from = join(output.dir, file);
  const to = join(releaseDir, name);
  await rm(to, { force: true });
  await link(from, to).catch(async () => copyFile(from, to));
  const sha256 = await sha256File(to);
  const expected = output.sums.get(file);
  if (!expected) throw new UserError(`${join(output.dir, SUMS_FILE)} does not list ${file}; build the preset again`);
  if (expected !== sha256) throw new UserError(`${from} has sha256 ${sha256}, but ${join(output.dir, SUMS_FILE)} says ${expected}: the file changed after the build; build again`);
  return { name, size: (await stat(to)).size, sha256 };
}

/** A file the release makes itself (not taken from a build). */
async function writeAsset(releaseDir: string, name: string, text: string): Promise<OutputFile> {
  const path = join(releaseDir, name);
  await writeFile(path, text);
  return { name, size: (await stat(path)).size, sha256: await sha256File(path) };
}

export interface AssembleOptions {
  /** Output directories of builds, one per preset. */
  outputs: string[];
  releaseDir: string;
  /** Where the release's files will be downloaded from. */
  downloadUrl: string;
  /**
   * Point the Imager JSON at `downloadUrl` when a build was made for somewhere else (no or another
   * `--publish-url`). Only for a dry run: the rewritten file no longer matches the hash in the build's manifest.
   */
  rewriteUrls: boolean;
  /**
   * The build cache the presets were built with: the relay update bundle is made from the simplexmq binaries it
   * verified (named there by their sha256). Without it the release has no bundle, which only a dry run allows.
   */
  cacheRoot?: string;
}

export interface AssembledRelease {
  /** Every file to publish, in order, SHA256SUMS last. */
  assets: string[];
  manifests: ReleaseManifest[];
  osList: ImagerRepository;
  /** What the reader of a dry run should know (rewritten URLs). */
  notices: string[];
}

/**
 * The relay update bundle (update/format.ts) of the simplexmq release every preset was built with, from the
 * binaries those builds verified (sha256 in their manifests, files in the cache under that sha256).
 */
async function relayUpdateBundle(outputs: readonly PresetOutput[], cacheRoot: string, releaseDir: string): Promise<OutputFile> {
  const [first, ...rest] = outputs.map((o) => ({ dir: o.dir, version: o.manifest.simplexmq.version, binaries: o.manifest.simplexmq.binaries, date: manifestDate(o.manifest) }));
  const key = (b: typeof first) => JSON.stringify([b!.version, ...b!.binaries.map((x) => [x.name, x.sha256]).sort()]);
  const other = rest.find((b) => key(b) !== key(first));
  if (other) throw new UserError(`${first!.dir} and ${other.dir} were built with different simplexmq binaries: a release carries one relay update bundle, so build every preset with the same ones`);
  const cache = new Cache(cacheRoot);
  const binaries = {} as Record<UpdateBinaryName, string>;
  for (const name of UPDATE_BINARIES) {
    const binary = first!.binaries.find((b) => b.name === name);
    const path = binary && cache.download(binary.sha256);
    if (!binary || !path || !existsSync(path) || (await sha256File(path)) !== binary.sha256) {
      throw new UserError(`the ${name} the builds verified (sha256 ${binary?.sha256 ?? 'none in the manifest'}) is not in the cache ${cacheRoot}: give assemble the --cache that build-all used`);
    }
    binaries[name] = path;
  }
  // The newest image's date: the same builds give the same bundle.
  const createdAt = new Date(Math.max(...[first!, ...rest].map((b) => Date.parse(b.date))));
  const { path } = await writeUpdateBundle({ version: first!.version, binaries, outDir: releaseDir, createdAt });
  return { name: basename(path), size: (await stat(path)).size, sha256: await sha256File(path) };
}

/** The entries of one build's Imager JSON pointed at the release; whether that changed anything. */
function atRelease(output: PresetOutput, downloadUrl: string, rewrite: boolean): { imager: ImagerRepository; rewritten: boolean } {
  const name = output.manifest.recipe.name;
  const url = publishedUrl(downloadUrl, presetAssets(name).image);
  const wrong = output.imager.os_list.filter((e) => e.url !== url);
  if (!wrong.length) return { imager: output.imager, rewritten: false };
  if (!rewrite) {
    throw new UserError(
      `${imagerJsonName(name)} in ${output.dir} points at ${wrong[0]!.url}, not at this release's ${url}: build ${name} with --publish-url ${downloadUrl}`,
    );
  }
  return { imager: { ...output.imager, os_list: output.imager.os_list.map((e) => ({ ...e, url })) }, rewritten: true };
}

export async function assembleRelease(options: AssembleOptions): Promise<AssembledRelease> {
  if (!options.outputs.length) throw new UserError('no build outputs to release: build the presets first (ci/release.ts build-all)');
  const outputs = await Promise.all(options.outputs.map(readPresetOutput));
  const seen = new Map<string, string>();
  for (const output of outputs) {
    const name = output.manifest.recipe.name;
    if (seen.has(name)) throw new UserError(`${output.dir} and ${seen.get(name)} are both builds of "${name}": give each preset once`);
    seen.set(name, output.dir);
  }
  await rm(options.releaseDir, { recursive: true, force: true });
  await mkdir(options.releaseDir, { recursive: true });
  const files: OutputFile[] = [];
  const repositories: ImagerRepository[] = [];
  const notices: string[] = [];
  for (const output of outputs) {
    const name = output.manifest.recipe.name;
    const assets = presetAssets(name);
    if (!output.sums.has(assets.image)) throw new UserError(`${output.dir} has no ${assets.image}: release builds need the compressed image (build without --compress none)`);
    files.push(await takeFile(output, assets.image, options.releaseDir, assets.image));
    files.push(await takeFile(output, MANIFEST_FILE, options.releaseDir, assets.manifest));
    const { imager, rewritten } = atRelease(output, options.downloadUrl, options.rewriteUrls);
    if (rewritten) {
      notices.push(`${assets.imager}: pointed at ${options.downloadUrl} (the build was made for another place; a real release refuses this)`);
      files.push(await writeAsset(options.releaseDir, assets.imager, imagerJsonText(imager)));
    } else {
      files.push(await takeFile(output, assets.imager, options.releaseDir, assets.imager));
    }
    repositories.push(imager);
  }
  if (options.cacheRoot) files.push(await relayUpdateBundle(outputs, options.cacheRoot, options.releaseDir));
  else if (options.rewriteUrls) notices.push('no --cache: this dry run has no relay update bundle');
  else throw new UserError('a release carries the relay update bundle, made from the binaries the builds verified: give assemble the --cache that build-all used');
  const osList = combineRepositories(repositories);
  files.push(await writeAsset(options.releaseDir, OS_LIST, imagerJsonText(osList)));
  await writeFile(join(options.releaseDir, SUMS_FILE), sha256sums(files));
  return { assets: [...files.map((f) => f.name), SUMS_FILE], manifests: outputs.map((o) => o.manifest), osList, notices };
}

/** Everything in the release directory, signatures included, in a stable order. */
export async function releaseFiles(releaseDir: string): Promise<string[]> {
  return (await readdir(releaseDir)).sort();
}

export interface GhReleaseCreate {
  repo: string;
  tag: string;
  notesFile: string;
  files: string[];
}

/** `gh release create` for the tag (which must exist: --verify-tag), with the notes and every file. */
export function ghReleaseCreateArgs(release: GhReleaseCreate): string[] {
  return ['release', 'create', release.tag, '--repo', release.repo, '--verify-tag', '--title', `simplex-pi ${release.tag}`, '--notes-file', release.notesFile, ...release.files];
}
