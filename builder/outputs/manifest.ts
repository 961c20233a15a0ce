import type { BaseImage } from '../base/types.ts';
import type { BuildPlan } from '../plan/plan.ts';

/**
 * What a build writes to its output directory besides the image: manifest.json's shape, and the records of what
 * the stages installed that it holds (here, not in the stages, so that readers of outputs need no stage).
 */

/** The manifest's file name in an output (and release) directory. */
export const MANIFEST_FILE = 'manifest.json';

/** A simplexmq binary as the binaries stage installed it. */
export interface InstalledBinary {
  name: string;
  source: string;
  sha256: string;
  /** Where the sha256 came from: the recipe, simplexmq.lock.json, or the release notes of the simplexmq release. */
  sha256Source: 'recipe' | 'lock' | 'release-notes';
  /** What `<binary> -v` printed inside the image. */
  reportedVersion: string;
  installPath: string;
}

/** A Debian package of the finished image, as seal reads it from dpkg. */
export interface InstalledPackage {
  name: string;
  version: string;
  architecture: string;
}

export interface OutputFile {
  name: string;
  size: number;
  sha256: string;
}

export interface Manifest {
  manifestVersion: 1;
  tool: { name: 'simplex-pi'; version: string; commit?: string };
  builtAt: string;
  recipe: { name: string; path: string; sha256: string };
  plan: BuildPlan;
  /** The base, with the Raspberry Pi Imager init_format the image was published with and why. */
  base: BaseImage & { initFormat: string; initFormatReason: string };
  packages: InstalledPackage[];
  simplexmq: { version: string; binaries: InstalledBinary[] };
  outputs: OutputFile[];
  stageSeconds: Record<string, number>;
}
