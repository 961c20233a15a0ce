import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
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
  /** The sha256 of each simplexmq binary the build "verified" (random when not given). */
  binarySha256?: Partial<Record<string, string>>;
  /** Size of the synthetic image; some random bytes and the rest zeros, like a real sealed image. */
  imageBytes?: number;
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
  const size = options.imageBytes ?? 4 * 1024 * 1024;
  await writeFile(image, Buffer.concat([randomBytes(64 * 1024), Buffer.alloc(size - 64 * 1024)]));
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
    sha256: options.binarySha256?.[b.name] ?? randomBytes(32).toString('hex'),
    sha256Source: 'release-notes',
    reportedVersion: `${b.name === 'smp-server' ? 'SMP' : 'XFTP'} server v${version}.0`,
    installPath: b.installPath,
  }));
  // `work` is a scratch() directory: test/helpers/cleanup.ts removes it after the test file (unless
  // SIMPLEX_PI_KEEP_SCRATCH=1), so it is not removed here.
  const { outputs } = await emitStage(ctx, {
    work: { path: image, packagesKey: 'synthetic', fromLayer: false, baseMachineId: { kind: 'uninitialized', mode: 0o444 } },
    base: options.base ?? RASPIOS_BASE,
    initFormat: { format: (options.initFormat ?? (options.base ?? RASPIOS_BASE).listedInitFormat ?? 'none') as InitFormat, reason: 'synthetic build' },
    binaries,
    seal: { packages: options.packages ?? PACKAGES, rootMiB: 1 },
    recipe: { path: join(work, `${options.name}.yaml`), sha256: '3'.repeat(64) },
    tool: { version: '0.1.0' },
    stageSeconds: {},
  });
  return outputs;
}
