import type { BaseImage } from '../base/types.ts';
import type { BuildPlan } from '../plan/plan.ts';
import type { InstalledBinary } from '../stages/binaries.ts';
import type { InstalledPackage } from '../stages/seal.ts';

export interface OutputFile {
  name: string;
  size: number;
  sha256: string;
}

export interface Manifest {
  manifestVersion: 1;
  tool: { name: 'simplex-pi'; version: string; commit?: string };
  builtAt: string;
  recipe: { name: string; path: string; sha256: string };
  plan: BuildPlan;
  /** The base, with the Raspberry Pi Imager init_format the image was published with and why. */
  base: BaseImage & { initFormat: string; initFormatReason: string };
  packages: InstalledPackage[];
  simplexmq: { version: string; binaries: InstalledBinary[] };
  outputs: OutputFile[];
  stageSeconds: Record<string, number>;
}

/** `sha256sum -c` format: two spaces between hash and name. */
export function sha256sums(files: readonly OutputFile[]): string {
  return files.map((f) => `${f.sha256}  ${f.name}\n`).join('');
}
