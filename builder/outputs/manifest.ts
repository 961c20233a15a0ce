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

/**
 * How the image was made, beyond the recipe: what `rebuild-check` builds again with, and what it compares when the
 * result differs. Nothing here names this machine's paths or the build's clock, so two builds of the same inputs
 * write the same manifest.
 */
export interface BuildRecord {
  compress: 'xz' | 'none';
  xzLevel: number;
  /** The size of the independent xz streams the .img.xz is made of (outputs/xz-chunks.ts). */
  chunkBytes: number;
  publishUrl?: string;
  /** The cache key of the packages layer the image was made from (the image after apt, stages/prepare.ts). */
  packagesLayer: string;
  /** The versions of the host programs that write the image's bytes: another version may write other bytes. */
  hostTools: Record<string, string>;
}

export interface Manifest {
  manifestVersion: 2;
  tool: { name: 'simplex-pi'; version: string; commit?: string };
  /** The image's one date (image/source-date-epoch.ts): every file time in it is at most this. */
  sourceDate: { epoch: number; iso: string; from: string };
  /** `path` relative to the simplex-pi checkout when the recipe is in it (the presets), else as given. */
  recipe: { name: string; path: string; sha256: string };
  plan: BuildPlan;
  /** The base (without its place in this machine's cache), with the Imager init_format the image was published with and why. */
  base: Omit<BaseImage, 'path'> & { initFormat: string; initFormatReason: string };
  packages: InstalledPackage[];
  simplexmq: { version: string; binaries: InstalledBinary[] };
  build: BuildRecord;
  /**
   * The files of the build, as SHA256SUMS lists them. Not the Imager files that point at this output directory
   * (`file://` URLs: the double-click manifest always, the repository JSON without --publish-url): they would
   * differ between two directories, and they repeat the sizes and hashes listed here.
   */
  outputs: OutputFile[];
}
