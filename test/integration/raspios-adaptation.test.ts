import { cp, lstat, mkdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { debianBase } from '../../builder/base/debian.ts';
import { detectInitFormat } from '../../builder/base/init-format.ts';
import { Cache } from '../../builder/cache.ts';
import { chrootRun } from '../../builder/image/chroot.ts';
import { type MountedImage, mountImage } from '../../builder/image/mount-image.ts';
import { RENAME_USER_SSHD, disarmRenameWizard, renameWizardArmed } from '../../builder/image/userconf.ts';
import { checkTimezone } from '../../builder/image/zoneinfo.ts';
import { silentLog } from '../../builder/log.ts';
import { baseSchema } from '../../builder/recipe/schema.ts';
import { Resources } from '../../builder/resources.ts';
import { debianPackage } from '../helpers/debian-packages.ts';
import { REPO, TEST_CACHE, isRoot, scratch } from '../helpers/env.ts';

// What configure does to a Raspberry Pi OS base, run on a real arm64 Debian root (the Debian base from the test
// cache, mounted and chrooted as a build does) with userconf-pi's stand-in from the look-alike's packages: the
// image's own systemctl and /bin/sh under qemu-user, the image's own tzdata.

const USERCONF = join(REPO, 'test/fixtures/raspios-lookalike/packages/userconf-pi');

describe.runIf(isRoot)('configure on a Raspberry Pi OS-shaped root, in the arm64 chroot of a real Debian image', () => {
  const resources = new Resources();
  let mounted: MountedImage;
  let root: string;

  beforeAll(async () => {
    const cache = new Cache(TEST_CACHE);
    const work = await scratch('adapt');
    const base = await debianBase(baseSchema.parse({ provider: 'debian' }) as Parameters<typeof debianBase>[0], { cache, log: silentLog, resources, workDir: join(work, 'base') });
    const image = join(work, 'work.img');
    await execa('cp', ['--sparse=always', base.path, image]);
    mounted = await mountImage(image, join(work, 'root'), resources, silentLog);
    root = mounted.root;
  }, 40 * 60 * 1000);
  afterAll(() => resources.releaseAll());

  it("disarms userconf-pi's first-user wizard as pi-gen leaves it armed: userconfig off, the console's getty back, rename_user.conf gone", { timeout: 5 * 60 * 1000 }, async () => {
    await cp(join(USERCONF, 'usr'), join(root, 'usr'), { recursive: true });
    // pi-gen export-image/01-user-rename: `rename-user -f -s` (the stand-in does what userconf-pi's does to units).
    const arm = await chrootRun(root, ['/usr/bin/rename-user', '-f', '-s'], { allowFailure: true });
    expect(arm.exitCode, `${arm.stdout}${arm.stderr}`).toBe(0);
    const getty = join(root, 'etc/systemd/system/getty.target.wants/getty@tty1.service');
    expect(await renameWizardArmed(root)).toBe(true);
    await expect(lstat(getty)).rejects.toThrow(/ENOENT/);

    const systemctl = (args: string[]) => chrootRun(root, ['systemctl', ...args]);
    expect(await disarmRenameWizard(root, systemctl)).toBe(true);

    expect(await renameWizardArmed(root)).toBe(false);
    expect(await readlink(getty)).toMatch(/\/getty@\.service$/);
    await expect(lstat(join(root, RENAME_USER_SSHD))).rejects.toThrow(/ENOENT/);
    // Nothing to do the second time.
    expect(await disarmRenameWizard(root, systemctl)).toBe(false);
  });

  it("checks the recipe's time zone against the image's own tzdata: Debian trixie's, where the old names are gone", { timeout: 120_000 }, async () => {
    // The Debian base has no tzdata until the packages stage installs it; Raspberry Pi OS Trixie has trixie's.
    const tzdata = await debianPackage('tzdata', { suite: 'trixie' });
    await execa('cp', ['-a', join(tzdata.dir, 'usr/share/zoneinfo'), join(root, 'usr/share/')]);
    for (const zone of ['Europe/Kyiv', 'Asia/Kolkata', 'UTC', 'Etc/UTC']) await expect(checkTimezone(root, zone), zone).resolves.toBeUndefined();
    // What Node's ICU list used to accept, and trixie moved to tzdata-legacy.
    for (const zone of ['Asia/Calcutta', 'Europe/Kiev']) await expect(checkTimezone(root, zone), zone).rejects.toThrow(/does not exist in the image, so the Pi would run on UTC/);
    await expect(checkTimezone(root, 'Mars/Olympus')).rejects.toThrow(/recipe\.timezone: "Mars\/Olympus" is not a time zone of this image's tzdata/);
  });

  it('finds no consumer of Imager\'s customisation in the Debian base, and cloud-init\'s when it is there', async () => {
    expect((await detectInitFormat(root, mounted.bootPath)).preferred).toBe('none');
    await mkdir(join(root, 'etc/cloud/cloud.cfg.d'), { recursive: true });
    await writeFile(join(root, 'usr/bin/cloud-init'), '#!/bin/sh\n', { mode: 0o755 });
    await writeFile(join(root, 'etc/cloud/cloud.cfg.d/99_raspberry-pi.cfg'), 'datasource_list: [ NoCloud, None ]\ndatasource:\n  NoCloud:\n    seedfrom: file:///boot/firmware/\n');
    expect((await detectInitFormat(root, mounted.bootPath)).preferred).toBe('cloudinit');
  });
});
