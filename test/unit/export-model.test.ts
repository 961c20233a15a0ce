import { describe, expect, it } from 'vitest';
import { recipeErrorOf } from '../helpers/recipe-error.ts';
import { type ExportState, healthReadme, secretFiles } from '../../builder/device/export-files.ts';
import { parseUdevDb } from '../../builder/device/usb-sticks.ts';
import { ADMIN_FOLDER, RESERVED_FS_LABELS } from '../../builder/plan/layout.ts';
import { resolvePlan } from '../../builder/plan/plan.ts';
import { parseRecipe } from '../../builder/recipe/load.ts';

const errorOf = recipeErrorOf;

// `udevadm info --export-db` as udev 252 prints it, trimmed: a USB stick's FAT partition, the same label on a
// virtio disk (what the VM test plugs in as a non-USB device), and the SD card's own boot partition.
const UDEV_DB = `P: /devices/platform/4c000000.pcie/pci0000:00/usb2/2-1/2-1:1.0/host0/target0:0:0/0:0:0:0/block/sda/sda1
M: sda1
U: block
T: partition
N: sda1
E: DEVPATH=/devices/platform/4c000000.pcie/pci0000:00/usb2/2-1/2-1:1.0/host0/target0:0:0/0:0:0:0/block/sda/sda1
E: SUBSYSTEM=block
E: DEVNAME=/dev/sda1
E: DEVTYPE=partition
E: ID_BUS=usb
E: ID_SERIAL=SanDisk_Cruzer_Blade_4C530001
E: ID_FS_UUID=A24D-152B
E: ID_FS_LABEL=SIMPLEX
E: ID_FS_TYPE=vfat
E: DISKSEQ=17

P: /devices/platform/a003c00.virtio_mmio/virtio2/block/vdb
M: vdb
U: block
T: disk
N: vdb
E: SUBSYSTEM=block
E: DEVNAME=/dev/vdb
E: DEVTYPE=disk
E: ID_FS_LABEL=SIMPLEX
E: ID_FS_TYPE=vfat

P: /devices/platform/emmc2bus/fe340000.mmc/mmc_host/mmc0/mmc0:aaaa/block/mmcblk0/mmcblk0p1
N: mmcblk0p1
E: SUBSYSTEM=block
E: DEVNAME=/dev/mmcblk0p1
E: ID_FS_LABEL=bootfs
E: ID_FS_TYPE=vfat

P: /devices/virtual/net/lo
E: SUBSYSTEM=net
E: INTERFACE=lo
`;

describe('which devices may receive an export', () => {
  it('reads udev\'s database: block devices only, with their bus, label, type and serial', () => {
    const devices = parseUdevDb(UDEV_DB);
    expect(devices.map((d) => d.device)).toEqual(['/dev/sda1', '/dev/vdb', '/dev/mmcblk0p1']);
    expect(devices[0]).toEqual({ device: '/dev/sda1', bus: 'usb', label: 'SIMPLEX', type: 'vfat', serial: 'SanDisk_Cruzer_Blade_4C530001', fsUuid: 'A24D-152B', diskseq: '17' });
    // The virtio disk carries the label too, but no USB bus: the export lists it apart and never writes it.
    expect(devices[1]).toMatchObject({ bus: undefined, label: 'SIMPLEX' });
  });

  it('refuses an export label the Pi\'s own partitions carry, and checks encrypt_to as an age X25519 recipient', () => {
    for (const label of RESERVED_FS_LABELS) expect(errorOf(`name: x\nexport: { usb_label: ${label} }\n`)).toMatch(/export\.usb_label: must not be a label the Pi's own partitions carry/);
    const recipient = 'age1ctvrrzaz8hu7trasj5yzdaxl50kwe9kkd4q6k9dl8qfhyt79pfvsl4nf0z';
    expect(resolvePlan(parseRecipe(`name: x\nexport: { encrypt_to: ${recipient} }\n`, 'r.yaml')).export.encryptTo).toBe(recipient);
    expect(resolvePlan(parseRecipe('name: x\n', 'r.yaml')).export.encryptTo).toBeNull();
    // One character changed: the bech32 checksum no longer holds.
    expect(errorOf(`name: x\nexport: { encrypt_to: ${recipient.slice(0, -1)}q }\n`)).toMatch(/export\.encrypt_to: must be an age X25519 recipient/);
    expect(errorOf('name: x\nexport: { encrypt_to: AGE-SECRET-KEY-1D80S }\n')).toMatch(/export\.encrypt_to: must be an age X25519 recipient/);
  });
});

describe('what a stick gets', () => {
  const plan = resolvePlan(
    parseRecipe('name: team\nsmp: { instances: 2 }\nadmin: { user: admin, ssh: { over_tor: true, authorized_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKnJ8ysgqH1uM4YvBwCAuUnd8fV6qNH4q2yOc7lEJa9b a@b"] } }\ntor: { client_auth: { generate: 2 } }\n', 'r.yaml'),
  );
  const onion = (c: string) => `${c.repeat(56)}.onion`;
  const key = (name: string) => ({ name, publicKey: 'P'.repeat(52), privateKey: `${name.toUpperCase().replace(/[^A-Z]/g, 'A')}`.padEnd(52, 'Q') });
  const state: ExportState = {
    servers: [
      { name: 'smp1', kind: 'smp', onion: onion('a'), address: `smp://fp1:pw1@${onion('a')}` },
      { name: 'smp2', kind: 'smp', onion: onion('b'), address: `smp://fp2:pw2@${onion('b')}` },
      { name: 'xftp', kind: 'xftp', onion: onion('c'), address: `xftp://fp3:pw3@${onion('c')}:443` },
      { name: 'ssh', kind: 'ssh', onion: onion('d'), address: `ssh admin@${onion('d')}` },
    ],
    clientKeys: [key('client-1'), key('client-2')],
    adminKey: key('simplex-pi-admin'),
  };

  it("keeps the members' material and the admin's apart: no member file names SSH or holds a key for it", async () => {
    const files = await secretFiles(plan, state, 'pi');
    const paths = files.map((f) => f.path);
    const members = files.filter((f) => !f.path.startsWith(`${ADMIN_FOLDER}/`));
    for (const file of members) expect(file.content.toString(), file.path).not.toContain(onion('d').slice(0, 56));
    expect(paths.filter((p) => p.startsWith('client-auth/'))).toEqual(
      ['client-1', 'client-2'].flatMap((c) => ['smp1', 'smp2', 'xftp'].map((r) => `client-auth/${c}/${r}.auth_private`)),
    );
    expect(paths).toEqual(expect.arrayContaining(['addresses.txt', 'servers.json', 'qr/smp1.png', 'qr/smp2.png', 'qr/xftp.png', `${ADMIN_FOLDER}/ssh.txt`, `${ADMIN_FOLDER}/ssh.auth_private`]));
    expect(paths).not.toContain('qr/ssh.png');
    const adminKey = files.find((f) => f.path === `${ADMIN_FOLDER}/ssh.auth_private`)!.content.toString();
    expect(adminKey).toBe(`${'d'.repeat(56)}:descriptor:x25519:${state.adminKey!.privateKey}\n`);
    expect(files.find((f) => f.path === `${ADMIN_FOLDER}/ssh.txt`)!.content.toString()).toContain(`ssh admin@${onion('d')}`);
  });

  it('a stick that gets only the health report is told why and how to get the secrets', () => {
    const text = healthReadme(plan, 'pi');
    expect(text).toContain('This stick holds no secret');
    expect(text).toContain('sudo simplex-pi export');
    for (const server of state.servers) expect(text).not.toContain(server.onion);
  });
});

describe('the recipe\'s backup settings', () => {
  const recipient = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
  it('reach the plan, off by default', () => {
    expect(resolvePlan(parseRecipe('name: x\n', 'r.yaml')).backup).toEqual({ recipient: null, onStick: false });
    expect(resolvePlan(parseRecipe(`name: x\nbackup: { recipient: ${recipient}, on_stick: true }\n`, 'r.yaml')).backup).toEqual({ recipient, onStick: true });
  });
  it('refuse an unattended backup to a stick without a recipient, and a recipient that is not an age key', () => {
    expect(errorOf('name: x\nbackup: { on_stick: true }\n')).toMatch(/backup\.on_stick: needs backup\.recipient/);
    expect(errorOf('name: x\nbackup: { recipient: age1notakey }\n')).toMatch(/backup\.recipient: must be an age X25519 recipient/);
  });
});
