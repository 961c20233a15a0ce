import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../builder/errors.ts';
import { checkFirewallUsers, firewallUsersProblem } from '../../builder/image/firewall-users.ts';
import { type BuildPlan, resolvePlan } from '../../builder/plan/plan.ts';
import { relaysOf } from '../../builder/plan/relays.ts';
import { parseRecipe } from '../../builder/recipe/load.ts';
import { type ImageFacts, OVERLAYS, renderImageFiles } from '../../builder/render/render.ts';
import { scratch } from '../helpers/env.ts';

const plan = (yaml = '') => resolvePlan(parseRecipe(`name: t\nsmp: { instances: 2 }\n${yaml}`, 'test'));
const TOR_ONLY = plan();
const OPEN = plan('network: { outbound: open }\n');

/** Accounts as the bases have them: Raspberry Pi OS (no systemd-resolved), the Debian base (with it). */
const ACCOUNTS = {
  raspios: ['root', 'nobody', 'systemd-network', 'systemd-timesync', 'debian-tor'],
  debian: ['root', 'nobody', 'systemd-network', 'systemd-timesync', 'systemd-resolve', 'debian-tor'],
};
const passwd = (names: string[]) => names.map((name, i) => `${name}:x:${i === 0 ? 0 : 100 + i}:${i === 0 ? 0 : 100 + i}::/nonexistent:/usr/sbin/nologin\n`).join('');

async function rendered(p: BuildPlan, image: ImageFacts = {}): Promise<Map<string, string>> {
  return new Map((await renderImageFiles(p, OVERLAYS, image)).filter((e) => e.content).map((e) => [e.path, e.content!.toString()]));
}
const chain = (ruleset: string, name: string) => /chain (\w+) \{([\s\S]*?)\n\t\}/g.exec(ruleset.slice(ruleset.indexOf(`chain ${name} {`)))![2]!;
const named = (ruleset: string) => [...ruleset.matchAll(/meta skuid "([^"]+)"/g)].map((m) => m[1]!);

describe('the accounts the firewall names, against the image', () => {
  it('a tor-only build is refused when the image lacks systemd-timesyncd, saying why and what to do', () => {
    const problem = firewallUsersProblem(passwd(ACCOUNTS.raspios.filter((n) => n !== 'systemd-timesync')), TOR_ONLY);
    expect(problem).toMatch(/^the image has no "systemd-timesync" account: systemd-timesyncd is not installed\./);
    expect(problem).toContain('Tor does not work with a wrong clock');
    expect(problem).toContain('or set network.outbound: open.');
    expect(firewallUsersProblem(passwd(ACCOUNTS.raspios.filter((n) => n !== 'debian-tor')), TOR_ONLY)).toMatch(/^the image has no "debian-tor" account/);
  });

  it('accepts both bases, and with outbound open needs no account at all', () => {
    expect(firewallUsersProblem(passwd(ACCOUNTS.raspios), TOR_ONLY)).toBeUndefined();
    expect(firewallUsersProblem(passwd(ACCOUNTS.debian), TOR_ONLY)).toBeUndefined();
    expect(firewallUsersProblem(passwd(['root']), OPEN)).toBeUndefined();
  });

  it("configure reads the image's own /etc/passwd: its accounts, or a UserError", async () => {
    const root = await scratch('fw-root');
    await mkdir(join(root, 'etc'));
    await writeFile(join(root, 'etc/passwd'), passwd(ACCOUNTS.debian));
    expect([...(await checkFirewallUsers(root, TOR_ONLY))].sort()).toEqual([...ACCOUNTS.debian].sort());
    await writeFile(join(root, 'etc/passwd'), passwd(['root', 'debian-tor']));
    await expect(checkFirewallUsers(root, TOR_ONLY)).rejects.toThrow(UserError);
  });

  it.each([
    ['without an image (simplex-pi render)', undefined, ['debian-tor', 'systemd-timesync']],
    ['for Raspberry Pi OS', ACCOUNTS.raspios, ['debian-tor', 'systemd-timesync']],
    ['for the Debian base', ACCOUNTS.debian, ['debian-tor', 'systemd-timesync', 'systemd-resolve']],
  ])('the tor-only ruleset %s names only accounts every accepted image of that kind has', async (_what, users, expected) => {
    const nft = (await rendered(TOR_ONLY, users ? { users: new Set(users) } : {})).get('/etc/nftables.conf')!;
    expect(new Set(named(nft))).toEqual(new Set(expected));
    for (const name of named(nft)) if (users) expect(users).toContain(name);
  });

  it('with outbound open, the output chain accepts everything and names no account', async () => {
    const nft = (await rendered(OPEN, { users: new Set(ACCOUNTS.debian) })).get('/etc/nftables.conf')!;
    expect(chain(nft, 'output')).toMatch(/^\s*type filter hook output priority filter; policy accept;\s*$/);
    expect(named(nft)).toEqual([]);
  });
});

describe('the tor-only output chain', () => {
  it('lets DNS out only for systemd-timesyncd and systemd-resolved, NTP only for systemd-timesyncd, DHCP only from the client ports', async () => {
    const output = chain((await rendered(TOR_ONLY, { users: new Set(ACCOUNTS.debian) })).get('/etc/nftables.conf')!, 'output');
    const rules = output.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#') && !l.startsWith('type '));
    for (const rule of rules.filter((r) => /dport (53|123)\b/.test(r))) expect(rule).toMatch(/^meta skuid "(systemd-timesync|systemd-resolve)" /);
    expect(rules.filter((r) => /dport 123\b/.test(r))).toEqual(['meta skuid "systemd-timesync" udp dport 123 counter accept comment "NTP: systemd-timesyncd"']);
    expect(rules.filter((r) => /dport 6[78]\b|dport 54[67]\b/.test(r))).toEqual([
      'udp sport 68 udp dport 67 counter accept comment "DHCP client"',
      'udp sport 546 udp dport 547 counter accept comment "DHCPv6 client"',
    ]);
  });

  it('counts every packet: each accept and the final reject has a counter', async () => {
    const nft = (await rendered(TOR_ONLY, { users: new Set(ACCOUNTS.debian) })).get('/etc/nftables.conf')!;
    const rules = chain(nft, 'output').split('\n').map((l) => l.trim()).filter((l) => / (accept|reject|drop)\b/.test(l) && !l.startsWith('#') && !l.startsWith('type '));
    expect(rules.length).toBeGreaterThan(5);
    for (const rule of rules) expect(rule).toMatch(/(^| )counter (accept|reject|drop)\b/);
    expect(rules.at(-1)).toBe('counter reject comment "not Tor"');
  });
});

describe('SSH from the local network (admin.ssh.lan)', () => {
  it('is accepted only from private and link-local sources, IPv4 and IPv6', async () => {
    const input = chain((await rendered(plan('admin: { ssh: { lan: true } }\n'))).get('/etc/nftables.conf')!, 'input');
    const ssh = input.split('\n').map((l) => l.trim()).filter((l) => /dport 22\b/.test(l));
    expect(ssh).toEqual([
      'ip saddr { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16 } tcp dport 22 counter accept comment "SSH from the local network, IPv4 (recipe: admin.ssh.lan)"',
      'ip6 saddr { fe80::/10, fc00::/7 } tcp dport 22 counter accept comment "SSH from the local network, IPv6 (recipe: admin.ssh.lan)"',
    ]);
  });

  it('is not accepted at all without it', async () => {
    expect((await rendered(plan('admin: { ssh: { over_tor: true } }\n'))).get('/etc/nftables.conf')).not.toMatch(/dport 22\b/);
  });
});

describe('fail closed: Tor, sshd and the relays only with the firewall', () => {
  it.each([
    ['SSH over Tor', 'admin: { ssh: { over_tor: true } }\n'],
    ['no SSH in the recipe (Imager may still start sshd)', ''],
  ])('with %s: every relay unit, the tor@default and ssh drop-ins require nftables.service and start after it', async (_what, yaml) => {
    const p = plan(`xftp: { enabled: true }\n${yaml}`);
    const files = await rendered(p);
    const units = [
      ...relaysOf(p).map((r) => `/etc/systemd/system/${r.unit}`),
      '/etc/systemd/system/tor@default.service.d/simplex-pi-require-firewall.conf',
      '/etc/systemd/system/ssh.service.d/simplex-pi-require-firewall.conf',
    ];
    expect(units).toHaveLength(5);
    for (const path of units) {
      const text = files.get(path);
      expect(text, path).toBeDefined();
      const unit = text!.slice(text!.indexOf('[Unit]'), text!.indexOf('[Service]') >= 0 ? text!.indexOf('[Service]') : undefined);
      expect(unit, path).toMatch(/^Requires=nftables\.service$/m);
      expect(unit, path).toMatch(/^After=nftables\.service$/m);
    }
  });

  it('each relay checks, as root, that the table is loaded before anything else starts', async () => {
    const p = plan('xftp: { enabled: true }\n');
    const files = await rendered(p);
    for (const relay of relaysOf(p)) {
      const pre = [...files.get(`/etc/systemd/system/${relay.unit}`)!.matchAll(/^ExecStartPre=(.*)$/gm)].map((m) => m[1]);
      expect(pre[0], relay.unit).toBe('+/usr/local/lib/simplex-pi/require-firewall');
    }
    const script = files.get('/usr/local/lib/simplex-pi/require-firewall')!;
    expect(script).toContain('if ! /usr/sbin/nft list table inet simplex_pi > /dev/null; then');
  });
});
