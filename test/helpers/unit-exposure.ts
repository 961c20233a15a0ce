import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { UNITS } from '../../builder/plan/layout.ts';
import type { BuildPlan } from '../../builder/plan/plan.ts';
import { relaysOf } from '../../builder/plan/relays.ts';
import { systemdExposure } from './real-tools.ts';

/**
 * The services an image ships and how exposed each is, by `systemd-analyze security --offline=true` on the rendered
 * tree (this host's systemd scores them), against the most each may be. The render test asserts the figures,
 * `npm run bench` prints them.
 */

/** A service file the render writes, as systemd-analyze names it. */
export interface ShippedUnit {
  /** The unit: a template with an example instance, a drop-in's unit. */
  unit: string;
  /** The rendered file or drop-in directory, under etc/systemd/system. */
  file: string;
  kind: 'unit' | 'template' | 'drop-in';
}

/** The instance a template unit is scored as (a target names it so: `name@example.service`). */
export const TEMPLATE_INSTANCE = 'example';

/** Every service unit, template and drop-in on a service that the rendered tree `rootfs` has. */
export async function shippedUnits(rootfs: string): Promise<ShippedUnit[]> {
  const dir = join(rootfs, 'etc/systemd/system');
  const units: ShippedUnit[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const name = entry.name;
    if (entry.isDirectory() && name.endsWith('.service.d')) units.push({ unit: name.slice(0, -'.d'.length), file: name, kind: 'drop-in' });
    else if (entry.isFile() && name.endsWith('@.service')) units.push({ unit: name.replace(/@\.service$/, `@${TEMPLATE_INSTANCE}.service`), file: name, kind: 'template' });
    else if (entry.isFile() && name.endsWith('.service')) units.push({ unit: name, file: name, kind: 'unit' });
  }
  return units.sort((a, b) => a.unit.localeCompare(b.unit, 'en', { numeric: true }));
}

/** The most a unit's exposure may be, and why; `max: null` for a unit of the base that we do not sandbox. */
export interface ExposureTarget {
  max: number | null;
  why: string;
}

/**
 * The target of every service the render can write. A unit missing here fails the render test: a new unit needs a
 * sandbox and a figure it is held to (issue 13).
 */
export function exposureTargets(plan: BuildPlan): Map<string, ExposureTarget> {
  const targets = new Map<string, ExposureTarget>([
    [UNITS.firstboot, { max: 4.0, why: 'root, with only the capabilities to write into the directories of Tor and the relays and to start init as the relay user' }],
    [UNITS.export, { max: 2.5, why: 'root without capabilities: reads the state directory, writes the stick' }],
    [UNITS.watchdog, { max: 2.5, why: "root without capabilities: reads the state directory, reaches Tor's SOCKS port and the relays on loopback, restarts units" }],
    [UNITS.update, { max: 4.0, why: 'root with the capabilities of first boot for the relays\' files: installs the new release, migrates the INIs, runs the release as the relay user, restarts the relays; loopback only' }],
    [UNITS.ssh, { max: null, why: "Debian's sshd (our drop-ins make its host keys and require the firewall): its sessions are the admin's shell, so a sandbox on it would confine every admin command" }],
    [UNITS.tor, { max: null, why: "Debian's tor (our drop-in only requires the firewall), as Debian sandboxes it" }],
    [
      'regenerate_ssh_host_keys.service',
      { max: null, why: "Raspberry Pi OS's first-boot key regeneration (our drop-in only skips it on a restored card); not on the Debian base, nor in the tree scored here" },
    ],
  ]);
  for (const relay of relaysOf(plan)) targets.set(relay.unit, { max: 1.5, why: 'the relay user, no capabilities, loopback only, its own directories only' });
  return targets;
}

export interface UnitExposure extends ShippedUnit {
  exposure: number;
  target: ExposureTarget | undefined;
}

/**
 * The exposure of every unit `rootfs` (a rendered tree) ships, and of `others` (units of the base, for comparison;
 * `file` empty) that it does not, with its target; `root` is systemdRoot(rootfs). One systemd-analyze at a time.
 */
export async function unitExposures(root: string, rootfs: string, plan: BuildPlan, others: string[] = []): Promise<UnitExposure[]> {
  const targets = exposureTargets(plan);
  const found: UnitExposure[] = [];
  const shipped = await shippedUnits(rootfs);
  const more = others.filter((unit) => !shipped.some((u) => u.unit === unit)).map((unit): ShippedUnit => ({ unit, file: '', kind: 'unit' }));
  for (const u of [...shipped, ...more]) {
    const target = targets.get(u.unit);
    // A drop-in on a unit of one base only (Raspberry Pi OS's) that this tree does not have: nothing to score.
    const scored = await systemdExposure(root, u.unit).catch((error: unknown) => {
      if (u.kind === 'drop-in' && target?.max === null) return undefined;
      throw error;
    });
    if (scored !== undefined) found.push({ ...u, exposure: scored, target });
  }
  return found;
}
