import { readFile } from 'node:fs/promises';
import { execa } from 'execa';

/**
 * List the files of an initramfs the way initramfs-tools' `unmkinitramfs` splits it: zero or more uncompressed
 * cpio archives first (early microcode), then one compressed cpio archive that runs to the end of the file.
 * Read here in Node (newc/crc cpio is a simple format) with the host's decompressors, because `lsinitramfs`
 * comes with initramfs-tools-core, which pulls in udev: not something to install on a build host for a report.
 */

const COMPRESSORS: { name: string; magic: number[]; command: [string, ...string[]]; pkg: string }[] = [
  { name: 'gzip', magic: [0x1f, 0x8b], command: ['gzip', '-dc'], pkg: 'gzip' },
  { name: 'zstd', magic: [0x28, 0xb5, 0x2f, 0xfd], command: ['zstd', '-dcq'], pkg: 'zstd' },
  { name: 'xz', magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], command: ['xz', '-dc', '--single-stream'], pkg: 'xz-utils' },
  { name: 'lz4', magic: [0x02, 0x21, 0x4c, 0x18], command: ['lz4', '-dc'], pkg: 'lz4' },
  { name: 'lz4', magic: [0x04, 0x22, 0x4d, 0x18], command: ['lz4', '-dc'], pkg: 'lz4' },
  { name: 'bzip2', magic: [0x42, 0x5a, 0x68], command: ['bzip2', '-dc'], pkg: 'bzip2' },
  { name: 'lzop', magic: [0x89, 0x4c, 0x5a, 0x4f], command: ['lzop', '-dc'], pkg: 'lzop' },
  { name: 'lzma', magic: [0x5d, 0x00, 0x00], command: ['xz', '-dc', '--format=lzma'], pkg: 'xz-utils' },
];

const HEADER = 110;
const TRAILER = 'TRAILER!!!';

const align4 = (n: number) => (n + 3) & ~3;

function isCpioAt(buf: Buffer, pos: number): boolean {
  const magic = buf.toString('latin1', pos, pos + 6);
  return magic === '070701' || magic === '070702';
}

/** Parse one newc/crc cpio archive starting at `pos`; returns its names and where it ends (after the trailer). */
export function readCpio(buf: Buffer, pos: number): { names: string[]; end: number } {
  const names: string[] = [];
  let at = pos;
  for (;;) {
    if (at + HEADER > buf.length) throw new Error(`cpio archive cut off at byte ${at}`);
    if (!isCpioAt(buf, at)) throw new Error(`not a cpio (newc) header at byte ${at}`);
    const hex = (offset: number) => parseInt(buf.toString('latin1', at + offset, at + offset + 8), 16);
    const fileSize = hex(54);
    const nameSize = hex(94);
    if (!Number.isFinite(fileSize) || !Number.isFinite(nameSize) || nameSize < 1) throw new Error(`corrupt cpio header at byte ${at}`);
    const name = buf.toString('utf8', at + HEADER, at + HEADER + nameSize - 1);
    at = align4(at + HEADER + nameSize);
    at = align4(at + fileSize);
    if (name === TRAILER) return { names, end: at };
    names.push(name.replace(/^\.\//, ''));
  }
}

function skipZeros(buf: Buffer, pos: number): number {
  while (pos < buf.length && buf[pos] === 0) pos++;
  return pos;
}

function compressorAt(buf: Buffer, pos: number) {
  return COMPRESSORS.find((c) => c.magic.every((byte, i) => buf[pos + i] === byte));
}

async function decompress(data: Buffer, compressor: (typeof COMPRESSORS)[number]): Promise<Buffer> {
  const [file, ...args] = compressor.command;
  const result = await execa(file, args, { input: data, encoding: 'buffer', reject: false, maxBuffer: 4 * 1024 ** 3, stripFinalNewline: false });
  const out = Buffer.from(result.stdout as Uint8Array);
  if (result.exitCode === undefined && !out.length) {
    throw new Error(`${file} is not installed (apt-get install ${compressor.pkg}); needed to read a ${compressor.name}-compressed initramfs`);
  }
  // Trailing padding after the compressed stream makes some tools complain (gzip: "trailing garbage ignored")
  // although the archive came out whole; only no output at all is a failure.
  if (!out.length) throw new Error(`${file} could not decompress it: ${Buffer.from(result.stderr as Uint8Array).toString().trim()}`);
  return out;
}

export interface InitramfsListing {
  segments: string[];
  names: string[];
}

export async function listInitramfsBuffer(buf: Buffer): Promise<InitramfsListing> {
  const segments: string[] = [];
  const names: string[] = [];
  let pos = skipZeros(buf, 0);
  while (pos < buf.length) {
    if (isCpioAt(buf, pos)) {
      const archive = readCpio(buf, pos);
      segments.push('none');
      names.push(...archive.names);
      pos = skipZeros(buf, archive.end);
      continue;
    }
    const compressor = compressorAt(buf, pos);
    if (!compressor) throw new Error(`unknown data at byte ${pos} (neither cpio nor a known compression)`);
    segments.push(compressor.name);
    const inner = await decompress(buf.subarray(pos), compressor);
    let at = skipZeros(inner, 0);
    while (at < inner.length && isCpioAt(inner, at)) {
      const archive = readCpio(inner, at);
      names.push(...archive.names);
      at = skipZeros(inner, archive.end);
    }
    break;
  }
  return { segments, names };
}

export async function listInitramfs(path: string): Promise<InitramfsListing> {
  return listInitramfsBuffer(await readFile(path));
}

/** Files of an initramfs that grow a partition or filesystem, or re-key the disk id: what first-boot resizing needs. */
export function resizeFiles(names: string[]): string[] {
  return names.filter((name) => {
    const base = name.split('/').pop() ?? '';
    if (name.startsWith('lib/modules/') || name.startsWith('usr/lib/modules/')) return false;
    return /resize|partuuid|growroot|growpart/i.test(base) || ['parted', 'sfdisk', 'partprobe', 'resize2fs'].includes(base);
  });
}
