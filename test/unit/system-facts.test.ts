import { mkdir, statfs, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diskSpace, temperature, uptimeSeconds } from '../../builder/device/system-facts.ts';
import { scratch } from '../helpers/env.ts';

/**
 * A /sys with thermal zones as the kernel lays them out: /sys/class/thermal/thermal_zoneN are links to the
 * devices' directories, each with `type` and `temp` (millidegrees Celsius). `temp` undefined: a zone whose
 * sensor answers nothing.
 */
async function fakeSys(zones: Array<{ type: string; temp?: string }>): Promise<string> {
  const sys = await scratch('sys');
  await mkdir(join(sys, 'class/thermal'), { recursive: true });
  for (const [i, zone] of zones.entries()) {
    const device = join(sys, `devices/virtual/thermal/thermal_zone${i}`);
    await mkdir(device, { recursive: true });
    await writeFile(join(device, 'type'), `${zone.type}\n`);
    if (zone.temp !== undefined) await writeFile(join(device, 'temp'), `${zone.temp}\n`);
    await symlink(device, join(sys, `class/thermal/thermal_zone${i}`));
  }
  // Not a zone: cooling devices live beside them.
  await mkdir(join(sys, 'class/thermal/cooling_device0'));
  return sys;
}

describe("the Pi's own facts", () => {
  it('reads the CPU zone\'s temperature in °C, before any other zone', async () => {
    expect(await temperature(await fakeSys([{ type: 'cpu-thermal', temp: '48312' }]))).toBeCloseTo(48.312);
    // The CPU's zone is not always the first.
    expect(await temperature(await fakeSys([{ type: 'acpitz', temp: '27800' }, { type: 'x86_pkg_temp', temp: '55000' }, { type: 'cpu-thermal', temp: '61000' }]))).toBe(61);
  });

  it('takes the first zone when none names the CPU, the next when one cannot be read, and none where there is none (a VM)', async () => {
    expect(await temperature(await fakeSys([{ type: 'acpitz', temp: '27800' }, { type: 'soc', temp: '30000' }]))).toBe(27.8);
    expect(await temperature(await fakeSys([{ type: 'cpu-thermal' }, { type: 'acpitz', temp: '-5000' }]))).toBe(-5);
    expect(await temperature(await fakeSys([]))).toBeUndefined();
    expect(await temperature(await scratch('sys-empty'))).toBeUndefined();
    expect(await temperature(await fakeSys([{ type: 'cpu-thermal', temp: 'garbage' }]))).toBeUndefined();
  });

  it("measures a real directory's file system", async () => {
    const dir = await scratch('disk');
    const space = await diskSpace(dir);
    const fs = await statfs(dir);
    expect(space.totalBytes).toBe(fs.blocks * fs.bsize);
    expect(space.freeBytes).toBeGreaterThan(0);
    expect(space.freeBytes).toBeLessThanOrEqual(space.totalBytes);
    expect(Math.abs(space.freeBytes - fs.bavail * fs.bsize)).toBeLessThan(64 * 1024 ** 2);
    await expect(diskSpace(join(dir, 'missing'))).rejects.toThrow(/ENOENT/);
  });

  it('reads the uptime from /proc/uptime, the real one and a fake one', async () => {
    expect(await uptimeSeconds()).toBeGreaterThan(0);
    const proc = await scratch('proc');
    await writeFile(join(proc, 'uptime'), '12345.67 45678.90\n');
    expect(await uptimeSeconds(proc)).toBe(12345.67);
    await writeFile(join(proc, 'uptime'), '\n');
    await expect(uptimeSeconds(proc)).rejects.toThrow(/does not start with a number of seconds/);
  });
});
