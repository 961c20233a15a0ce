/**
 * What a simplexmq binary says about itself, read the same way by the build (stages/binaries.ts, in the image's
 * chroot) and by `simplex-pi update` on the Pi (device/update.ts): its version (`-v`) and its libraries (`ldd`).
 * Pure: no I/O, so the device bundle takes it as it is.
 */

/** The version in `SMP server v6.5.2.0 / 1a2b3c4`; the recipe's 6.5.2 matches 6.5.2 and 6.5.2.x. */
export function parseReportedVersion(output: string): string | undefined {
  return /\bv(\d+\.\d+\.\d+(?:\.\d+)?(?:-[0-9A-Za-z.]+)?)/.exec(output)?.[1];
}

/**
 * Whether the version a binary reports is the recipe's. Binaries report their cabal version: 6.5.2 reports
 * 6.5.2.0. A pre-release tag has no fixed cabal number (v6.5.0-beta.1 reports 6.5.0.1, v7.0.0-beta.2 reports
 * 7.0.0.3), so for one any X.Y.Z.n of its X.Y.Z matches; the binary is pinned by its sha256 in any case.
 */
export function versionMatches(reported: string, wanted: string): boolean {
  if (reported === wanted || reported.startsWith(`${wanted}.`)) return true;
  const preRelease = /^(\d+\.\d+\.\d+)-[0-9A-Za-z.]+$/.exec(wanted);
  return preRelease !== null && new RegExp(`^${preRelease[1]!.replaceAll('.', '\\.')}\\.\\d+$`).test(reported);
}

/** `ldd` lines for libraries the dynamic loader cannot find. */
export function missingLibraries(lddOutput: string): string[] {
  return lddOutput
    .split('\n')
    .filter((line) => /=>\s*not found/.test(line))
    .map((line) => line.trim().split(/\s+/)[0]!);
}

/** The numbers of a version (`6.5.2`, `6.5.2.1`, `7.0.0-beta.2`), and its pre-release tag if any. */
function versionParts(version: string): { numbers: number[]; pre?: string } {
  const match = /^(\d+(?:\.\d+)*)(?:-(.+))?$/.exec(version);
  if (!match) throw new Error(`not a simplexmq version: ${version}`);
  return { numbers: match[1]!.split('.').map(Number), ...(match[2] ? { pre: match[2] } : {}) };
}

/**
 * Negative when `a` is the older simplexmq release, positive when it is the newer, 0 for the same. A pre-release
 * comes before its release (`7.0.0-beta.2` < `7.0.0`); missing numbers count as 0 (`6.5.2` = `6.5.2.0`).
 */
export function compareVersions(a: string, b: string): number {
  const [x, y] = [versionParts(a), versionParts(b)];
  for (let i = 0; i < Math.max(x.numbers.length, y.numbers.length); i++) {
    const d = (x.numbers[i] ?? 0) - (y.numbers[i] ?? 0);
    if (d) return Math.sign(d);
  }
  if (x.pre === y.pre) return 0;
  if (!x.pre) return 1;
  if (!y.pre) return -1;
  return x.pre.localeCompare(y.pre, 'en', { numeric: true }) < 0 ? -1 : 1;
}
