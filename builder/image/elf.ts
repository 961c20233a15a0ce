import { open } from 'node:fs/promises';

export const EM_AARCH64 = 183;
const EM_NAMES: Record<number, string> = { 3: 'x86 (i386)', 40: 'arm (32-bit)', 62: 'x86-64', 183: 'aarch64', 243: 'riscv' };

export interface ElfInfo {
  class: 32 | 64;
  machine: number;
  machineName: string;
  /** Has a PT_INTERP program header: dynamically linked, so its shared libraries must resolve in the image. */
  dynamic: boolean;
}

/** Read an ELF header and program headers; undefined when the bytes are not ELF (a script, an HTML error page). */
export function parseElf(bytes: Buffer): ElfInfo | undefined {
  if (bytes.length < 64 || bytes.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const elfClass = bytes[4] === 2 ? 64 : bytes[4] === 1 ? 32 : undefined;
  const little = bytes[5] === 1;
  if (!elfClass) return undefined;
  const u16 = (o: number) => (little ? bytes.readUInt16LE(o) : bytes.readUInt16BE(o));
  const u32 = (o: number) => (little ? bytes.readUInt32LE(o) : bytes.readUInt32BE(o));
  const u64 = (o: number) => Number(little ? bytes.readBigUInt64LE(o) : bytes.readBigUInt64BE(o));
  const machine = u16(18);
  const phoff = elfClass === 64 ? u64(32) : u32(28);
  const phentsize = u16(elfClass === 64 ? 54 : 42);
  const phnum = u16(elfClass === 64 ? 56 : 44);
  let dynamic = false;
  for (let i = 0; i < phnum; i++) {
    const offset = phoff + i * phentsize;
    if (offset + 4 > bytes.length) break;
    if (u32(offset) === 3 /* PT_INTERP */) dynamic = true;
  }
  return { class: elfClass, machine, machineName: EM_NAMES[machine] ?? `machine ${machine}`, dynamic };
}

/** A 64-bit aarch64 executable: what the Pi runs (the build's binaries stage and relay update bundles both insist on it). */
export function isAarch64(elf: ElfInfo | undefined): boolean {
  return elf?.machine === EM_AARCH64 && elf.class === 64;
}

export async function readElf(path: string): Promise<ElfInfo | undefined> {
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(64 * 1024);
    const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
    return parseElf(buffer.subarray(0, bytesRead));
  } finally {
    await file.close();
  }
}
