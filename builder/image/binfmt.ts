import { readFile, stat } from 'node:fs/promises';

export const BINFMT_DIR = '/proc/sys/fs/binfmt_misc';
export const BINFMT_AARCH64 = `${BINFMT_DIR}/qemu-aarch64`;

export interface BinfmtEntry {
  enabled: boolean;
  interpreter?: string;
  flags: string;
}

export function parseBinfmtEntry(text: string): BinfmtEntry {
  const lines = text.split('\n');
  return {
    enabled: lines[0]?.trim() === 'enabled',
    interpreter: lines.find((l) => l.startsWith('interpreter '))?.slice('interpreter '.length).trim(),
    flags: lines.find((l) => l.startsWith('flags:'))?.slice('flags:'.length).trim() ?? '',
  };
}

/**
 * Why arm64 programs cannot run in a chroot on this host, with the command that fixes it; undefined when they
 * can. The F flag matters: it makes the kernel open qemu at registration, so nothing is copied into the image.
 */
export async function binfmtProblem(arch: string = process.arch): Promise<string | undefined> {
  // An arm64 build host runs the image's programs natively.
  if (arch === 'arm64') return undefined;
  const setup = 'run `sudo ci/setup-host.sh`, which installs qemu-user-static and binfmt-support and registers it';
  try {
    await stat(`${BINFMT_DIR}/status`);
  } catch {
    return `binfmt_misc is not mounted: \`mount -t binfmt_misc binfmt_misc ${BINFMT_DIR}\`, or ${setup}`;
  }
  let text: string;
  try {
    text = await readFile(BINFMT_AARCH64, 'utf8');
  } catch {
    return `no qemu-aarch64 binfmt entry, so arm64 programs cannot run in the image's chroot: ${setup} (or \`update-binfmts --enable qemu-aarch64\`)`;
  }
  const entry = parseBinfmtEntry(text);
  if (!entry.enabled) return `the qemu-aarch64 binfmt entry is disabled: \`update-binfmts --enable qemu-aarch64\``;
  if (!entry.flags.includes('F')) {
    return `the qemu-aarch64 binfmt entry lacks the F (fix binary) flag (flags: "${entry.flags}"), so qemu would have to be copied into the image: install Debian's qemu-user-static, which registers it with flags PF`;
  }
  if (entry.interpreter) {
    try {
      await stat(entry.interpreter);
    } catch {
      return `the qemu-aarch64 binfmt interpreter ${entry.interpreter} is missing: reinstall qemu-user-static`;
    }
  }
  return undefined;
}
