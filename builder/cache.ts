import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * The content-addressed cache. Every entry is written under a temporary name and renamed into place once
 * complete and verified, so a present entry is always a whole one.
 */
export class Cache {
  constructor(readonly root: string) {}

  static defaultRoot(env: NodeJS.ProcessEnv = process.env): string {
    if (env.SIMPLEX_PI_CACHE) return env.SIMPLEX_PI_CACHE;
    return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'simplex-pi');
  }

  get downloadsDir(): string {
    return join(this.root, 'downloads');
  }

  get basesDir(): string {
    return join(this.root, 'bases');
  }

  get layersDir(): string {
    return join(this.root, 'layers');
  }

  /** Verified downloads, named by their sha256. */
  download(sha256: string): string {
    return join(this.downloadsDir, sha256);
  }

  /** Interrupted downloads, named by a hash of their URL, resumed with an HTTP Range request. */
  partialDownload(urlHash: string): string {
    return join(this.downloadsDir, `${urlHash}.partial`);
  }

  /** Decompressed, verified base images. */
  base(key: string): string {
    return join(this.basesDir, `${key}.img`);
  }

  /** Image layers: the image after a stage, keyed by the hash of everything that stage's result depends on. */
  layer(stage: string, key: string): string {
    return join(this.layersDir, `${stage}-${key}.img`);
  }

  /** Compressed chunks of recent images, by the sha256 of their bytes (outputs/xz-chunks.ts). */
  get xzChunksDir(): string {
    return join(this.root, 'xz-chunks');
  }

  /** Per-build scratch space: work image, mount points. Removed when the build ends. */
  get workRoot(): string {
    return join(this.root, 'work');
  }

  get logs(): string {
    return join(this.root, 'logs');
  }

  async ensure(...dirs: string[]): Promise<void> {
    for (const dir of dirs) await mkdir(dir, { recursive: true });
  }
}

export function partialPath(path: string): string {
  return `${path}.partial-${process.pid}`;
}
