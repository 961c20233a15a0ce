import { readFile, readdir, statfs } from 'node:fs/promises';
import { join } from 'node:path';

/** Facts about the Pi itself for status and the health report: the card's space, the CPU's temperature, uptime. Runs on the device. */

export interface DiskSpace {
  totalBytes: number;
  /** What an unprivileged program may still write (df's "Avail"): the relays run as their own user, not root. */
  freeBytes: number;
}

export async function diskSpace(path: string): Promise<DiskSpace> {
  const fs = await statfs(path);
  return { totalBytes: fs.blocks * fs.bsize, freeBytes: fs.bavail * fs.bsize };
}

const ZONE = /^thermal_zone(\d+)$/;

/** The kernel's thermal zones under `sys`, in their numbering, each with its type (`cpu-thermal` on a Pi). */
async function thermalZones(sys: string): Promise<Array<{ dir: string; type: string }>> {
  const base = join(sys, 'class/thermal');
  const names = await readdir(base).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw error;
  });
  const zones = names.filter((n) => ZONE.test(n)).sort((a, b) => Number(ZONE.exec(a)![1]) - Number(ZONE.exec(b)![1]));
  return Promise.all(zones.map(async (name) => ({ dir: join(base, name), type: (await readFile(join(base, name, 'type'), 'utf8').catch(() => '')).trim() })));
}

/**
 * The CPU's temperature in °C, or undefined where the kernel reports none (a VM, a container). The zone whose type
 * names the CPU comes first (on a Pi, thermal_zone0 `cpu-thermal`), then the others in order; a zone whose `temp`
 * cannot be read (some drivers answer ENODATA while a sensor is off) gives way to the next. `sys` is /sys's
 * place, for tests.
 */
export async function temperature(sys = '/sys'): Promise<number | undefined> {
  const zones = await thermalZones(sys);
  const ordered = [...zones.filter((z) => /cpu/i.test(z.type)), ...zones.filter((z) => !/cpu/i.test(z.type))];
  for (const zone of ordered) {
    const text = await readFile(join(zone.dir, 'temp'), 'utf8').catch(() => undefined);
    // Millidegrees Celsius, as a whole number.
    if (text !== undefined && /^-?\d+$/.test(text.trim())) return Number(text.trim()) / 1000;
  }
  return undefined;
}

/** Seconds since the kernel booted (the first field of /proc/uptime). `proc` is /proc's place, for tests. */
export async function uptimeSeconds(proc = '/proc'): Promise<number> {
  const text = await readFile(join(proc, 'uptime'), 'utf8');
  const seconds = /^\d+(?:\.\d+)?(?=\s)/.exec(text)?.[0];
  if (seconds === undefined) throw new Error(`${join(proc, 'uptime')} does not start with a number of seconds: ${text.slice(0, 40)}`);
  return Number(seconds);
}
