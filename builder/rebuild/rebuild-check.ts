import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import { Cache } from '../cache.ts';
import { UserError } from '../errors.ts';
import { OWNER_FILE } from '../image/leftovers.ts';
import { FROM_ENVIRONMENT } from '../image/source-date-epoch.ts';
import { sha256File, sha256Text } from '../hash.ts';
import { imageToolVersions } from '../outputs/host-tools.ts';
import { MANIFEST_FILE } from '../outputs/manifest.ts';
import { parseJsonAs } from '../parse-json.ts';
import { build } from '../pipeline/build.ts';
import { REPO_ROOT, toolVersion } from '../pipeline/tool-version.ts';
import type { BaseSpec } from '../recipe/schema.ts';
import type { Resources } from '../resources.ts';
import { compareImages, describeOffset } from './first-difference.ts';

/**
 * `simplex-pi rebuild-check`: build an image again from what its manifest records (the recipe, checked by its
 * sha256; the base, the packages layer and the simplexmq binaries, found in the cache by their keys and hashes; the
 * build options; SOURCE_DATE_EPOCH comes out the same from the same base), then compare the result with the files
 * beside the manifest, byte for byte. Identical means the published image is what these inputs make; otherwise it
 * names the first place the two images differ (partition, block, the file that owns it) and which of the manifest's
 * inputs differ.
 */

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

const manifestSchema = z.object({
  manifestVersion: z.literal(2, { error: 'was written by a simplex-pi from before reproducible images (manifestVersion 1): it cannot be rebuilt bit for bit' }),
  tool: z.object({ version: z.string(), commit: z.string().optional() }),
  sourceDate: z.object({ epoch: z.number(), iso: z.string(), from: z.string() }),
  recipe: z.object({ name: z.string().min(1), path: z.string().min(1), sha256 }),
  plan: z.object({ base: z.record(z.string(), z.unknown()) }),
  base: z.object({ sha256, description: z.string() }),
  build: z.object({
    compress: z.enum(['xz', 'none']),
    xzLevel: z.number().int().min(0).max(9),
    publishUrl: z.string().optional(),
    packagesLayer: z.string(),
    hostTools: z.record(z.string(), z.string()),
  }),
  outputs: z.array(z.object({ name: z.string(), size: z.number(), sha256 })),
});

type RebuildManifest = z.infer<typeof manifestSchema>;

export interface RebuildCheckOptions {
  /** A build's output directory or a release directory, or a manifest in one. */
  target: string;
  /** The recipe, when it is not where the manifest says (a path relative to the simplex-pi checkout, or absolute). */
  recipe?: string;
  cacheRoot: string;
  /** Keep the rebuilt files here instead of a temporary directory that is removed afterwards. */
  keep?: string;
  verbose: boolean;
  resources?: Resources;
  print: (line: string) => void;
}

export interface FileVerdict {
  name: string;
  status: 'identical' | 'different' | 'absent';
}

export interface RebuildVerdict {
  name: string;
  identical: boolean;
  files: FileVerdict[];
  /** When the images differ: where, in words. */
  firstDifference?: string;
  /** Top-level manifest fields whose values differ (base, packages, build, …): the inputs that changed. */
  manifestFields: string[];
}

/** The manifests a target names: the file itself, or every manifest in the directory (a release holds one per preset). */
async function findManifests(target: string): Promise<string[]> {
  const info = await stat(target).catch(() => undefined);
  if (!info) throw new UserError(`${target} does not exist; give rebuild-check a build's output directory, a release directory or a manifest`);
  if (info.isFile()) return [target];
  const names = (await readdir(target)).filter((n) => n === MANIFEST_FILE || n.endsWith(`.${MANIFEST_FILE}`)).sort();
  if (!names.length) throw new UserError(`${target} has no ${MANIFEST_FILE} (nor <name>.${MANIFEST_FILE}); is it a build's output or a release directory?`);
  return names.map((n) => join(target, n));
}

function recipePath(manifest: RebuildManifest, given?: string): string {
  if (given) return resolve(given);
  return isAbsolute(manifest.recipe.path) ? manifest.recipe.path : join(REPO_ROOT, manifest.recipe.path);
}

/** The published file that corresponds to a rebuilt output `name`: the same name, or `<recipe>.manifest.json` in a release. */
function publishedName(dir: string, recipe: string, name: string): string | undefined {
  for (const candidate of name === MANIFEST_FILE ? [MANIFEST_FILE, `${recipe}.${MANIFEST_FILE}`] : [name]) {
    if (existsSync(join(dir, candidate))) return candidate;
  }
  return undefined;
}

/** The top-level fields of two manifests whose values differ. */
export function differingFields(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  const fields: string[] = [];
  for (const key of keys) {
    const [x, y] = [a[key], b[key]];
    if (JSON.stringify(x) === JSON.stringify(y)) continue;
    if (x && y && typeof x === 'object' && typeof y === 'object' && !Array.isArray(x)) {
      fields.push(...differingFields(x as Record<string, unknown>, y as Record<string, unknown>).map((sub) => `${key}.${sub}`));
    } else {
      fields.push(key);
    }
  }
  return fields;
}

async function checkOne(manifestPath: string, options: RebuildCheckOptions, scratch: string): Promise<RebuildVerdict> {
  const { print } = options;
  const dir = dirname(manifestPath);
  const text = await readFile(manifestPath, 'utf8');
  const manifest = parseJsonAs(manifestSchema, text, manifestPath, { notJson: 'is not JSON', invalid: 'is not a simplex-pi build manifest rebuild-check can use' });
  const name = manifest.recipe.name;
  print(`${name}: rebuilding from ${manifestPath}`);
  const recipe = recipePath(manifest, options.recipe);
  const recipeText = await readFile(recipe, 'utf8').catch(() => {
    throw new UserError(`the recipe ${recipe} cannot be read; give the one the image was built from with --recipe FILE (sha256 ${manifest.recipe.sha256})`);
  });
  if (sha256Text(recipeText) !== manifest.recipe.sha256) {
    throw new UserError(`${recipe} is not the recipe ${name} was built from: its sha256 is ${sha256Text(recipeText)}, the manifest's ${manifest.recipe.sha256}. Give that recipe with --recipe FILE`);
  }
  print(`  recipe      ${recipe} (sha256 as recorded)`);
  const tool = await toolVersion();
  const sameTool = tool.version === manifest.tool.version && tool.commit === manifest.tool.commit;
  print(`  simplex-pi  ${tool.version}${tool.commit ? ` (${tool.commit})` : ''}${sameTool ? ', as recorded' : `; the image was built by ${manifest.tool.version}${manifest.tool.commit ? ` (${manifest.tool.commit})` : ''}: another version may write other bytes`}`);
  const hostTools = await imageToolVersions();
  const toolDifferences = Object.entries(manifest.build.hostTools).filter(([tool, version]) => hostTools[tool] !== version);
  print(
    `  host tools  ${Object.entries(hostTools).map(([t, v]) => `${t} ${v}`).join(', ')}${
      toolDifferences.length ? `; the image was built with ${toolDifferences.map(([t, v]) => `${t} ${v}`).join(', ')}: these may write other bytes` : ', as recorded'
    }`,
  );
  const layer = new Cache(options.cacheRoot).layer('packages', manifest.build.packagesLayer);
  if (!existsSync(layer)) {
    print(`  note        the packages layer ${manifest.build.packagesLayer} is not in ${options.cacheRoot}: apt installs the packages again, and the archive may give newer versions`);
  }
  const out = join(scratch, name);
  await rm(out, { recursive: true, force: true });
  // The image's date came from the environment: the same again. Otherwise the build chooses it from the same inputs.
  if (manifest.sourceDate.from === FROM_ENVIRONMENT) process.env.SOURCE_DATE_EPOCH = String(manifest.sourceDate.epoch);
  else delete process.env.SOURCE_DATE_EPOCH;
  await build({
    recipePath: recipe,
    baseOverride: () => manifest.plan.base as unknown as BaseSpec,
    outDir: out,
    compress: manifest.build.compress,
    xzLevel: manifest.build.xzLevel,
    publishUrl: manifest.build.publishUrl,
    cacheRoot: options.cacheRoot,
    verbose: options.verbose,
    resources: options.resources,
  });
  const rebuilt = JSON.parse(await readFile(join(out, MANIFEST_FILE), 'utf8')) as Record<string, unknown>;
  const files: FileVerdict[] = [];
  for (const output of [...(rebuilt.outputs as Array<{ name: string; sha256: string }>), { name: MANIFEST_FILE, sha256: await sha256File(join(out, MANIFEST_FILE)) }]) {
    const published = publishedName(dir, name, output.name);
    if (!published) {
      files.push({ name: output.name, status: 'absent' });
      continue;
    }
    const same = (await sha256File(join(dir, published))) === output.sha256;
    files.push({ name: published, status: same ? 'identical' : 'different' });
    print(`  ${same ? 'identical' : 'DIFFERENT'}   ${published}`);
  }
  const image = files.find((f) => f.name === `${name}.img` && f.status !== 'absent') ?? files.find((f) => f.name === `${name}.img.xz` && f.status !== 'absent');
  if (!image) throw new UserError(`${dir} has neither ${name}.img nor ${name}.img.xz: there is no image to compare`);
  const identical = files.every((f) => f.status !== 'different');
  const verdict: RebuildVerdict = { name, identical, files, manifestFields: differingFields(JSON.parse(text), rebuilt) };
  if (!identical) {
    let original = join(dir, `${name}.img`);
    if (image.name.endsWith('.xz')) {
      original = join(scratch, `${name}.published.img`);
      print(`  decompressing ${image.name} to compare it block by block`);
      await execa('xz', ['--decompress', '--stdout', '--', join(dir, image.name)], { stdout: { file: original } });
    }
    const difference = await compareImages(original, join(out, `${name}.img`));
    if (difference) {
      verdict.firstDifference = await describeOffset(original, difference.offset);
      print(`  first difference: ${verdict.firstDifference}`);
      print(`  ${difference.differingBlocks} of ${difference.totalBlocks} blocks of 4 KiB differ (sizes ${difference.sizes[0]} and ${difference.sizes[1]} bytes)`);
    }
    if (verdict.manifestFields.length) print(`  the manifests differ in: ${verdict.manifestFields.join(', ')}`);
  }
  print(identical ? `${name}: IDENTICAL, rebuilt bit for bit from the recorded inputs` : `${name}: NOT identical to a build of its recorded inputs`);
  return verdict;
}

/** Check every manifest the target names; throws (exit 1) unless every image was rebuilt bit for bit. */
export async function rebuildCheck(options: RebuildCheckOptions): Promise<RebuildVerdict[]> {
  if (process.getuid?.() !== 0) throw new UserError('simplex-pi rebuild-check builds the image again, which needs root (loop devices, mounts, a chroot): run it with sudo');
  const manifests = await findManifests(resolve(options.target));
  const scratch = options.keep ? resolve(options.keep) : join(options.cacheRoot, 'work', `rebuild-check-${process.pid}`);
  await mkdir(scratch, { recursive: true });
  // Owned like a build's work directory, so that the build inside does not take it for one a killed build left.
  if (!options.keep) await writeFile(join(scratch, OWNER_FILE), `${process.pid}\n`);
  try {
    const verdicts: RebuildVerdict[] = [];
    for (const manifest of manifests) verdicts.push(await checkOne(manifest, options, scratch));
    const failed = verdicts.filter((v) => !v.identical);
    if (failed.length) {
      throw new UserError(`${failed.map((v) => v.name).join(', ')} ${failed.length === 1 ? 'is' : 'are'} not what ${failed.length === 1 ? 'its' : 'their'} recorded inputs build (see above)`);
    }
    return verdicts;
  } finally {
    if (!options.keep) await rm(scratch, { recursive: true, force: true });
  }
}
