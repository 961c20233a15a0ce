import type { Cache } from '../cache.ts';
import type { BuildLog } from '../log.ts';
import type { ProgressReporter } from '../progress.ts';
import type { Resources } from '../resources.ts';

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

export interface BaseContext {
  cache: Cache;
  log: BuildLog;
  resources: Resources;
  workDir: string;
  onProgress?: ProgressReporter;
  /** Shown in the progress line while a long step runs. */
  status?: (text: string) => void;
}
