import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkHostHandlesRoot, ext4Target, hostExt4, readFeatures, unsupportedFeaturesProblem } from '../../builder/image/ext4.ts';
import { readBaseMachineId } from '../../builder/image/machine-id.ts';
import { raspberryPiLayout, readPartitionTable } from '../../builder/image/partitions.ts';
import { scratch } from '../helpers/env.ts';

// What prepare reads from the base image with the host's real e2fsprogs (dumpe2fs, debugfs), in place: no loop
// device, no mount, no root. The base is made here as pi-gen makes Raspberry Pi OS Trixie's root filesystem:
// trixie's mke2fs defaults (orphan_file, metadata_csum_seed) minus huge_file, and machine-id "uninitialized".

const ROOT_START = 24576;

async function trixieLikeImage(dir: string, machineId: string | undefined): Promise<string> {
  const tree = join(dir, `tree-${machineId ?? 'none'}`);
  await mkdir(join(tree, 'etc'), { recursive: true });
  if (machineId !== undefined) {
    await writeFile(join(tree, 'etc/machine-id'), machineId);
    await chmod(join(tree, 'etc/machine-id'), 0o444);
  }
  const image = join(dir, `base-${machineId ?? 'none'}.img`);
  await execa('truncate', ['-s', '80M', image]);
  await execa('sfdisk', ['--quiet', image], { input: `label: dos\nunit: sectors\nstart=8192, size=16384, type=c\nstart=${ROOT_START}, type=83\n` });
  await execa('mke2fs', ['-q', '-t', 'ext4', '-L', 'rootfs', '-O', 'orphan_file,metadata_csum_seed,^huge_file', '-d', tree, '-E', `offset=${ROOT_START * 512}`, image, '40M']);
  return image;
}

async function rootOf(image: string): Promise<string> {
  return ext4Target(image, raspberryPiLayout(await readPartitionTable(image), image).root);
}

describe("the base's root filesystem, read in place with the host's e2fsprogs", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await scratch('basefs');
  });

  it('reads machine-id "uninitialized" (Raspberry Pi OS), an empty one (Debian base) and none', async () => {
    expect(await readBaseMachineId(await rootOf(await trixieLikeImage(dir, 'uninitialized\n')))).toEqual({ kind: 'uninitialized', mode: 0o444 });
    expect(await readBaseMachineId(await rootOf(await trixieLikeImage(dir, '')))).toEqual({ kind: 'empty', mode: 0o444 });
    expect(await readBaseMachineId(await rootOf(await trixieLikeImage(dir, undefined)))).toEqual({ kind: 'absent' });
  });

  it("reads the features, and this host's e2fsprogs (1.47) handles Trixie's", async () => {
    const root = await rootOf(await trixieLikeImage(dir, 'uninitialized\n'));
    expect(await readFeatures(root)).toEqual(expect.arrayContaining(['orphan_file', 'metadata_csum_seed', 'metadata_csum']));
    await expect(checkHostHandlesRoot(root)).resolves.toBeUndefined();
  });

  it('refuses, saying what to install, when the host\'s e2fsprogs lacks a feature the base uses (a host like Ubuntu 22.04)', async () => {
    const root = await rootOf(await trixieLikeImage(dir, 'uninitialized\n'));
    const real = await hostExt4();
    // e2fsprogs 1.46.5 knows neither orphan_file nor orphan_present; everything else it has.
    const older = { version: '1.46.5', supported: new Set([...real.supported].filter((f) => !f.startsWith('orphan_'))) };
    await expect(checkHostHandlesRoot(root, { host: older })).rejects.toThrow(
      /the base image's root filesystem uses ext4 features this machine's e2fsprogs 1\.46\.5 does not support: orphan_file \(e2fsprogs 1\.47\.0 or newer\)\. .*Install e2fsprogs 1\.47 or newer/,
    );
  });

  it('names a feature an older dumpe2fs does not even know by its flag (orphan_file is printed as FEATURE_C12)', async () => {
    const { supported } = await hostExt4();
    const problem = unsupportedFeaturesProblem(['has_journal', 'FEATURE_C12', 'metadata_csum'], { version: '1.46.5', supported });
    expect(problem).toMatch(/does not support: orphan_file \(e2fsprogs 1\.47\.0 or newer\)\./);
  });
});
