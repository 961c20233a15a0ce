import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, truncate, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { join } from 'node:path';
import type { InitFormat } from '../../builder/base/init-format.ts';
import type { BaseImage } from '../../builder/base/types.ts';
import { Cache } from '../../builder/cache.ts';
import { silentLog } from '../../builder/log.ts';
import { resolvePlan } from '../../builder/plan/plan.ts';
import type { InstalledBinary, InstalledPackage } from '../../builder/outputs/manifest.ts';
import { parseRecipe } from '../../builder/recipe/load.ts';
import { Resources } from '../../builder/resources.ts';
import type { StageContext } from '../../builder/pipeline/context.ts';
import { type EmitResult, emitStage } from '../../builder/stages/emit.ts';
import { DEFAULT_LOCK } from '../../builder/stages/simplexmq-lock.ts';
import { scratch } from './env.ts';

/** A Raspberry Pi OS base as the raspios provider describes one (not downloaded: emit only records it). */
export const RASPIOS_BASE: BaseImage = {
  provider: 'raspios',
  path: '/nonexistent/base.img',
  sha256: '1'.repeat(64),
  description: 'Raspberry Pi OS Lite (64-bit) 2025-10-01',
  url: 'https://downloads.raspberrypi.com/raspios_lite_arm64/images/raspios_lite_arm64-2025-10-02/2025-10-01-raspios-trixie-arm64-lite.img.xz',
  downloadSha256: '2'.repeat(64),
  releaseDate: '2025-10-01',
  listedInitFormat: 'systemd',
};

export const PACKAGES: InstalledPackage[] = [
  { name: 'nodejs', version: '20.19.2+dfsg-1', architecture: 'arm64' },
  { name: 'openssl', version: '3.5.1-1', architecture: 'arm64' },
  { name: 'tor', version: '0.4.8.16-1', architecture: 'arm64' },
];

export interface SyntheticBuild {
  name: string;
  outDir: string;
  /** Extra recipe lines (YAML). */
  recipe?: string;
  compress?: 'xz' | 'none';
  publishUrl?: string;
  base?: BaseImage;
  /** The init_format configure chose; by default what the base's list entry says, or none. */
  initFormat?: string;
  packages?: InstalledPackage[];
  simplexmqVersion?: string;
  /** The sha256 of each simplexmq binary the build "verified" (the sha256 of its name when not given). */
  binarySha256?: Partial<Record<string, string>>;
  /** Size of the synthetic image (at least 8 MiB): a FAT partition and an ext4 one holding some random bytes, the rest zeros, like a real sealed image. */
  imageBytes?: number;
  /** Build from a copy of this image, made here by the first build that names it: two builds of the same bytes. */
  image?: string;
}

/** The date a synthetic build's image carries: its base's release date, as source-date-epoch.ts chooses it. */
export const SYNTHETIC_DATE = { epoch: Date.parse('2025-10-01T00:00:00Z') / 1000, from: "the base's release date (2025-10-01)" };

const MiB = 1024 * 1024;

/**
 * A small disk image laid out as the build's are (what emit reads for the .bmap): a partition table, FAT partition
 * 1 at 1 MiB, ext4 partition 2 at 4 MiB to the end, made from a directory with one random file. No root, no loop device.
 */
export async function syntheticImage(path: string, bytes: number, work: string): Promise<void> {
  const tree = join(work, 'synthetic-tree');
  await mkdir(tree, { recursive: true });
  await writeFile(join(tree, 'random'), randomBytes(64 * 1024));
  await writeFile(path, Buffer.alloc(0));
  await truncate(path, bytes);
  await execa('sfdisk', ['--quiet', path], { input: `label: dos\n1MiB,3MiB,c\n4MiB,,83\n` });
  await execa('mkfs.vfat', ['--invariant', '-i', '12345678', '--offset', String(MiB / 512), path, String(3 * 1024)]);
  await execa('mke2fs', ['-q', '-F', '-t', 'ext4', '-E', `offset=${4 * MiB}`, '-U', '11111111-2222-3333-4444-555555555555', '-d', tree, path, `${(bytes - 4 * MiB) / 1024}k`], {
    env: { E2FSPROGS_FAKE_TIME: String(SYNTHETIC_DATE.epoch) },
  });
}

/**
 * The real emit stage on a small synthetic image, with the plan of a real recipe: what a build writes to its
 * output directory, without a base, loop devices or root.
 */
export async function syntheticBuild(options: SyntheticBuild): Promise<EmitResult> {
  const work = await scratch('synthetic');
  const version = options.simplexmqVersion ?? '6.5.2';
  const recipe = parseRecipe(`name: ${options.name}\ndescription: Synthetic ${options.name}\nsimplexmq:\n  version: ${version}\n${options.recipe ?? ''}`, `${options.name}.yaml`);
  const plan = resolvePlan(recipe);
  const image = join(work, 'work.img');
  if (options.image) {
    if (!existsSync(options.image)) await syntheticImage(options.image, Math.max(options.imageBytes ?? 8 * MiB, 8 * MiB), work);
    await copyFile(options.image, image);
  } else {
    await syntheticImage(image, Math.max(options.imageBytes ?? 8 * MiB, 8 * MiB), work);
  }
  await mkdir(options.outDir, { recursive: true });
  const ctx: StageContext = {
    plan,
    cache: new Cache(join(work, 'cache')),
    log: silentLog,
    resources: new Resources(),
    workDir: work,
    options: { outDir: options.outDir, compress: options.compress ?? 'xz', xzLevel: 0, publishUrl: options.publishUrl, lockPath: DEFAULT_LOCK, updateLock: false },
    status: () => undefined,
    warn: () => undefined,
    onProgress: () => undefined,
  };
  const binaries: InstalledBinary[] = plan.simplexmq.binaries.map((b) => ({
    name: b.name,
    source: b.url ?? '',
    sha256: options.binarySha256?.[b.name] ?? createHash('sha256').update(b.name).digest('hex'),
    sha256Source: 'release-notes',
    reportedVersion: `${b.name === 'smp-server' ? 'SMP' : 'XFTP'} server v${version}.0`,
    installPath: b.installPath,
  }));
  // `work` is a scratch() directory: test/helpers/cleanup.ts removes it after the test file (unless
  // SIMPLEX_PI_KEEP_SCRATCH=1), so it is not removed here.
  const { outputs } = await emitStage(ctx, {
    work: { path: image, packagesKey: 'synthetic', fromLayer: false, baseMachineId: { kind: 'uninitialized', mode: 0o444 }, sourceDate: SYNTHETIC_DATE },
    base: options.base ?? RASPIOS_BASE,
    initFormat: { format: (options.initFormat ?? (options.base ?? RASPIOS_BASE).listedInitFormat ?? 'none') as InitFormat, reason: 'synthetic build' },
    binaries,
    seal: { packages: options.packages ?? PACKAGES, rootMiB: 1 },
    recipe: { path: `/synthetic/${options.name}.yaml`, sha256: '3'.repeat(64) },
    tool: { version: '0.1.0' },
  });
  return outputs;
}
