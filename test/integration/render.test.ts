import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BuildPlan } from '../../builder/plan/plan.ts';
import { listPresets } from '../../builder/recipe/presets.ts';
import { cli, isRoot, scratch } from '../helpers/env.ts';
import { nftCheck, sshdCheck, systemdExposure, systemdRoot, systemdVerify, torVerify } from '../helpers/real-tools.ts';

const presets = await listPresets();

async function render(recipe: string): Promise<{ out: string; rootfs: string; plan: BuildPlan }> {
  const out = join(await scratch('render'), 'out');
  const result = await cli(['render', '--recipe', recipe, '--out', out]);
  if (result.exitCode !== 0) throw new Error(result.all);
  return { out, rootfs: join(out, 'rootfs'), plan: JSON.parse(await readFile(join(out, 'plan.json'), 'utf8')) };
}

describe.each(presets.map((p) => [p.recipe.name, p.file] as const))('preset %s, rendered and checked by the real tools', (_name, file) => {
  let rendered: Awaited<ReturnType<typeof render>>;
  beforeAll(async () => {
    rendered = await render(file);
  });

  it('tor --verify-config accepts the onion services (DisableNetwork 1)', async () => {
    const result = await torVerify(rendered.rootfs);
    expect(result.ok, result.output).toBe(true);
  });

  it.runIf(isRoot)('nft -c accepts the firewall', async () => {
    const result = await nftCheck(rendered.rootfs);
    expect(result.ok, result.output).toBe(true);
  });

  it('sshd -t accepts the SSH settings when SSH is on, and there are none when it is off', async () => {
    const dropIn = join(rendered.rootfs, 'etc/ssh/sshd_config.d/50-simplex-pi.conf');
    if (!rendered.plan.ssh.enabled) {
      expect(existsSync(dropIn)).toBe(false);
      return;
    }
    const result = await sshdCheck(rendered.rootfs);
    expect(result.ok, result.output).toBe(true);
  });

  it('systemd-analyze verify has nothing to say about the relay units, and each is sandboxed to an exposure of 2.0 or less', async () => {
    const root = await systemdRoot(rendered.rootfs);
    const units = [...rendered.plan.smp.instances.map((i) => i.unit), ...(rendered.plan.xftp ? [rendered.plan.xftp.unit] : [])];
    expect(await systemdVerify(root, units)).toBe('');
    for (const unit of [units[0]!, units.at(-1)!]) expect(await systemdExposure(root, unit)).toBeLessThanOrEqual(2.0);
  });
});

describe('team: the published guide\'s topology without its mistakes', () => {
  let rendered: Awaited<ReturnType<typeof render>>;
  let torConf: string;
  beforeAll(async () => {
    rendered = await render('recipes/team.yaml');
    torConf = await readFile(join(rendered.rootfs, 'etc/tor/torrc.d/50-simplex-pi.conf'), 'utf8');
  });

  it('has 10 SMP onion services on virtual port 5223, XFTP on 443 and SSH on 22, each its own directory under /var/lib/tor', () => {
    const services = [...torConf.matchAll(/HiddenServiceDir (\S+)\nHiddenServicePort (\d+) 127\.0\.0\.1:(\d+)/g)].map((m) => ({ dir: m[1]!, port: Number(m[2]), target: Number(m[3]) }));
    expect(services).toHaveLength(12);
    const smp = services.filter((s) => s.dir.includes('simplex-smp'));
    expect(smp).toHaveLength(10);
    expect(new Set(smp.map((s) => s.port))).toEqual(new Set([5223]));
    expect(new Set(smp.map((s) => s.target)).size).toBe(10);
    expect(services.find((s) => s.dir.endsWith('simplex-xftp'))?.port).toBe(443);
    expect(services.find((s) => s.dir.endsWith('simplex-ssh'))).toEqual({ dir: '/var/lib/tor/simplex-ssh', port: 22, target: 22 });
    for (const s of services) expect(s.dir).toMatch(/^\/var\/lib\/tor\/[a-z0-9-]+$/);
  });

  it('mistake avoided: the SOCKS proxy is set in [PROXY] as 127.0.0.1:9050, not localhost (which simplexmq cannot parse)', () => {
    for (const instance of rendered.plan.smp.instances) {
      expect(instance.ini).toContainEqual({ section: 'PROXY', key: 'socks_proxy', value: '127.0.0.1:9050' });
      expect(instance.ini.filter((s) => s.key === 'socks_proxy')).toHaveLength(1);
    }
    expect(torConf).toContain('SocksPort 127.0.0.1:9050');
  });

  it('mistake avoided: socks_mode is always, never onion (which connects to public relays over the clearnet)', () => {
    for (const instance of rendered.plan.smp.instances) {
      expect(instance.ini).toContainEqual({ section: 'PROXY', key: 'socks_mode', value: 'always' });
    }
  });

  it('mistake avoided: HTTPS is disabled at init (it needs a certificate the relay does not have)', () => {
    for (const instance of rendered.plan.smp.instances) expect(instance.initArgs).toEqual(expect.arrayContaining(['init', '-y', '--disable-web']));
  });

  it('mistake avoided: one local port per relay, never a comma list, all distinct', () => {
    const ports = rendered.plan.smp.instances.map((i) => i.ini.find((s) => s.section === 'TRANSPORT' && s.key === 'port')!.value);
    for (const port of ports) expect(port).toMatch(/^\d+$/);
    expect(new Set([...ports, String(rendered.plan.xftp!.localPort)]).size).toBe(11);
  });

  it('mistake avoided: no symlink or BindPaths trick; each instance is chosen with SMP_SERVER_CFG_PATH and SMP_SERVER_LOG_PATH', async () => {
    const unit = await readFile(join(rendered.rootfs, 'etc/systemd/system/simplex-smp@.service'), 'utf8');
    expect(unit).toContain('Environment=SMP_SERVER_CFG_PATH=/etc/opt/simplex-smp%i');
    expect(unit).toContain('Environment=SMP_SERVER_LOG_PATH=/var/opt/simplex-smp%i');
    expect(unit).not.toMatch(/BindPaths|ln -s/);
    expect(unit).toMatch(/^User=simplex$/m);
  });

  it('mistake avoided: no relay port and no SSH port open to the network (input policy drop)', async () => {
    const nft = await readFile(join(rendered.rootfs, 'etc/nftables.conf'), 'utf8');
    expect(nft).toMatch(/chain input \{\n\t\ttype filter hook input priority filter; policy drop;/);
    for (const port of [...rendered.plan.smp.instances.map((i) => i.localPort), rendered.plan.xftp!.localPort, 22]) expect(nft).not.toMatch(new RegExp(`dport ${port}\\b`));
  });

  it('mistake avoided: sshd listens on 127.0.0.1 only, keys only, no root login', async () => {
    const { effective } = await sshdCheck(rendered.rootfs);
    expect(effective.get('listenaddress')).toEqual(['127.0.0.1:22']);
    expect(effective.get('passwordauthentication')).toEqual(['no']);
    expect(effective.get('kbdinteractiveauthentication')).toEqual(['no']);
    expect(effective.get('permitrootlogin')).toEqual(['no']);
    expect(effective.get('authenticationmethods')).toEqual(['publickey']);
  });
});
