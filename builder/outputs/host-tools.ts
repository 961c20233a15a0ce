import { run } from '../exec.ts';
import type { BuildLog } from '../log.ts';

/**
 * The host programs that write the image's bytes, with their versions as they state them: the same inputs give
 * the same image only with the same versions of these (README "Reproducible images"). Recorded in the manifest,
 * compared by `rebuild-check`.
 */
const TOOLS: ReadonlyArray<{ name: string; file: string; args: string[]; pattern: RegExp }> = [
  { name: 'e2fsprogs', file: 'mke2fs', args: ['-V'], pattern: /mke2fs (\S+)/ },
  { name: 'dosfstools', file: 'mkfs.vfat', args: ['--help'], pattern: /mkfs\.fat (\S+)/ },
  { name: 'mtools', file: 'mtools', args: ['--version'], pattern: /mtools\)? (\d\S*)/ },
  { name: 'xz', file: 'xz', args: ['--version'], pattern: /xz \(XZ Utils\) (\S+)/ },
];

export async function imageToolVersions(log?: BuildLog): Promise<Record<string, string>> {
  const versions: Record<string, string> = {};
  for (const tool of TOOLS) {
    const result = await run(tool.file, tool.args, { log, allowFailure: true });
    versions[tool.name] = tool.pattern.exec(`${result.stdout}\n${result.stderr}`)?.[1] ?? 'unknown';
  }
  return versions;
}
