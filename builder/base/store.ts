import { readFile, rm, writeFile } from 'node:fs/promises';
import { exists } from '../exists.ts';
import { sha256File } from '../hash.ts';
import type { BuildLog } from '../log.ts';

/**
 * Base images in the cache sit beside a small JSON record of their sha256 and origin. An entry is used only if
 * the image still hashes to the recorded value; otherwise it is removed and made again.
 */
export interface StoredBase<M> {
  path: string;
  sha256: string;
  meta: M;
}

function metaPath(image: string): string {
  return image.replace(/\.img$/, '.json');
}

export async function loadStoredBase<M>(image: string, log: BuildLog, expectedSha256?: string): Promise<StoredBase<M> | undefined> {
  if (!(await exists(image)) || !(await exists(metaPath(image)))) return undefined;
  const record = JSON.parse(await readFile(metaPath(image), 'utf8')) as { sha256: string; meta: M };
  const actual = await sha256File(image);
  if (actual !== record.sha256 || (expectedSha256 && actual !== expectedSha256)) {
    log.info(`cached base ${image} hashes to ${actual}, not ${expectedSha256 ?? record.sha256}; making it again`);
    await rm(image, { force: true });
    await rm(metaPath(image), { force: true });
    return undefined;
  }
  log.info(`cache hit: base image ${image}`);
  return { path: image, sha256: actual, meta: record.meta };
}

export async function saveStoredBaseRecord<M>(image: string, sha256: string, meta: M): Promise<void> {
  await writeFile(metaPath(image), `${JSON.stringify({ sha256, meta }, null, 2)}\n`);
}
