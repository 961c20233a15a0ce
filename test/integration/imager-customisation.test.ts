import { cp, mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { scratch } from '../helpers/env.ts';
import { debianPackage } from '../helpers/debian-packages.ts';
import { orderedAfter, readUnitOrder } from '../helpers/unit-order.ts';
import { UNITS } from '../../builder/plan/layout.ts';
import { resolvePlan } from '../../builder/plan/plan.ts';
import { parseRecipe } from '../../builder/recipe/load.ts';
import { renderImageFiles } from '../../builder/render/render.ts';

// Raspberry Pi Imager's customisation runs on first boot through a consumer in the base (cloud-init, rpi-preseed;
// systemd-format firstrun.sh runs in a boot of its own). Our first-boot unit must come after the part of it that
// creates the user and sets the host name, never wait for the network, and make no ordering cycle that systemd
// would break by dropping a unit. cloud-init's units are the real ones of Debian trixie's cloud-init package
// (Raspberry Pi OS Trixie's cloud-init is built from the same 25.x sources); rpi-preseed's is a stand-in with the
// ordering of raspberrypi/rpi-preseed systemd/rpi-preseed.service.

const FIRSTBOOT = UNITS.firstboot;

/** Our first-boot unit as the build renders it into the image. */
async function renderedUnit(): Promise<string> {
  const entries = await renderImageFiles(resolvePlan(parseRecipe('name: imager-units\n', 'test')));
  const unit = entries.find((e) => e.path === `/etc/systemd/system/${FIRSTBOOT}`);
  if (!unit?.content) throw new Error(`the render has no ${FIRSTBOOT}`);
  return unit.content.toString('utf8');
}

const RPI_PRESEED = `[Unit]
After=local-fs.target systemd-sysusers.service systemd-tmpfiles-setup.service
Before=systemd-user-sessions.service network-pre.target userconfig.service
Before=getty.target getty@tty1.service serial-getty@ttyS0.service display-manager.service
[Service]
Type=oneshot
ExecStart=/usr/bin/stub
[Install]
WantedBy=multi-user.target
`;

let cloudInitUnits: string;
let cloudInitVersion: string;
beforeAll(async () => {
  const pkg = await debianPackage('cloud-init', { suite: 'trixie', arch: 'arm64' });
  cloudInitUnits = join(pkg.dir, 'usr/lib/systemd/system');
  cloudInitVersion = pkg.version;
}, 120_000);


const afterOf = (unitText: string) => [...unitText.matchAll(/^After=(.*)$/gm)].flatMap((m) => m[1]!.split(/\s+/));

/**
 * A root with the host's systemd, cloud-init's real units enabled as the package and its generator enable them
 * (cloud-init.target in multi-user.target, every stage in cloud-init.target), rpi-preseed, and our unit as given.
 */
async function rootWith(unitText: string): Promise<string> {
  // Removed after the file by test/helpers/cleanup.ts (kept with SIMPLEX_PI_KEEP_SCRATCH=1).
  const root = await scratch('imager-units');
  const units = join(root, 'etc/systemd/system');
  await mkdir(join(root, 'usr/lib'), { recursive: true });
  await cp('/usr/lib/systemd', join(root, 'usr/lib/systemd'), { recursive: true });
  await cp(cloudInitUnits, join(root, 'usr/lib/systemd/system'), { recursive: true });
  for (const stub of ['usr/bin/stub', 'usr/local/bin/simplex-pi', 'usr/bin/cloud-init', 'usr/bin/sh', 'usr/bin/nc']) {
    await mkdir(dirname(join(root, stub)), { recursive: true });
    await writeFile(join(root, stub), '#!/bin/sh\n', { mode: 0o755 });
  }
  await mkdir(units, { recursive: true });
  await writeFile(join(units, FIRSTBOOT), unitText);
  await writeFile(join(units, 'rpi-preseed.service'), RPI_PRESEED);
  const enable = async (target: string, unit: string, from = `../${unit}`) => {
    await mkdir(join(units, `${target}.wants`), { recursive: true });
    await symlink(from, join(units, `${target}.wants`, unit));
  };
  await enable('multi-user.target', FIRSTBOOT);
  await enable('multi-user.target', 'rpi-preseed.service');
  await enable('multi-user.target', 'cloud-init.target', '/usr/lib/systemd/system/cloud-init.target');
  for (const name of await readdir(cloudInitUnits)) {
    if (/\[Install\][^[]*WantedBy=cloud-init\.target/.test(await readFile(join(cloudInitUnits, name), 'utf8').catch(() => ''))) {
      await enable('cloud-init.target', name, `/usr/lib/systemd/system/${name}`);
    }
  }
  return root;
}

async function verify(root: string): Promise<string> {
  const result = await execa('systemd-analyze', ['verify', `--root=${root}`, 'multi-user.target', FIRSTBOOT], { reject: false, all: true });
  return String(result.all);
}

/** What the first boot can end up waiting for, through the ordering of every unit in the root. */
async function waitsFor(root: string): Promise<Set<string>> {
  return orderedAfter(await readUnitOrder([join(root, 'usr/lib/systemd/system'), join(root, 'etc/systemd/system')]), FIRSTBOOT);
}

describe("the first-boot unit and Raspberry Pi Imager's customisation", () => {
  it("starts after the cloud-init stage that creates Imager's user (its name in trixie's cloud-init, and the older one), and after rpi-preseed", async () => {
    // cloud-init 24.3 renamed cloud-init.service to cloud-init-network.service; bookworm's 22.4 has the old name.
    expect(await readdir(cloudInitUnits), `cloud-init ${cloudInitVersion}`).toEqual(expect.arrayContaining(['cloud-init-network.service', 'cloud-init-main.service', 'cloud-config.service']));
    const network = await readFile(join(cloudInitUnits, 'cloud-init-network.service'), 'utf8');
    expect(network).toMatch(/^Description=Cloud-init: Network Stage$/m);
    const after = afterOf(await renderedUnit());
    expect(after).toEqual(expect.arrayContaining(['rpi-preseed.service', 'cloud-init-network.service', 'cloud-init.service']));
    for (const never of ['cloud-config.service', 'cloud-config.target', 'cloud-final.service', 'cloud-init.target', 'network-online.target']) expect(after).not.toContain(never);
  });

  it('never waits for the network, not even through cloud-init', { timeout: 60_000 }, async () => {
    const waits = await waitsFor(await rootWith(await renderedUnit()));
    expect(waits).toContain('cloud-init-network.service');
    for (const unit of ['network-online.target', 'cloud-config.service', 'cloud-final.service', 'NetworkManager-wait-online.service']) expect(waits.has(unit), unit).toBe(false);
  });

  it('systemd finds no ordering cycle with the consumers enabled', { timeout: 60_000 }, async () => {
    const output = await verify(await rootWith(await renderedUnit()));
    expect(output).not.toMatch(/ordering cycle|deleted to break/);
  });

  it('the checks can fail: after cloud-config.service the first boot waits for network-online.target, after cloud-final it is in a cycle', { timeout: 60_000 }, async () => {
    const original = await renderedUnit();
    const ours = /^After=rpi-preseed\.service .*$/m;
    expect(original).toMatch(ours);
    const config = original.replace(ours, 'After=rpi-preseed.service cloud-config.service');
    expect((await waitsFor(await rootWith(config))).has('network-online.target')).toBe(true);
    const final = original.replace(ours, 'After=rpi-preseed.service cloud-final.service');
    expect(await verify(await rootWith(final))).toMatch(/ordering cycle/);
  });
});
