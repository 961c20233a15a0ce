import { createHash } from 'node:crypto';
import { UserError } from '../errors.ts';
import { isAarch64, parseElf } from '../image/elf.ts';
import { parseJsonAs } from '../parse-json.ts';
import { type PublicKey, keyIdHex, parseSignature, verifySignature } from '../signing/minisign.ts';
import { untarFiles } from '../tar-files.ts';
import { type UpdateBinaryName, type UpdateManifest, UPDATE_MANIFEST_MEMBER, updateManifestSchema } from './format.ts';

export interface OpenedBundle {
  manifest: UpdateManifest;
  /** The minisign trusted comment (the file name and the time it was signed). */
  trustedComment: string;
  binaries: Map<UpdateBinaryName, Buffer>;
}

const NOTHING = 'nothing was changed';

/**
 * Open a relay update bundle on the Pi, trusting nothing in it until it is proven: first the minisign signature
 * over the whole file with the image's update key (so a forged or damaged bundle is refused before its tar is even
 * parsed), then the manifest, then each binary's size, sha256 and ELF machine. Every refusal says that nothing
 * was changed: this runs before anything is installed.
 */
export async function openUpdateBundle(bytes: Uint8Array, signature: Uint8Array | string, key: PublicKey, source: string): Promise<OpenedBundle> {
  const signatureName = `${source}.minisig`;
  let trustedComment: string;
  try {
    ({ trustedComment } = verifySignature(key, parseSignature(signature, signatureName), { bytes }, { file: source, signature: signatureName }));
  } catch (error) {
    throw new UserError(`${(error as Error).message}; the bundle is not from the holder of the update key ${keyIdHex(key.keyId)}, or it was damaged: ${NOTHING}`);
  }
  return readSigned(bytes, source, trustedComment);
}

async function readSigned(bytes: Uint8Array, source: string, trustedComment: string): Promise<OpenedBundle> {
  const files = await untarFiles(bytes, source, 'a simplex-pi relay update bundle');
  const manifestFile = files.find((f) => f.name === UPDATE_MANIFEST_MEMBER);
  if (!manifestFile) throw new UserError(`${source}: has no ${UPDATE_MANIFEST_MEMBER}: not a simplex-pi relay update bundle; ${NOTHING}`);
  const manifest = parseJsonAs(updateManifestSchema, manifestFile.content.toString('utf8'), `${source}: ${UPDATE_MANIFEST_MEMBER}`, {
    notJson: `is not JSON: ${NOTHING}`,
    invalid: `is not a relay update manifest this simplex-pi reads (${NOTHING})`,
  });
  const extra = files.filter((f) => f.name !== UPDATE_MANIFEST_MEMBER && !manifest.binaries.some((b) => b.member === f.name));
  if (extra.length) throw new UserError(`${source}: holds ${extra.map((f) => f.name).join(', ')}, which its manifest does not list; ${NOTHING}`);
  const binaries = new Map<UpdateBinaryName, Buffer>();
  for (const binary of manifest.binaries) {
    const file = files.find((f) => f.name === binary.member);
    if (!file) throw new UserError(`${source}: its manifest lists ${binary.member}, which it does not hold; ${NOTHING}`);
    const sha256 = createHash('sha256').update(file.content).digest('hex');
    if (file.content.length !== binary.bytes || sha256 !== binary.sha256) {
      throw new UserError(`${source}: ${binary.member} has sha256 ${sha256} (${file.content.length} bytes), but its manifest says ${binary.sha256} (${binary.bytes} bytes); ${NOTHING}`);
    }
    const elf = parseElf(file.content);
    if (!isAarch64(elf)) {
      throw new UserError(`${source}: ${binary.member} is ${elf ? `built for ${elf.machineName}` : 'not an ELF executable'}, not aarch64; ${NOTHING}`);
    }
    binaries.set(binary.name, file.content);
  }
  return { manifest, trustedComment, binaries };
}
