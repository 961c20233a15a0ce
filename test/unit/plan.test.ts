import { describe, expect, it } from 'vitest';
import { applyIni, iniSettings, readIni } from '../../builder/device/ini.ts';
import { RELAY_METRICS_INTERVAL_SECONDS, resolvePlan } from '../../builder/plan/plan.ts';
import { parseRecipe } from '../../builder/recipe/load.ts';
import { baseSchema } from '../../builder/recipe/schema.ts';
import { baseOverride } from '../../builder/recipe/base-override.ts';

describe('recipe -> BuildPlan', () => {
  it('numbers SMP instances with their own local ports and names', () => {
    const plan = resolvePlan(parseRecipe('name: t\nsmp:\n  instances: 3\n', 'r'));
    expect(plan.smp.instances.map(({ index, name, unit, localPort, cfgPath, logPath }) => ({ index, name, unit, localPort, cfgPath, logPath }))).toEqual([
      { index: 1, name: 'smp1', unit: 'simplex-smp@1.service', localPort: 5301, cfgPath: '/etc/opt/simplex-smp1', logPath: '/var/opt/simplex-smp1' },
      { index: 2, name: 'smp2', unit: 'simplex-smp@2.service', localPort: 5302, cfgPath: '/etc/opt/simplex-smp2', logPath: '/var/opt/simplex-smp2' },
      { index: 3, name: 'smp3', unit: 'simplex-smp@3.service', localPort: 5303, cfgPath: '/etc/opt/simplex-smp3', logPath: '/var/opt/simplex-smp3' },
    ]);
    expect(plan.smp.instances[1]!.onion).toEqual({ name: 'simplex-smp2', dir: '/var/lib/tor/simplex-smp2', virtualPort: 5223, localPort: 5302 });
    expect(plan.tor.services.map((s) => s.name)).toEqual(['simplex-smp1', 'simplex-smp2', 'simplex-smp3', 'simplex-xftp']);
    expect(new Set([...plan.smp.instances.map((i) => i.localPort), plan.xftp!.localPort]).size).toBe(4);
  });

  it('defaults the binaries to the aarch64 release assets verified by the lock file (simplexmq.lock.json)', () => {
    const plan = resolvePlan(parseRecipe('name: t\nsimplexmq:\n  version: v6.5.2\n', 'r'));
    expect(plan.simplexmq.version).toBe('6.5.2');
    expect(plan.simplexmq.releaseNotesUrl).toBe('https://api.github.com/repos/simplex-chat/simplexmq/releases/tags/v6.5.2');
    expect(plan.simplexmq.binaries).toEqual([
      {
        name: 'smp-server',
        asset: 'smp-server-ubuntu-22_04-aarch64',
        url: 'https://github.com/simplex-chat/simplexmq/releases/download/v6.5.2/smp-server-ubuntu-22_04-aarch64',
        sha256: 'lock',
        installPath: '/usr/local/bin/smp-server',
      },
      expect.objectContaining({ name: 'xftp-server', asset: 'xftp-server-ubuntu-22_04-aarch64', sha256: 'lock' }),
    ]);
  });

  it('leaves xftp-server out when XFTP is disabled, and keeps a local path with its sha256', () => {
    const sha = 'A'.repeat(64);
    const plan = resolvePlan(parseRecipe(`name: t\nxftp:\n  enabled: false\nsimplexmq:\n  smp_server:\n    path: /opt/smp\n    sha256: ${sha}\n`, 'r'));
    expect(plan.simplexmq.binaries).toEqual([{ name: 'smp-server', asset: 'smp-server-ubuntu-22_04-aarch64', path: '/opt/smp', sha256: 'a'.repeat(64), installPath: '/usr/local/bin/smp-server' }]);
  });

  it('fills {version} in a recipe URL', () => {
    const plan = resolvePlan(parseRecipe('name: t\nsimplexmq:\n  version: 6.5.1\n  smp_server:\n    url: https://mirror.example/v{version}/smp\n    sha256: release-notes\n', 'r'));
    expect(plan.simplexmq.binaries[0]!.url).toBe('https://mirror.example/v6.5.1/smp');
  });

  it('takes a --base override, and always installs the runtime packages', () => {
    const recipe = parseRecipe('name: t\n', 'r');
    const plan = resolvePlan(recipe, { base: baseSchema.parse({ provider: 'debian', suite: 'trixie' }) });
    expect(plan.base).toMatchObject({ provider: 'debian', suite: 'trixie' });
    // Named here, not taken from plan.ts, so dropping one fails: Tor and the firewall; Node for the device program;
    // openssl, which `init` calls; what the GHC-built binaries link against; mtools for the USB export; tzdata
    // for the recipe's time zone; unattended-upgrades and needrestart for security updates, apt-transport-tor for
    // apt through Tor (outbound tor-only, the default). No SSH packages: this recipe turns SSH off.
    expect([...plan.packages].sort()).toEqual(['apt-transport-tor', 'libffi8', 'libgmp10', 'libnuma1', 'mtools', 'needrestart', 'nftables', 'nodejs', 'openssl', 'tor', 'tzdata', 'unattended-upgrades', 'zlib1g']);
  });

  it('has every relay write its Prometheus metrics file (status reads the counts there), on the commented line init wrote', () => {
    const plan = resolvePlan(parseRecipe('name: t\nsmp: { instances: 2 }\n', 'r'));
    const metrics = { section: 'STORE_LOG', key: 'prometheus_interval', value: String(RELAY_METRICS_INTERVAL_SECONDS) };
    for (const relay of [...plan.smp.instances, plan.xftp!]) expect(relay.ini, relay.name).toContainEqual(metrics);
    // simplexmq 6.4.x init writes `key: value`, its default commented out so (v6.4.5 Server/Main/Init.hs
    // iniFileContent, FileTransfer/Server/Main.hs); 6.5.x the same with ` = ` (the stand-in's init, in
    // standin-contract.test.ts). The key is set on that line, not added as a second one.
    const v645 = [
      '[STORE_LOG]',
      '# Messages and notifications expiration periods.',
      'expire_messages_days: 21',
      'expire_messages_on_start: on',
      'expire_ntfs_hours: 24',
      '',
      '# Log daily server statistics to CSV file',
      'log_stats: off',
      '',
      '# Log interval for real-time Prometheus metrics',
      '# prometheus_interval: 60',
      '',
      '[AUTH]',
      'new_queues: on',
      '',
    ].join('\n');
    const applied = applyIni(v645, [metrics]);
    expect(applied).toBe(v645.replace('# prometheus_interval: 60', `prometheus_interval = ${RELAY_METRICS_INTERVAL_SECONDS}`));
    expect(readIni(applied, 'STORE_LOG', 'prometheus_interval')).toBe(String(RELAY_METRICS_INTERVAL_SECONDS));
    expect(iniSettings(applied).filter((s) => s.key === 'prometheus_interval')).toHaveLength(1);
  });
});

describe('--base on the command line', () => {
  const debianRecipeBase = baseSchema.parse({ provider: 'debian', suite: 'trixie' });
  const fileRecipeBase = baseSchema.parse({ provider: 'file', path: '/img/a.img', sha256: 'b'.repeat(64) });

  it('keeps the recipe settings of the same provider, and uses defaults for another', () => {
    expect(baseOverride('debian')(debianRecipeBase)).toBe(debianRecipeBase);
    expect(baseOverride('debian')(fileRecipeBase)).toMatchObject({ provider: 'debian', suite: 'bookworm' });
    expect(baseOverride('raspios')(debianRecipeBase)).toMatchObject({ provider: 'raspios', os_name: 'Raspberry Pi OS Lite (64-bit)' });
  });

  it('takes file:PATH with --base-sha256 or the recipe\'s sha256, and refuses it without one', () => {
    expect(baseOverride('file:/x/b.img.xz', 'C'.repeat(64))(debianRecipeBase)).toEqual({ provider: 'file', path: '/x/b.img.xz', sha256: 'c'.repeat(64) });
    expect(baseOverride('file:/x/b.img')(fileRecipeBase)).toEqual({ provider: 'file', path: '/x/b.img', sha256: 'b'.repeat(64) });
    expect(() => baseOverride('file:/x/b.img')(debianRecipeBase)).toThrow('--base file:/x/b.img needs the image\'s sha256');
    expect(() => baseOverride('file:/x/b.img', 'xyz')(debianRecipeBase)).toThrow('--base-sha256: must be a sha256');
    expect(() => baseOverride('windows')(debianRecipeBase)).toThrow('--base must be raspios, debian or file:PATH (got "windows")');
  });
});
