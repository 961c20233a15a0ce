import { describe, expect, it } from 'vitest';
import { formatCheck, nodeCheck, nodeMinimum, parseRequirements, readRequirements, toolsCheck, versionAtLeast } from '../../builder/host-check.mjs';

describe('host requirements (builder/host-requirements.txt)', () => {
  it('has a package, a known need and a reason for every program or file', () => {
    const requirements = readRequirements();
    expect(requirements.length).toBeGreaterThan(20);
    for (const r of requirements) {
      expect(r.package, r.what).toMatch(/^[a-z0-9][a-z0-9+.-]+$/);
      expect(['build', 'test', 'pinned-node'], r.what).toContain(r.need);
      expect(r.why.length, r.what).toBeGreaterThan(10);
    }
    // The ones a fresh host lacked (issue 10): without arch-test mmdebstrap refuses arm64.
    expect(requirements.find((r) => r.what === 'arch-test')).toMatchObject({ package: 'arch-test', need: 'build' });
  });

  it('refuses a line with a missing column, naming it', () => {
    expect(() => parseRequirements('mmdebstrap mmdebstrap build\n')).toThrow(/"mmdebstrap mmdebstrap build" needs four columns/);
  });

  it('names every missing tool with its package and why, and one apt-get command for all', () => {
    const requirements = parseRequirements(
      ['# comment', 'mmdebstrap mmdebstrap build bootstraps', 'arch-test arch-test build mmdebstrap needs it', 'e2fsck e2fsprogs build checks', 'resize2fs e2fsprogs build grows', 'tor tor test only tests'].join('\n'),
    );
    const check = toolsCheck(requirements, (what) => what === 'mmdebstrap');
    expect(check.ok).toBe(false);
    expect(check.detail.split('\n')).toEqual([
      'missing 3 of 4: `sudo apt-get install arch-test e2fsprogs`, or `sudo ci/setup-host.sh`',
      'arch-test (package arch-test): mmdebstrap needs it',
      'e2fsck (package e2fsprogs): checks',
      'resize2fs (package e2fsprogs): grows',
    ]);
    expect(toolsCheck(requirements, () => true)).toEqual({ name: 'tools', ok: true, detail: '4 programs and files found' });
  });

  it('indents the further lines of a check under the first', () => {
    expect(formatCheck({ name: 'tools', ok: false, detail: 'missing 1 of 2\nxz (package xz-utils): why' })).toBe('FAIL  tools   missing 1 of 2\n                xz (package xz-utils): why');
  });
});

describe('Node.js version', () => {
  it('reads the minimum from package.json', () => {
    expect(nodeMinimum()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it.each([
    ['v18.19.0', '18.19.0', true],
    ['18.20.4', '18.19.0', true],
    ['20.19.2', '18.19.0', true],
    ['18.18.2', '18.19.0', false],
    ['12.22.12', '18.19.0', false],
    ['18.19.1+dfsg-6ubuntu5', '18.19.0', true],
    ['18.9.0', '18.19.0', false],
  ])('%s against %s: %s', (version, minimum, ok) => {
    expect(versionAtLeast(version, minimum)).toBe(ok);
  });

  it('says when Node.js is too old, which one, and what to run', () => {
    const check = nodeCheck('12.22.12', '/usr/bin/node');
    expect(check.ok).toBe(false);
    expect(check.detail).toContain(`Node.js 12.22.12 (/usr/bin/node) is too old: simplex-pi needs ${nodeMinimum()} or newer`);
    expect(check.detail).toContain('`sudo ci/setup-host.sh`');
    expect(nodeCheck(nodeMinimum(), '/usr/bin/node').ok).toBe(true);
  });
});
