import { describe, expect, it } from 'vitest';
import { listInitramfsBuffer, resizeFiles } from '../../builder/inspect/initramfs.ts';
import {
  mbrPartuuid,
  parseCloudConfig,
  parseCmdline,
  parseDeb822Sources,
  parseDpkgStatus,
  parseMdir,
  shadowPasswordState,
} from '../../builder/inspect/parse.ts';

describe('inspect-base parsers', () => {
  it('reads cmdline.txt as Imager 2.x leaves it for cloudinit-rpi, and the Bookworm firstboot form', () => {
    const partuuids = new Map([[mbrPartuuid('0x6C3F1A2B', 2), 2]]);
    const c = parseCmdline('console=serial0,115200 console=tty1 root=PARTUUID=6c3f1a2b-02 rootfstype=ext4 rootwait resize ds=nocloud;i=rpi-imager-1700000000000\n', partuuids);
    expect(c).toMatchObject({ resize: true, root: { form: 'PARTUUID', value: '6c3f1a2b-02', matchesPartition: 2 }, ds: 'ds=nocloud;i=rpi-imager-1700000000000' });
    const old = parseCmdline('console=tty1 root=PARTUUID=abcd-02 rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot', partuuids);
    expect(old).toMatchObject({ resize: false, root: { form: 'PARTUUID', matchesPartition: null }, init: '/usr/lib/raspberrypi-sys-mods/firstboot' });
    expect(parseCmdline('root=/dev/mmcblk0p2 systemd.run=/boot/firstrun.sh systemd.unit=kernel-command-line.target', partuuids)).toMatchObject({
      root: { form: 'device', value: '/dev/mmcblk0p2' },
      systemdRun: '/boot/firstrun.sh',
      systemdUnit: 'kernel-command-line.target',
    });
    expect(parseCmdline('console=tty1', partuuids).root.form).toBe('missing');
    expect(mbrPartuuid('0xabc', 1)).toBe('00000abc-01');
  });

  it('reads cloud-init modules in every form cloud.cfg allows, with cloud.cfg.d overriding in order', () => {
    const facts = parseCloudConfig('cloud_init_modules:\n - growpart\n - [resizefs, always]\n - { name: ssh }\ndatasource_list: [ Ec2 ]\n', [
      { name: '10_a.cfg', text: 'datasource_list: [ NoCloud ]\n' },
      { name: '90_b.cfg', text: 'datasource:\n  NoCloud:\n    seedfrom: file:///boot/firmware/\n' },
      { name: '95_broken.cfg', text: 'key: [unclosed\n' },
    ]);
    expect(facts).toMatchObject({ growpart: true, resizefs: true, datasourceList: ['NoCloud'], nocloudSeedfrom: 'file:///boot/firmware/' });
    expect(facts.modules.init).toEqual(['growpart', 'resizefs', 'ssh']);
    expect(facts.parseErrors).toHaveLength(1);
    expect(facts.parseErrors[0]).toMatch(/^95_broken\.cfg: /);
    // Mappings merge key by key, as cloud-init's mergemanydict does: a later snippet adds to datasource, not replaces it.
    const merged = parseCloudConfig('datasource:\n  NoCloud:\n    seedfrom: file:///boot/firmware/\n  Ec2:\n    timeout: 1\n', [{ name: '50_x.cfg', text: 'datasource:\n  Ec2:\n    timeout: 5\n' }]);
    expect(merged.nocloudSeedfrom).toBe('file:///boot/firmware/');
  });

  it('reads dpkg status, deb822 sources, shadow states and mdir listings', () => {
    const dpkg = parseDpkgStatus('Package: a\nStatus: install ok installed\nVersion: 1\nDescription: x\n y\n\nPackage: b\nStatus: deinstall ok config-files\nVersion: 2\n');
    expect(dpkg.map((p) => [p.name, p.version, p.status])).toEqual([
      ['a', '1', 'install ok installed'],
      ['b', '2', 'deinstall ok config-files'],
    ]);
    const sources = parseDeb822Sources('x.sources', '# comment\nTypes: deb deb-src\nURIs: http://a/\nSuites: trixie\n trixie-updates\nComponents: main\n\nTypes: deb\nURIs: http://b/\nSuites: s\nEnabled: no\n');
    expect(sources.map((s) => [s.types, s.suites, s.enabled])).toEqual([
      [['deb', 'deb-src'], ['trixie', 'trixie-updates'], true],
      [['deb'], ['s'], false],
    ]);
    const shadow = 'a:!$y$hash:1::::::\nb::1::::::\nc:$y$j9T$x:1::::::\nd:*:1::::::\n';
    expect(['a', 'b', 'c', 'd', 'e'].map((n) => shadowPasswordState(shadow, n))).toEqual(['locked', 'none', 'set', 'locked', 'no-shadow-entry']);
    const long = [
      ' Volume in drive : is bootfs     ',
      'cmdline  txt        46 2026-12-02  15:34 ',
      'KERNEL~1 IMG      5000 2026-12-02  15:34  kernel_2712.img',
      'overlays     <DIR>     2026-12-02  15:34 ',
    ].join('\n');
    expect(parseMdir('::/cmdline.txt\n::/kernel_2712.img\n::/overlays/\n', long)).toEqual([
      { name: 'cmdline.txt', dir: false, size: 46 },
      { name: 'kernel_2712.img', dir: false, size: 5000 },
      { name: 'overlays', dir: true, size: null },
    ]);
  });

  it('lists a cpio archive and refuses data that is neither cpio nor compressed', async () => {
    const entry = (name: string, data: string) => {
      const hex = (n: number) => n.toString(16).padStart(8, '0');
      const header = `070701${hex(1)}${hex(0o100644)}${hex(0)}${hex(0)}${hex(1)}${hex(0)}${hex(data.length)}${hex(0)}${hex(0)}${hex(0)}${hex(0)}${hex(name.length + 1)}${hex(0)}`;
      const pad = (s: string) => s + '\0'.repeat((4 - (s.length % 4)) % 4);
      return pad(`${header}${name}\0`) + pad(data);
    };
    const archive = Buffer.from(entry('scripts/local-premount/resize_early', '#!/bin/sh\n') + entry('TRAILER!!!', ''), 'latin1');
    expect(await listInitramfsBuffer(archive)).toEqual({ segments: ['none'], names: ['scripts/local-premount/resize_early'] });
    await expect(listInitramfsBuffer(Buffer.from('garbage!'))).rejects.toThrow(/unknown data at byte 0/);
    expect(resizeFiles(['usr/lib/modules/6.12/kernel/resize.ko', 'usr/sbin/resize2fs', 'bin/sh', 'scripts/local-bottom/growroot'])).toEqual(['usr/sbin/resize2fs', 'scripts/local-bottom/growroot']);
  });
});
