import type { StageContext } from '../pipeline/context.ts';

/** A verified base image in the cache, and where it came from (recorded in the manifest). */
export interface BaseImage {
  provider: 'raspios' | 'debian' | 'file';
  /** The uncompressed .img in the cache. Never modified: stages work on a copy. */
  path: string;
  /** sha256 of the uncompressed image. */
  sha256: string;
  /** For the packages layer key and the manifest: what the image is, in a few words. */
  description: string;
  url?: string;
  /** sha256 of the downloaded (compressed) file, when it differs from the image. */
  downloadSha256?: string;
  sourcePath?: string;
  releaseDate?: string;
  /**
   * The `init_format` Raspberry Pi Imager's repository lists for the base release (`systemd`, `cloudinit-rpi`, …);
   * undefined when nothing lists it (a pinned image, a local file, the Debian base). What is published is decided
   * in configure, with the image in hand (base/init-format.ts).
   */
  listedInitFormat?: string;
  suite?: string;
  builtAt?: string;
}

/**
 * What a base provider gets of the stage context: the base stage passes its own. Tests give only the first four;
 * without `status` and `onProgress` a provider reports nothing.
 */
export type BaseContext = Pick<StageContext, 'cache' | 'log' | 'resources' | 'workDir'> & Partial<Pick<StageContext, 'onProgress' | 'status'>>;
