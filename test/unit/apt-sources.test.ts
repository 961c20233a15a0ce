import { describe, expect, it } from 'vitest';
import { DEBIAN_ONIONS, isClearnetUri, sourceUris, torDeb822, torSourcesList, torUri } from '../../builder/image/apt-sources.ts';
import { resolvePlan } from '../../builder/plan/plan.ts';
import { parseRecipe } from '../../builder/recipe/load.ts';

const ARCHIVE = `tor+http://${DEBIAN_ONIONS.archive}/debian`;
const SECURITY = `tor+http://${DEBIAN_ONIONS.security}/debian-security`;

describe('apt sources through Tor (network.outbound tor-only)', () => {
  it("sends Debian's archive and security archive to Debian's onion services, whichever Debian host the base names", () => {
    expect(torUri('http://deb.debian.org/debian', 'x')).toBe(ARCHIVE);
    expect(torUri('https://deb.debian.org/debian/', 'x')).toBe(`${ARCHIVE}/`);
    expect(torUri('http://ftp.debian.org/debian', 'x')).toBe(ARCHIVE);
    expect(torUri('http://deb.debian.org/debian-security', 'x')).toBe(SECURITY);
    expect(torUri('http://security.debian.org/debian-security/', 'x')).toBe(`${SECURITY}/`);
  });

  it("reaches every other archive through a Tor exit (Raspberry Pi's has no onion service), and leaves tor+ and local URIs alone", () => {
    expect(torUri('http://archive.raspberrypi.com/debian/', 'x')).toBe('tor+http://archive.raspberrypi.com/debian/');
    expect(torUri('https://mirror.example.org/debian', 'x')).toBe('tor+https://mirror.example.org/debian');
    // A Debian host on another port, or another path, is not the archive the onion serves.
    expect(torUri('http://deb.debian.org:8080/debian', 'x')).toBe('tor+http://deb.debian.org:8080/debian');
    expect(torUri('http://security.debian.org/debian', 'x')).toBe('tor+http://security.debian.org/debian');
    expect(torUri(ARCHIVE, 'x')).toBe(ARCHIVE);
    expect(torUri('file:/srv/repo', 'x')).toBe('file:/srv/repo');
  });

  it('refuses a source it cannot carry through Tor, naming the file and what to do', () => {
    expect(() => torUri('mirror+http://deb.debian.org/mirrors.txt', "the image's /etc/apt/sources.list")).toThrow(/sources\.list: the source mirror\+http.* cannot be carried through Tor.*network\.outbound: open/);
  });

  it("rewrites a one-line sources.list as mmdebstrap writes the Debian base's, options and comments kept", () => {
    const text = [
      '# the base',
      'deb http://deb.debian.org/debian bookworm main',
      'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-updates main',
      'deb-src http://deb.debian.org/debian-security bookworm-security main',
      '',
    ].join('\n');
    expect(torSourcesList(text, 'x')).toBe(
      [
        '# the base',
        `deb ${ARCHIVE} bookworm main`,
        `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${ARCHIVE} bookworm-updates main`,
        `deb-src ${SECURITY} bookworm-security main`,
        '',
      ].join('\n'),
    );
  });

  it("rewrites deb822 .sources as Raspberry Pi OS ships them (pi-gen's debian.sources and raspi.sources), URIs only", () => {
    const debian = [
      'Types: deb',
      'URIs: http://deb.debian.org/debian/',
      'Suites: trixie trixie-updates',
      'Components: main contrib non-free non-free-firmware',
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.pgp',
      '',
      'Types: deb',
      'URIs: http://deb.debian.org/debian-security/',
      'Suites: trixie-security',
      '# URIs: http://example.org/commented',
      '',
    ].join('\n');
    const out = torDeb822(debian, 'x');
    expect(sourceUris(out, true)).toEqual([`${ARCHIVE}/`, `${SECURITY}/`]);
    expect(out).toContain('Signed-By: /usr/share/keyrings/debian-archive-keyring.pgp');
    expect(out).toContain('# URIs: http://example.org/commented');
    const raspi = 'Types: deb\nURIs: http://archive.raspberrypi.com/debian/\nSuites: trixie\nComponents: main\n';
    expect(sourceUris(torDeb822(raspi, 'x'), true)).toEqual(['tor+http://archive.raspberrypi.com/debian/']);
    // Several URIs, one on a continuation line.
    const several = 'Types: deb\nURIs: http://a.example/debian\n http://b.example/debian\nSuites: x\n';
    expect(sourceUris(torDeb822(several, 'x'), true)).toEqual(['tor+http://a.example/debian', 'tor+http://b.example/debian']);
  });

  it('knows a clearnet URI when it sees one (what a tor-only image must never ship)', () => {
    expect(['http://a/', 'HTTPS://b/'].every(isClearnetUri)).toBe(true);
    expect([ARCHIVE, 'tor+https://x/', 'file:/x'].some(isClearnetUri)).toBe(false);
  });
});

describe('the packages security updates need', () => {
  it('unattended-upgrades and needrestart always; apt-transport-tor only with outbound tor-only (open keeps plain apt)', () => {
    const torOnly = resolvePlan(parseRecipe('name: t\n', 'r')).packages;
    const open = resolvePlan(parseRecipe('name: t\nnetwork:\n  outbound: open\n', 'r')).packages;
    expect(torOnly).toEqual(expect.arrayContaining(['unattended-upgrades', 'needrestart', 'apt-transport-tor']));
    expect(open).toEqual(expect.arrayContaining(['unattended-upgrades', 'needrestart']));
    expect(open).not.toContain('apt-transport-tor');
  });
});
