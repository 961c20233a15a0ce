import { cp, mkdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { DEBIAN_CONFIG_TXT_HOOK, DISABLE_BT, maskExposingUnits, turnBluetoothOff } from '../../builder/image/exposed-services.ts';
import { REPO, scratch } from '../helpers/env.ts';

/**
 * What configure does about avahi and Bluetooth, on a root shaped like the base's: the unit files where Debian's
 * packages put them, the boot partition's files where the build keeps them. systemctl is this host's, with --root,
 * where the build runs the image's own in its chroot: both only write symbolic links under /etc.
 */
const systemctl = (root: string) => async (args: string[]) => execa('systemctl', [`--root=${root}`, ...args]);

async function unitFile(root: string, dir: string, unit: string, wantedBy = 'multi-user.target'): Promise<void> {
  await mkdir(join(root, dir), { recursive: true });
  await writeFile(join(root, dir, unit), `[Unit]\nDescription=${unit}\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=${wantedBy}\n`);
}

describe('avahi and Bluetooth off, where the base has them', () => {
  it('masks the units a Raspberry Pi OS base has, enabled or not, and only those', async () => {
    const root = await scratch('exposed');
    await mkdir(join(root, 'etc/systemd/system'), { recursive: true });
    await unitFile(root, 'usr/lib/systemd/system', 'avahi-daemon.service');
    await unitFile(root, 'usr/lib/systemd/system', 'avahi-daemon.socket', 'sockets.target');
    await unitFile(root, 'lib/systemd/system', 'hciuart.service');
    await execa('systemctl', [`--root=${root}`, 'enable', 'avahi-daemon.service', 'hciuart.service']);

    const masked = await maskExposingUnits(root, systemctl(root));
    expect(masked.map((m) => m.unit)).toEqual(['avahi-daemon.service', 'avahi-daemon.socket', 'hciuart.service']);
    for (const unit of ['avahi-daemon.service', 'avahi-daemon.socket', 'hciuart.service']) {
      expect(await readlink(join(root, 'etc/systemd/system', unit))).toBe('/dev/null');
      expect((await execa('systemctl', [`--root=${root}`, 'is-enabled', unit], { reject: false })).stdout).toBe('masked');
    }
    // bluetooth.service is not in this base: nothing made for it.
    await expect(readlink(join(root, 'etc/systemd/system/bluetooth.service'))).rejects.toThrow(/ENOENT/);
    // Again: the masks count as present, and masking them again changes nothing.
    expect((await maskExposingUnits(root, systemctl(root))).map((m) => m.unit)).toEqual(['avahi-daemon.service', 'avahi-daemon.socket', 'hciuart.service']);
  });

  it('a base without any of them (the Debian base) is left alone, and systemctl is not even run', async () => {
    const root = await scratch('exposed-none');
    await unitFile(root, 'usr/lib/systemd/system', 'systemd-networkd.service');
    const calls: string[][] = [];
    expect(await maskExposingUnits(root, async (args) => calls.push(args))).toEqual([]);
    expect(calls).toEqual([]);
  });

  it("turns Bluetooth off in Raspberry Pi OS's config.txt; leaves Debian's, which its kernel hook rewrites, and a base without one", async () => {
    const root = await scratch('exposed-boot');
    await mkdir(join(root, 'boot/firmware'), { recursive: true });
    await cp(join(REPO, 'test/fixtures/raspios-lookalike/bootfs/config.txt'), join(root, 'boot/firmware/config.txt'));
    expect(await turnBluetoothOff(root, '/boot/firmware')).toBe(`config.txt: ${DISABLE_BT} (Bluetooth off)`);
    expect(await readFile(join(root, 'boot/firmware/config.txt'), 'utf8')).toMatch(/\n\[all\]\ndtoverlay=disable-bt\n$/);
    expect(await turnBluetoothOff(root, '/boot/firmware')).toBe(`config.txt already has ${DISABLE_BT}`);

    await mkdir(join(root, 'etc/kernel/postinst.d'), { recursive: true });
    await symlink('/bin/true', join(root, DEBIAN_CONFIG_TXT_HOOK));
    await writeFile(join(root, 'boot/firmware/config.txt'), '# Do not modify this file!\narm_64bit=1\n');
    expect(await turnBluetoothOff(root, '/boot/firmware')).toMatch(/Debian's raspi-firmware's.*left as it is/);
    expect(await readFile(join(root, 'boot/firmware/config.txt'), 'utf8')).toBe('# Do not modify this file!\narm_64bit=1\n');

    expect(await turnBluetoothOff(await scratch('exposed-noboot'), '/boot/firmware')).toMatch(/^no config.txt in the boot partition/);
  });
});
