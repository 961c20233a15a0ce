import { describe, expect, it } from 'vitest';
import { type ReleaseManifest, manifestDate, parseReleaseManifest } from '../../builder/publish/read-manifest.ts';
import { packageChanges, presetChanges, releaseNotesMarkdown } from '../../builder/publish/release-notes-md.ts';

const hex = (c: string) => c.repeat(64);

function manifest(name: string, overrides: { simplexmq?: string; smpSha?: string; base?: Partial<ReleaseManifest['base']>; packages?: Array<[string, string]> } = {}): ReleaseManifest {
  const packages = overrides.packages ?? [['tor', '0.4.8.16-1'], ['nodejs', '20.19.2+dfsg-1'], ['libc6', '2.41-12'], ['zlib1g', '1:1.3.dfsg-3']];
  // Through the parser, as the release scripts read them: extra fields of a real manifest are dropped.
  return parseReleaseManifest(
    JSON.stringify({
      manifestVersion: 2,
      tool: { name: 'simplex-pi', version: '0.2.0', commit: 'abcdef123456' },
      sourceDate: { epoch: 1772582400, iso: '2026-03-04T00:00:00.000Z', from: "the base's release date (2026-03-04)" },
      recipe: { name, path: `/src/recipes/${name}.yaml`, sha256: hex('c') },
      plan: { description: `Relays for ${name}`, models: ['pi4', 'pi5'], smp: { instances: 2 } },
      base: {
        provider: 'raspios',
        path: '/cache/bases/x.img',
        sha256: hex('1'),
        description: 'Raspberry Pi OS Lite (64-bit) 2025-10-01',
        url: 'https://downloads.raspberrypi.com/raspios_lite_arm64/images/2025-10-01-raspios-trixie-arm64-lite.img.xz',
        downloadSha256: hex('2'),
        releaseDate: '2025-10-01',
        initFormat: 'systemd',
        ...overrides.base,
      },
      packages: packages.map(([n, version]) => ({ name: n, version, architecture: 'arm64' })),
      simplexmq: {
        version: overrides.simplexmq ?? '6.5.2',
        binaries: [
          { name: 'smp-server', sha256: overrides.smpSha ?? hex('a'), sha256Source: 'release-notes', reportedVersion: 'SMP server v6.5.2.0' },
          { name: 'xftp-server', sha256: hex('b'), sha256Source: 'release-notes' },
        ],
      },
      outputs: [
        { name: `${name}.img`, size: 3 * 1024 ** 3, sha256: hex('d') },
        { name: `${name}.img.xz`, size: 600 * 1024 ** 2, sha256: hex('e') },
      ],
      stageSeconds: { base: 1 },
    }),
    `${name}.manifest.json`,
  );
}

const input = {
  tag: 'v0.3.0',
  downloadUrl: 'https://github.com/o/simplex-pi/releases/download/v0.3.0',
  osListName: 'os-list.json',
};

describe('package changes between two builds', () => {
  it('lists changed, added and removed packages by name, and nothing that stayed', () => {
    const before = manifest('family').packages;
    const after = manifest('family', { packages: [['tor', '0.4.8.17-1'], ['nodejs', '20.19.2+dfsg-1'], ['libc6', '2.41-13'], ['nftables', '1.1.3-1']] }).packages;
    expect(packageChanges(before, after)).toEqual([
      { name: 'libc6', from: '2.41-12', to: '2.41-13' },
      { name: 'nftables', from: undefined, to: '1.1.3-1' },
      { name: 'tor', from: '0.4.8.16-1', to: '0.4.8.17-1' },
      { name: 'zlib1g', from: '1:1.3.dfsg-3', to: undefined },
    ]);
    expect(packageChanges(before, before)).toEqual([]);
  });

  it('headlines simplexmq, the base and the packages people ask about; the rest in a list', () => {
    const before = manifest('family', { simplexmq: '6.5.1' });
    const after = manifest('family', {
      base: { sha256: hex('3'), description: 'Raspberry Pi OS Lite (64-bit) 2026-02-01', url: 'https://downloads.raspberrypi.com/new.img.xz' },
      packages: [['tor', '0.4.8.17-1'], ['nodejs', '20.19.2+dfsg-1'], ['libc6', '2.41-13'], ['zlib1g', '1:1.3.dfsg-3']],
    });
    const changes = presetChanges(before, after);
    expect(changes.headline).toEqual([
      'simplexmq 6.5.1 → 6.5.2',
      'base: Raspberry Pi OS Lite (64-bit) 2025-10-01 (https://downloads.raspberrypi.com/raspios_lite_arm64/images/2025-10-01-raspios-trixie-arm64-lite.img.xz) → Raspberry Pi OS Lite (64-bit) 2026-02-01 (https://downloads.raspberrypi.com/new.img.xz)',
      'tor 0.4.8.16-1 → 0.4.8.17-1',
    ]);
    expect(changes.otherPackages).toEqual([{ name: 'libc6', from: '2.41-12', to: '2.41-13' }]);
  });

  it('notices a binary that changed without a version change', () => {
    const changes = presetChanges(manifest('solo'), manifest('solo', { smpSha: hex('f') }));
    expect(changes.headline).toEqual([`smp-server: same version, another binary (sha256 ${hex('a')} → ${hex('f')})`]);
  });
});

describe('the release notes', () => {
  it('give each preset\'s base, simplexmq, Tor, sizes and where to get Imager\'s repository', () => {
    const text = releaseNotesMarkdown({ ...input, manifests: [manifest('family'), manifest('team', { simplexmq: '6.5.3' })] });
    expect(text).toMatch(/^# simplex-pi v0\.3\.0$/m);
    expect(text).toContain('| family | Relays for family | 5, 4 | 6.5.2 | 0.4.8.16-1 | 600.0 MiB |');
    expect(text).toContain('| team | Relays for team | 5, 4 | 6.5.3 | 0.4.8.16-1 | 600.0 MiB |');
    expect(text).toContain('rpi-imager --repo https://github.com/o/simplex-pi/releases/download/v0.3.0/os-list.json');
    expect(text).toContain('simplex-pi verify https://github.com/o/simplex-pi/releases/download/v0.3.0 --pubkey');
    expect(text).toMatch(/^### family$/m);
    expect(text).toContain(`- Base: Raspberry Pi OS Lite (64-bit) 2025-10-01, released 2025-10-01, from https://downloads.raspberrypi.com/raspios_lite_arm64/images/2025-10-01-raspios-trixie-arm64-lite.img.xz (sha256 \`${hex('2')}\`); uncompressed image sha256 \`${hex('1')}\``);
    expect(text).toContain(`- simplexmq 6.5.2: smp-server sha256 \`${hex('a')}\`, xftp-server sha256 \`${hex('b')}\``);
    expect(text).toContain('- Tor 0.4.8.16-1');
    expect(text).toContain(`- Image: \`family.img.xz\` 600.0 MiB, 3.0 GiB uncompressed (sha256 \`${hex('d')}\`)`);
    expect(text).toContain('- Dated 2026-03-04, built by simplex-pi 0.2.0 (abcdef123456)');
    // Without a previous release there is nothing to compare with.
    expect(text).not.toMatch(/since v0\.2/);
  });

  it('say what changed against the previous release, which presets are new and which are gone', () => {
    const previous = { tag: 'v0.2.0', manifests: [manifest('family', { simplexmq: '6.5.1', packages: [['tor', '0.4.8.15-1'], ['libc6', '2.41-12']] }), manifest('solo'), manifest('old')] };
    const text = releaseNotesMarkdown({ ...input, manifests: [manifest('family'), manifest('solo'), manifest('team')], previous });
    const family = text.slice(text.indexOf('### family'), text.indexOf('### solo'));
    expect(family).toContain('- Changed since v0.2.0:\n  - simplexmq 6.5.1 → 6.5.2\n  - nodejs 20.19.2+dfsg-1 (added)\n  - tor 0.4.8.15-1 → 0.4.8.16-1\n');
    expect(family).toContain('  - 1 other Debian package(s):');
    expect(family).toContain('    - zlib1g 1:1.3.dfsg-3 (added)');
    expect(text).toContain('- Unchanged since v0.2.0, apart from the build date.');
    expect(text.slice(text.indexOf('### team'))).toContain('- New in this release (not in v0.2.0).');
    expect(text).toContain('Not in this release any more: old.');
  });

  it('reading a manifest names the file that is not one', () => {
    expect(() => parseReleaseManifest('{"manifestVersion": 1}', 'x.manifest.json')).toThrow(/x\.manifest\.json is not a simplex-pi build manifest: tool/);
    expect(() => parseReleaseManifest('nope', 'y.manifest.json')).toThrow(/y\.manifest\.json is not JSON/);
  });

  it("an earlier release's manifest (version 1, dated by the build's clock) is still read, and dated by it", () => {
    const current = JSON.parse(JSON.stringify(manifest('family')));
    const { sourceDate: _, ...rest } = current;
    const old = parseReleaseManifest(JSON.stringify({ ...rest, manifestVersion: 1, builtAt: '2026-01-02T03:04:05.000Z' }), 'old.manifest.json');
    expect(manifestDate(old)).toBe('2026-01-02T03:04:05.000Z');
    expect(manifestDate(manifest('family'))).toBe('2026-03-04T00:00:00.000Z');
    expect(() => parseReleaseManifest(JSON.stringify(rest), 'undated.manifest.json')).toThrow(/undated\.manifest\.json is not a simplex-pi build manifest: .*neither sourceDate nor builtAt/);
  });
});
