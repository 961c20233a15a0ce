import { cp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO, scratch } from '../helpers/env.ts';

// Raspberry Pi Imager's customisation runs on first boot through a consumer in the base (rpi-preseed, cloud-init;
// systemd-format firstrun.sh runs in a boot of its own). Our first-boot unit must come after it, without an
// ordering cycle that systemd would break by dropping a unit. Checked by the host's systemd-analyze against
// stand-ins with the ordering of the consumers' own units (raspberrypi/rpi-preseed systemd/rpi-preseed.service,
// canonical/cloud-init systemd/cloud-config.{target,service.tmpl}, cloud-final.service.tmpl as built for Debian,
// and cloud-init.target, which its generator enables in multi-user.target).

const UNIT = join(REPO, 'overlays/rootfs/etc/systemd/system/simplex-pi-firstboot.service');

const CONSUMERS: Record<string, string> = {
  'rpi-preseed.service': `[Unit]
After=local-fs.target systemd-sysusers.service systemd-tmpfiles-setup.service
Before=systemd-user-sessions.service network-pre.target userconfig.service
Before=getty.target getty@tty1.service serial-getty@ttyS0.service display-manager.service
[Service]
Type=oneshot
ExecStart=/usr/bin/stub
[Install]
WantedBy=multi-user.target
`,
  'cloud-config.target': `[Unit]
Wants=cloud-init-local.service cloud-init.service
After=cloud-init-local.service cloud-init.service
`,
  'cloud-config.service': `[Unit]
After=network-online.target cloud-config.target
Wants=network-online.target cloud-config.target
[Service]
Type=oneshot
ExecStart=/usr/bin/stub
[Install]
WantedBy=cloud-init.target
`,
  'cloud-final.service': `[Unit]
After=network-online.target time-sync.target cloud-config.service rc-local.service
After=multi-user.target
Before=apt-daily.service
Wants=network-online.target cloud-config.service
[Service]
Type=oneshot
ExecStart=/usr/bin/stub
[Install]
WantedBy=cloud-init.target
`,
  'cloud-init.target': `[Unit]
Description=Cloud-init target
After=multi-user.target
`,
};

const roots: string[] = [];
afterAll(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

/** A root with the host's systemd, our unit (as given) and the consumers, enabled as on a Raspberry Pi OS card. */
async function rootWith(unitText: string): Promise<string> {
  const root = await scratch('imager-units');
  roots.push(root);
  const units = join(root, 'etc/systemd/system');
  await mkdir(join(root, 'usr/lib'), { recursive: true });
  await cp('/usr/lib/systemd', join(root, 'usr/lib/systemd'), { recursive: true });
  for (const stub of ['usr/bin/stub', 'usr/local/bin/simplex-pi']) {
    await mkdir(dirname(join(root, stub)), { recursive: true });
    await writeFile(join(root, stub), '#!/bin/sh\n', { mode: 0o755 });
  }
  await mkdir(units, { recursive: true });
  await writeFile(join(units, 'simplex-pi-firstboot.service'), unitText);
  for (const [name, text] of Object.entries(CONSUMERS)) await writeFile(join(units, name), text);
  const enable = async (target: string, unit: string) => {
    await mkdir(join(units, `${target}.wants`), { recursive: true });
    await symlink(`../${unit}`, join(units, `${target}.wants`, unit));
  };
  await enable('multi-user.target', 'simplex-pi-firstboot.service');
  await enable('multi-user.target', 'rpi-preseed.service');
  await enable('multi-user.target', 'cloud-init.target');
  await enable('cloud-init.target', 'cloud-config.service');
  await enable('cloud-init.target', 'cloud-final.service');
  return root;
}

async function verify(root: string): Promise<string> {
  const result = await execa('systemd-analyze', ['verify', `--root=${root}`, 'multi-user.target', 'simplex-pi-firstboot.service'], { reject: false, all: true });
  return String(result.all);
}

describe("the first-boot unit and Raspberry Pi Imager's customisation", () => {
  it('starts after rpi-preseed and cloud-init\'s config stage, and never after cloud-final', async () => {
    const unit = await readFile(UNIT, 'utf8');
    const after = [...unit.matchAll(/^After=(.*)$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    expect(after).toEqual(expect.arrayContaining(['rpi-preseed.service', 'cloud-config.service']));
    expect(after).not.toContain('cloud-final.service');
    expect(after).not.toContain('cloud-init.target');
  });

  it('systemd finds no ordering cycle with the consumers enabled', { timeout: 60_000 }, async () => {
    const output = await verify(await rootWith(await readFile(UNIT, 'utf8')));
    expect(output).not.toMatch(/ordering cycle|deleted to break/);
  });

  it('the check can fail: ordered after cloud-final, systemd would drop the first boot to break a cycle', { timeout: 60_000 }, async () => {
    const wrong = (await readFile(UNIT, 'utf8')).replace(/^After=rpi-preseed\.service cloud-config\.service$/m, 'After=rpi-preseed.service cloud-final.service');
    expect(wrong).toContain('cloud-final.service');
    expect(await verify(await rootWith(wrong))).toMatch(/ordering cycle/);
  });
});
