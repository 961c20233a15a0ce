import { cp, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLOUD_CFG, CLOUD_CFG_D, CLOUD_INIT, SIMPLEX_PI_CLOUD_CFG, skipCloudInitPackageStep } from '../../builder/image/cloud-init.ts';
import { REPO, scratch } from '../helpers/env.ts';
import { debianPackage } from '../helpers/debian-packages.ts';

// cloud-init's package step under tor-only: what our snippet does to the configuration cloud-init itself reads.
// The configuration is merged by the real cloud-init of Debian trixie (its Python package, run with this host's
// Python 3), from the look-alike base's cloud.cfg (Raspberry Pi OS Trixie's, tests/fixtures/raspios-lookalike).

const LOOKALIKE = join(REPO, 'test/fixtures/raspios-lookalike');
let cloudInitPython: string;

beforeAll(async () => {
  cloudInitPython = join((await debianPackage('cloud-init')).dir, 'usr/lib/python3/dist-packages');
}, 120_000);

/** cloud-init's own util.read_conf_with_confd on the image's /etc/cloud/cloud.cfg. */
async function asCloudInitReadsIt(root: string): Promise<Record<string, unknown>> {
  const { stdout } = await execa(
    'python3',
    ['-c', 'import json, sys\nfrom cloudinit import util\nprint(json.dumps(util.read_conf_with_confd(sys.argv[1])))', join(root, CLOUD_CFG)],
    { env: { PYTHONPATH: cloudInitPython } },
  );
  return JSON.parse(stdout);
}

async function imageWithCloudInit(cloudCfg?: (text: string) => string): Promise<string> {
  const root = await scratch('cloud-init');
  await mkdir(join(root, CLOUD_CFG_D), { recursive: true });
  const cfg = await readFile(join(LOOKALIKE, 'rootfs/etc/cloud/cloud.cfg'), 'utf8');
  await writeFile(join(root, CLOUD_CFG), cloudCfg ? cloudCfg(cfg) : cfg);
  await cp(join(LOOKALIKE, 'packages/rpi-cloud-init-mods/etc/cloud/cloud.cfg.d/99_raspberry-pi.cfg'), join(root, CLOUD_CFG_D, '99_raspberry-pi.cfg'));
  await mkdir(dirname(join(root, CLOUD_INIT)), { recursive: true });
  await writeFile(join(root, CLOUD_INIT), '#!/bin/sh\n', { mode: 0o755 });
  return root;
}

describe("cloud-init's package step (Imager's packages: [avahi-daemon]) is left out, nothing else", () => {
  it("cloud-init's own merge gives the base's final stage without package_update_upgrade_install, in order", async () => {
    const root = await imageWithCloudInit();
    const before = (await asCloudInitReadsIt(root)).cloud_final_modules as string[];
    expect(before).toContain('package_update_upgrade_install');
    expect(await skipCloudInitPackageStep(root)).toEqual([]);
    const merged = await asCloudInitReadsIt(root);
    expect(merged.cloud_final_modules).toEqual(before.filter((m) => m !== 'package_update_upgrade_install'));
    // The rest of Raspberry Pi OS's configuration is untouched: NoCloud on the boot partition, its default user.
    expect(merged.datasource).toEqual({ NoCloud: { seedfrom: 'file:///boot/firmware/' } });
    expect(await readFile(join(root, SIMPLEX_PI_CLOUD_CFG), 'utf8')).toMatch(/^# Written by simplex-pi[^]*Raspberry Pi Imager asks cloud-init to install avahi-daemon/);
  });

  it("keeps modules the look-alike does not have (upstream's raspberry-pi-os list) and entries with a frequency", async () => {
    const root = await imageWithCloudInit((text) => text.replace('  - write_files_deferred\n', '  - write_files_deferred\n  - puppet\n  - ansible\n  - [scripts_user, always]\n'));
    const before = (await asCloudInitReadsIt(root)).cloud_final_modules as unknown[];
    await skipCloudInitPackageStep(root);
    const after = (await asCloudInitReadsIt(root)).cloud_final_modules as unknown[];
    expect(after).toEqual(before.filter((m) => m !== 'package_update_upgrade_install'));
    expect(after).toEqual(expect.arrayContaining(['puppet', 'ansible', ['scripts_user', 'always']]));
  });

  it('writes nothing into an image without cloud-init (the Debian base)', async () => {
    const root = await scratch('no-cloud-init');
    expect(await skipCloudInitPackageStep(root)).toEqual([]);
    expect(await readdir(root)).toEqual([]);
  });

  it('says so when a base snippet that sorts later would win over ours', async () => {
    const root = await imageWithCloudInit();
    await writeFile(join(root, CLOUD_CFG_D, 'zz-site.cfg'), 'cloud_final_modules:\n  - package_update_upgrade_install\n  - final_message\n');
    expect(await skipCloudInitPackageStep(root)).toEqual([expect.stringMatching(/sorts after \/etc\/cloud\/cloud\.cfg\.d\/99_simplex-pi\.cfg .* package step still runs/)]);
    expect((await asCloudInitReadsIt(root)).cloud_final_modules).toContain('package_update_upgrade_install');
  });
});
