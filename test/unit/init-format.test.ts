import { cp, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLOUD_INIT_DISABLED, type DetectedInitFormat, IMAGER_SYSTEMD_HOOK, chooseInitFormat, detectInitFormat } from '../../builder/base/init-format.ts';
import { CLOUD_CFG, CLOUD_CFG_D, CLOUD_INIT } from '../../builder/image/cloud-init.ts';
import { parseRecipe } from '../../builder/recipe/load.ts';
import { REPO, scratch } from '../helpers/env.ts';

const LOOKALIKE = join(REPO, 'test/fixtures/raspios-lookalike');

async function put(root: string, path: string, content: string): Promise<void> {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), content);
}

/** A root laid out as Raspberry Pi OS Trixie's: cloud-init, Raspberry Pi's cloud.cfg and rpi-cloud-init-mods' NoCloud seed. */
async function trixieRoot(options: { rpiPackage?: boolean; seed?: string } = {}): Promise<string> {
  const root = await scratch('init-format');
  await put(root, CLOUD_INIT, '#!/bin/sh\n');
  await mkdir(join(root, CLOUD_CFG_D), { recursive: true });
  await cp(join(LOOKALIKE, 'rootfs/etc/cloud/cloud.cfg'), join(root, CLOUD_CFG));
  const seed = options.seed ?? 'file:///boot/firmware/';
  await put(root, `${CLOUD_CFG_D}/99_raspberry-pi.cfg`, `datasource_list: [ NoCloud, None ]\ndatasource:\n  NoCloud:\n    seedfrom: ${seed}\n`);
  if (options.rpiPackage !== false) {
    await put(root, 'var/lib/dpkg/status', 'Package: cloud-init\nStatus: install ok installed\n\nPackage: rpi-cloud-init-mods\nStatus: install ok installed\nVersion: 1\n');
  }
  return root;
}

describe("init_format detected from the image's consumer of Imager's customisation", () => {
  it('cloud-init reading the boot partition, with Raspberry Pi\'s additions: cloudinit-rpi (Raspberry Pi OS Trixie)', async () => {
    const detected = await detectInitFormat(await trixieRoot(), '/boot/firmware');
    expect(detected.preferred).toBe('cloudinit-rpi');
    expect(detected.supported).toEqual(expect.arrayContaining(['cloudinit-rpi', 'cloudinit', 'none']));
    expect(detected.supported).not.toContain('systemd');
    expect(detected.evidence).toContain('NoCloud seeded from the boot partition (file:///boot/firmware/)');
  });

  it("plain cloud-init reading the boot partition: cloudinit", async () => {
    expect((await detectInitFormat(await trixieRoot({ rpiPackage: false }), '/boot/firmware')).preferred).toBe('cloudinit');
  });

  it("cloud-init that does not read the boot partition: none (Imager's files would be ignored)", async () => {
    const detected = await detectInitFormat(await trixieRoot({ seed: 'file:///var/lib/cloud/seed/nocloud/' }), '/boot/firmware');
    expect(detected.preferred).toBe('none');
    expect(detected.evidence).toMatch(/not reading the boot partition/);
  });

  it('cloud-init switched off (its marker file, or cloud-init=disabled in cmdline.txt): none, saying so', async () => {
    const marked = await trixieRoot();
    await put(marked, CLOUD_INIT_DISABLED, '');
    expect(await detectInitFormat(marked, '/boot/firmware')).toMatchObject({ preferred: 'none', evidence: expect.stringContaining(`disabled (${CLOUD_INIT_DISABLED})`) });
    const onCmdline = await trixieRoot();
    await put(onCmdline, '/boot/firmware/cmdline.txt', 'console=tty1 root=PARTUUID=abcd-02 rootwait cloud-init=disabled\n');
    expect(await detectInitFormat(onCmdline, '/boot/firmware')).toMatchObject({ preferred: 'none', evidence: expect.stringContaining('cloud-init=disabled on the kernel command line') });
    // The command line a caller already read wins over the file (inspect-base reads it from the FAT partition).
    expect((await detectInitFormat(onCmdline, '/boot/firmware', { cmdline: 'console=tty1' })).preferred).toBe('cloudinit-rpi');
  });

  it("Raspberry Pi OS's hook for Imager's firstrun.sh and no cloud-init: systemd (Bookworm)", async () => {
    const root = await scratch('init-format');
    await put(root, IMAGER_SYSTEMD_HOOK, '#!/bin/sh\n');
    expect((await detectInitFormat(root, '/boot/firmware')).preferred).toBe('systemd');
  });

  it('neither: none (the Debian base)', async () => {
    const detected = await detectInitFormat(await scratch('init-format'), '/boot/firmware');
    expect(detected).toMatchObject({ preferred: 'none' });
  });
});

describe('init_format cross-checked: the recipe overrides, the list wins when the image has its consumer', () => {
  const trixie: DetectedInitFormat = { preferred: 'cloudinit-rpi', supported: ['none', '', 'cloudinit-rpi', 'cloudinit'], evidence: 'cloud-init with NoCloud seeded from the boot partition' };
  const both: DetectedInitFormat = { ...trixie, supported: [...trixie.supported, 'systemd'] };
  const base = 'Raspberry Pi OS Lite (64-bit) 2026-06-01';

  it('nothing listed (pinned image, local file): the image decides', () => {
    expect(chooseInitFormat({ detected: trixie, base })).toMatchObject({ format: 'cloudinit-rpi', reason: expect.stringMatching(/^detected in the image/) });
  });

  it('listed and supported: the list, without a word', () => {
    expect(chooseInitFormat({ detected: trixie, listed: 'cloudinit-rpi', base })).toEqual({ format: 'cloudinit-rpi', reason: expect.any(String) });
    // Trixie 2025-10-01: listed systemd, and the image has both consumers: the pairing Raspberry Pi tested wins.
    expect(chooseInitFormat({ detected: both, listed: 'systemd', base })).toEqual({ format: 'systemd', reason: expect.stringContaining('the image also has') });
  });

  it('listed without a consumer in the image: refused, saying what the image supports and how to override', () => {
    expect(() => chooseInitFormat({ detected: trixie, listed: 'systemd', base })).toThrow(
      /Raspberry Pi Imager's list says init_format systemd for .*, but the image has no consumer for it .*The image supports cloudinit-rpi\. Set base\.init_format: cloudinit-rpi in the recipe/,
    );
  });

  it('listed none for an image that has a consumer: none, with a warning saying how to offer customisation', () => {
    expect(chooseInitFormat({ detected: trixie, listed: 'none', base })).toMatchObject({ format: 'none', warning: expect.stringMatching(/The list wins; set base\.init_format: cloudinit-rpi/) });
  });

  it('the recipe overrides both, with a warning when the image cannot consume it', () => {
    expect(chooseInitFormat({ detected: trixie, listed: 'systemd', recipe: 'cloudinit-rpi', base })).toEqual({ format: 'cloudinit-rpi', reason: expect.stringMatching(/^set in the recipe/) });
    expect(chooseInitFormat({ detected: trixie, recipe: 'systemd', base })).toMatchObject({ format: 'systemd', warning: expect.stringMatching(/no consumer for it.*kernel-command-line\.target.*The recipe wins/) });
  });
});

describe('the recipe field', () => {
  it('is allowed on a pinned Raspberry Pi OS image and on a local file', () => {
    const sha = 'a'.repeat(64);
    expect(parseRecipe(`name: a\nbase: { provider: file, path: x.img, sha256: ${sha}, init_format: cloudinit-rpi }\n`, 'r.yaml').base).toMatchObject({ init_format: 'cloudinit-rpi' });
    expect(parseRecipe(`name: a\nbase: { provider: raspios, url: "https://x/y.img.xz", sha256: ${sha}, init_format: systemd }\n`, 'r.yaml').base).toMatchObject({ init_format: 'systemd' });
    expect(() => parseRecipe(`name: a\nbase: { provider: file, path: x.img, sha256: ${sha}, init_format: ignition }\n`, 'r.yaml')).toThrow(/recipe\.base\.init_format: must be one of none, systemd, cloudinit, cloudinit-rpi, rpi-preseed/);
  });
});
