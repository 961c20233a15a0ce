import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { DEBIAN_ONIONS, routeAptThroughTor } from '../../builder/image/apt-sources.ts';
import { resolvePlan } from '../../builder/plan/plan.ts';
import { parseRecipe } from '../../builder/recipe/load.ts';
import { type ImageEntry, renderImageFiles } from '../../builder/render/render.ts';
import { debianPackage } from '../helpers/debian-packages.ts';
import { scratch } from '../helpers/env.ts';

/**
 * Security updates (README: Security updates; docs/security-updates.md): the rendered apt, unattended-upgrades,
 * needrestart and timer configuration, read by the real tools and checked against the packages Debian ships, in
 * bookworm and trixie alike. The VM test (test/e2e/boot.test.ts) runs them for real.
 */

const SUITES = ['bookworm', 'trixie'] as const;

async function rendered(outbound: 'tor-only' | 'open'): Promise<Map<string, string>> {
  const entries = await renderImageFiles(resolvePlan(parseRecipe(`name: t\nnetwork:\n  outbound: ${outbound}\n`, 'r')));
  return new Map(entries.filter((e: ImageEntry) => e.kind === 'file').map((e) => [e.path, e.content!.toString('utf8')]));
}

/** apt's configuration as apt itself reads it: `parts` (apt.conf.d files by name) and nothing of this machine's. */
async function aptConfig(parts: Record<string, string>, key: string): Promise<string> {
  const dir = await scratch('apt-conf');
  await mkdir(join(dir, 'apt.conf.d'));
  for (const [name, text] of Object.entries(parts)) await writeFile(join(dir, 'apt.conf.d', name), text);
  await writeFile(join(dir, 'apt.conf'), `Dir::Etc::Parts "${dir}/apt.conf.d/";\n`);
  return (await execa('apt-config', ['dump', key], { env: { APT_CONFIG: join(dir, 'apt.conf') } })).stdout;
}

const listValues = (dump: string, key: string) => dump.split('\n').filter((l) => l.startsWith(`${key}:: `)).map((l) => /"(.*)"/.exec(l)![1]);

describe.each(SUITES)("security updates against Debian %s's packages", (suite) => {
  it("unattended-upgrades' origins are Debian's security archive only: the stock list (point releases too) is cleared", async () => {
    const stock = await readFile(join((await debianPackage('unattended-upgrades', { suite })).dir, 'usr/share/unattended-upgrades/50unattended-upgrades'), 'utf8');
    const ours = (await rendered('tor-only')).get('/etc/apt/apt.conf.d/51simplex-pi-security-updates')!;
    const key = 'Unattended-Upgrade::Origins-Pattern';
    // The control: without ours, the stock list has Debian's point releases (label=Debian).
    expect(listValues(await aptConfig({ '50unattended-upgrades': stock }, key), key)).toContain('origin=Debian,codename=${distro_codename},label=Debian');
    expect(listValues(await aptConfig({ '50unattended-upgrades': stock, '51simplex-pi-security-updates': ours }, key), key)).toEqual([
      'origin=Debian,codename=${distro_codename}-security,label=Debian-Security',
      'origin=Debian,codename=${distro_codename},label=Debian-Security',
    ]);
    const periodic = await aptConfig({ '50unattended-upgrades': stock, '51simplex-pi-security-updates': ours }, 'APT::Periodic');
    expect(periodic).toContain('APT::Periodic::Unattended-Upgrade "1";');
    expect(periodic).toContain('APT::Periodic::Update-Package-Lists "1";');
  });

  it("a package whose configuration file the image changed (Tor's torrc) is still upgraded: unattended-upgrade skips its conffile check when DPkg::Options has --force-confold, which the image sets", async () => {
    const source = await readFile(join((await debianPackage('unattended-upgrades', { suite })).dir, 'usr/bin/unattended-upgrade'), 'utf8');
    expect(source).toMatch(/def dpkg_conffile_prompt\(\):[\s\S]{0,400}if option in \["--force-confold", "--force-confnew"\]:\s*\n\s*return False/);
    const ours = (await rendered('open')).get('/etc/apt/apt.conf.d/51simplex-pi-security-updates')!;
    expect(listValues(await aptConfig({ '51simplex-pi-security-updates': ours }, 'DPkg::Options'), 'DPkg::Options')).toContain('--force-confold');
  });

  it("needrestart restarts services on its own under unattended-upgrades: the image's conf.d file sets mode 'a', which needrestart reads after its own file and never turns into list-only", async () => {
    const dir = (await debianPackage('needrestart', { suite })).dir;
    const main = await readFile(join(dir, 'etc/needrestart/needrestart.conf'), 'utf8');
    expect(main).toMatch(/foreach my \$fn \(sort <\/etc\/needrestart\/conf\.d\/\*\.conf>\)/);
    const program = await readFile(join(dir, 'usr/sbin/needrestart'), 'utf8');
    // Non-interactive (no tty, or DEBIAN_FRONTEND=noninteractive as unattended-upgrade sets it): only 'i' falls back.
    expect(program).toContain("$opt_r = 'l' if(!$is_tty && $opt_r eq 'i');");
    expect(await readFile(join(dir, 'etc/apt/apt.conf.d/99needrestart'), 'utf8')).toMatch(/DPkg::Post-Invoke \{"test -x \/usr\/lib\/needrestart\/apt-pinvoke/);
    const ours = (await rendered('tor-only')).get('/etc/needrestart/conf.d/50-simplex-pi.conf')!;
    const conf = join(await scratch('needrestart'), 'ours.conf');
    await writeFile(conf, ours);
    // As needrestart loads it: `eval` of the file with %nrconf in scope.
    const { stdout } = await execa('perl', ['-e', 'our %nrconf; my $c = do { local(@ARGV, $/) = $ARGV[0]; <> }; eval $c; die $@ if $@; print "$nrconf{restart} $nrconf{kernelhints}"', conf]);
    expect(stdout).toBe('a -1');
  });

  it('the timers run at a random time of the whole day: Debian\'s times removed, the drop-ins\' accepted by systemd', async () => {
    const apt = (await debianPackage('apt', { suite })).dir;
    const files = await rendered('tor-only');
    for (const timer of ['apt-daily.timer', 'apt-daily-upgrade.timer']) {
      const debian = await readFile(join(apt, suite === 'bookworm' ? 'lib/systemd/system' : 'usr/lib/systemd/system', timer), 'utf8');
      expect(debian, `Debian's ${timer}`).toMatch(/^OnCalendar=\*-\*-\* 6/m);
      const dropIn = files.get(`/etc/systemd/system/${timer}.d/50-simplex-pi-random.conf`)!;
      const lines = dropIn.split('\n');
      expect(lines.indexOf('OnCalendar='), timer).toBeGreaterThan(-1);
      expect(lines.indexOf('OnCalendar='), 'reset before the new time').toBeLessThan(lines.findIndex((l) => /^OnCalendar=\S/.test(l)));
      const delayHours = Number(/^RandomizedDelaySec=(\d+)h$/m.exec(dropIn)?.[1]);
      const calendar = /^OnCalendar=(\S.*)$/m.exec(dropIn)![1]!;
      // The times a day it starts, and the delay after each: together they cover all 24 hours.
      const starts = calendar.split(' ')[1]!.split(':')[0]!.split(',').length;
      expect(starts * delayHours, timer).toBeGreaterThanOrEqual(24);
      await execa('systemd-analyze', ['calendar', calendar]);
    }
  });
});

describe('apt through Tor only with outbound tor-only', () => {
  it('tor-only renders the tor method\'s settings (the Pi\'s SOCKS port, plain http off); open renders none and keeps plain apt', async () => {
    const torOnly = (await rendered('tor-only')).get('/etc/apt/apt.conf.d/50simplex-pi-apt-over-tor');
    expect(torOnly).toContain('Acquire::tor::Proxy "socks5h://apt-transport-tor@127.0.0.1:9050";');
    // apt's keys are case-insensitive; it prints them as it first met them.
    const methods = (await aptConfig({ tor: torOnly! }, 'Dir::Bin::Methods')).toLowerCase();
    expect(methods).toContain('dir::bin::methods::http "false";');
    expect(methods).toContain('dir::bin::methods::https "false";');
    expect((await rendered('open')).has('/etc/apt/apt.conf.d/50simplex-pi-apt-over-tor')).toBe(false);
  });

  it("configure rewrites a Raspberry Pi OS image's sources (pi-gen's files) to Tor, and refuses an image without apt's tor method", async () => {
    const root = await scratch('apt-root');
    await mkdir(join(root, 'etc/apt/sources.list.d'), { recursive: true });
    await writeFile(join(root, 'etc/apt/sources.list'), '');
    await writeFile(join(root, 'etc/apt/sources.list.d/debian.sources'), 'Types: deb\nURIs: http://deb.debian.org/debian/\nSuites: trixie trixie-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.pgp\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security/\nSuites: trixie-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.pgp\n');
    await writeFile(join(root, 'etc/apt/sources.list.d/raspi.sources'), 'Types: deb\nURIs: http://archive.raspberrypi.com/debian/\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/raspberrypi-archive-keyring.pgp\n');
    await expect(routeAptThroughTor(root)).rejects.toThrow(/no apt method tor\+http: apt-transport-tor was not installed/);
    await mkdir(join(root, 'usr/lib/apt/methods'), { recursive: true });
    await symlink('http', join(root, 'usr/lib/apt/methods/tor+http'));
    const changed = await routeAptThroughTor(root);
    expect(changed).toHaveLength(2);
    const debian = await readFile(join(root, 'etc/apt/sources.list.d/debian.sources'), 'utf8');
    expect(debian).toContain(`URIs: tor+http://${DEBIAN_ONIONS.archive}/debian/`);
    expect(debian).toContain(`URIs: tor+http://${DEBIAN_ONIONS.security}/debian-security/`);
    expect(await readFile(join(root, 'etc/apt/sources.list.d/raspi.sources'), 'utf8')).toContain('URIs: tor+http://archive.raspberrypi.com/debian/');
    // Done twice, nothing changes.
    expect(await routeAptThroughTor(root)).toEqual([]);
  });
});
