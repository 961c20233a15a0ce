import { createHash } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tarMembers } from '../device/encrypt.ts';
import { UserError } from '../errors.ts';
import { isAarch64, parseElf } from '../image/elf.ts';
import { hiddenTemporary } from '../temporary-names.ts';
import { type UpdateBinaryName, type UpdateManifest, UPDATE_FORMAT, UPDATE_FORMAT_VERSION, UPDATE_MANIFEST_MEMBER, binaryMember, updateBundleName } from './format.ts';

export interface BundleInput {
  /** The simplexmq release the binaries are (each was run with `-v` in an image by the build that verified it). */
  version: string;
  binaries: Record<UpdateBinaryName, string>;
  outDir: string;
  /** The bundle's time (the manifest's createdAt, every member's mtime): the release's, so the tar is the same each time. */
  createdAt: Date;
}

/**
 * Write the relay update bundle (update/format.ts) for verified binaries: each must be an aarch64 ELF. The file
 * appears whole or not at all; the release signs it afterwards like every other release file.
 */
export async function writeUpdateBundle(input: BundleInput): Promise<{ path: string; manifest: UpdateManifest }> {
  const members = [];
  const binaries: UpdateManifest['binaries'] = [];
  for (const name of Object.keys(input.binaries).sort() as UpdateBinaryName[]) {
    const content = await readFile(input.binaries[name]);
    const elf = parseElf(content);
    if (!isAarch64(elf)) {
      throw new UserError(`${name} (${input.binaries[name]}) is ${elf ? `built for ${elf.machineName}` : 'not an ELF executable'}, not aarch64: no update bundle was written`);
    }
    binaries.push({ name, member: binaryMember(name), sha256: createHash('sha256').update(content).digest('hex'), bytes: content.length });
    members.push({ name: binaryMember(name), mode: 0o755, content });
  }
  const manifest: UpdateManifest = { format: UPDATE_FORMAT, formatVersion: UPDATE_FORMAT_VERSION, simplexmq: input.version, createdAt: input.createdAt.toISOString(), binaries };
  const tar = await tarMembers([{ name: UPDATE_MANIFEST_MEMBER, mode: 0o644, content: Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`) }, ...members], input.createdAt);
  const path = join(input.outDir, updateBundleName(input.version));
  const temporary = hiddenTemporary(path);
  try {
    await writeFile(temporary, tar);
    await rename(temporary, path);
  } finally {
    await rm(temporary, { force: true });
  }
  return { path, manifest };
}
