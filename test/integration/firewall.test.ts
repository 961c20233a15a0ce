import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIREWALL_TABLE, REQUIRE_FIREWALL, RESOLVED_USER, TIMESYNC_USER, TOR_USER } from '../../builder/plan/layout.ts';
import { resolvePlan } from '../../builder/plan/plan.ts';
import { parseRecipe } from '../../builder/recipe/load.ts';
import { OVERLAYS, renderImageFiles } from '../../builder/render/render.ts';
import { cli, isRoot, scratch } from '../helpers/env.ts';
import { FIREWALL_ACCOUNTS, Listener, Netns, asImage, counters, imagePasswd, link, probe } from '../helpers/netns.ts';

/**
 * The rendered ruleset, loaded by the real nft into a network namespace ("pi"), with real programs sending from it
 * as the image's users. Its only neighbour is a second namespace ("lan") that listens on every port the tests send
 * to, so a test sees a packet get through, not only not refused. Nothing can leave the machine: the two
 * namespaces are joined only to each other, and the addresses are private and documentation ranges.
 */
const RECIPE = 'name: fw\nsmp: { instances: 1 }\nadmin: { ssh: { over_tor: true, lan: true } }\nnetwork: { outbound: tor-only }\n';
const PI = { private4: '192.168.77.1', linkLocal4: '169.254.77.1', global4: '198.51.100.1', private6: 'fd00:77::1', linkLocal6: 'fe80::77:1', global6: '2001:db8:77::1' };
const LAN = { private4: '192.168.77.2', linkLocal4: '169.254.77.2', global4: '198.51.100.2', private6: 'fd00:77::2', linkLocal6: 'fe80::77:2', global6: '2001:db8:77::2' };
const addresses = (a: typeof PI) => [`${a.private4}/24`, `${a.linkLocal4}/16`, `${a.global4}/24`, `${a.private6}/64`, `${a.linkLocal6}/64`, `${a.global6}/64`];

describe.runIf(isRoot)('the tor-only firewall, loaded by the real nft and met by real programs', () => {
  const cleanups: Array<() => Promise<void>> = [];
  let pi: Netns;
  let lan: Netns;
  let atLan: Listener;
  let atPi: Listener;
  let uid: Map<string, number>;
  let dir: string;
  /** What `act` made each rule of `chain` count; the listeners keep only what arrived meanwhile. */
  const around = async (act: () => Promise<void>, chain = 'output') => {
    atLan.arrived.length = 0;
    atPi.arrived.length = 0;
    const before = await counters(pi, FIREWALL_TABLE, chain);
    await act();
    const after = await counters(pi, FIREWALL_TABLE, chain);
    return (comment: string) => {
      expect(after.has(comment), `a rule "${comment}" in ${chain}`).toBe(true);
      return after.get(comment)! - before.get(comment)!;
    };
  };

  beforeAll(async () => {
    dir = await scratch('firewall');
    // As configure renders it for an image with every account the firewall may name (the Debian base).
    const plan = resolvePlan(parseRecipe(RECIPE, 'test'));
    const entries = await renderImageFiles(plan, OVERLAYS, { users: new Set(FIREWALL_ACCOUNTS) });
    for (const e of entries) {
      if (e.path === '/etc/nftables.conf') await writeFile(join(dir, 'nftables.conf'), e.content!);
      if (e.path === REQUIRE_FIREWALL) await writeFile(join(dir, 'require-firewall'), e.content!, { mode: 0o755 });
    }
    const passwd = await imagePasswd(FIREWALL_ACCOUNTS);
    uid = passwd.uids;

    pi = await Netns.create('pi');
    cleanups.push(() => pi.delete());
    lan = await Netns.create('lan');
    cleanups.push(() => lan.delete());
    await link(pi, lan, { a: addresses(PI), b: addresses(LAN) });
    await pi.run(asImage(passwd.path, ['nft', '-f', join(dir, 'nftables.conf')]));
    atLan = await Listener.start(lan, [53, 67, 123, 443, 547]);
    cleanups.push(() => atLan.stop());
    atPi = await Listener.start(pi, [22]);
    cleanups.push(() => atPi.stop());
  });

  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });

  it('as root, TCP to port 53 is refused by the firewall (its reject, not the other side), IPv4 and IPv6', async () => {
    const delta = await around(async () => {
      expect(await probe(pi, ['tcp', LAN.global4, '53'])).toBe('ECONNREFUSED');
      expect(await probe(pi, ['tcp', LAN.global6, '53'])).toBe('ECONNREFUSED');
      expect(await probe(pi, ['udp', LAN.global4, '53'])).toBe('EPERM');
    });
    expect(delta('not Tor')).toBeGreaterThanOrEqual(3);
    expect(delta('DNS: systemd-timesyncd, for its NTP servers')).toBe(0);
    expect(delta('DNS: systemd-resolved, for every program')).toBe(0);
    // The other side listens on 53: had the firewall let them pass, they would have connected.
    expect(await atLan.got('tcp', 53)).toEqual([]);
    expect(await atLan.got('udp', 53)).toEqual([]);
  });

  it('an ordinary user (nobody) can send neither NTP nor DNS', async () => {
    const nobody = uid.get('nobody')!;
    const delta = await around(async () => {
      expect(await probe(pi, ['udp', LAN.global4, '123'], nobody)).toBe('EPERM');
      expect(await probe(pi, ['udp', LAN.global6, '123'], nobody)).toBe('EPERM');
      expect(await probe(pi, ['tcp', LAN.global4, '53'], nobody)).toBe('ECONNREFUSED');
    });
    expect(delta('not Tor')).toBeGreaterThanOrEqual(3);
    expect(delta('NTP: systemd-timesyncd')).toBe(0);
    expect(await atLan.got('udp', 123)).toEqual([]);
  });

  it("the control: systemd-timesyncd's user gets NTP and DNS through, IPv4 and IPv6, and nothing else", async () => {
    const timesync = uid.get(TIMESYNC_USER)!;
    const delta = await around(async () => {
      expect(await probe(pi, ['udp', LAN.global4, '123'], timesync)).toBe('sent');
      expect(await probe(pi, ['udp', LAN.global6, '123'], timesync)).toBe('sent');
      expect(await probe(pi, ['udp', LAN.global4, '53'], timesync)).toBe('sent');
      expect(await probe(pi, ['tcp', LAN.global6, '53'], timesync)).toBe('connected');
      expect(await probe(pi, ['tcp', LAN.global4, '443'], timesync)).toBe('ECONNREFUSED');
    });
    expect(delta('NTP: systemd-timesyncd')).toBe(2);
    expect(delta('DNS: systemd-timesyncd, for its NTP servers')).toBe(2);
    expect(delta('not Tor')).toBeGreaterThanOrEqual(1);
    expect((await atLan.got('udp', 123)).sort()).toEqual([PI.global6, PI.global4].sort());
    expect(await atLan.got('udp', 53)).toEqual([PI.global4]);
    expect(await atLan.got('tcp', 53)).toEqual([PI.global6]);
    expect(await atLan.got('tcp', 443)).toEqual([]);
  });

  it("systemd-resolved's user gets DNS through and no NTP; Tor's user reaches any port", async () => {
    const delta = await around(async () => {
      expect(await probe(pi, ['udp', LAN.global6, '53'], uid.get(RESOLVED_USER))).toBe('sent');
      expect(await probe(pi, ['udp', LAN.global4, '123'], uid.get(RESOLVED_USER))).toBe('EPERM');
      expect(await probe(pi, ['tcp', LAN.global4, '443'], uid.get(TOR_USER))).toBe('connected');
    });
    expect(delta('DNS: systemd-resolved, for every program')).toBe(1);
    expect(delta('NTP: systemd-timesyncd')).toBe(0);
    expect(delta('Tor')).toBeGreaterThanOrEqual(1);
    expect(await atLan.got('udp', 53)).toContain(PI.global6);
    expect(await atLan.got('tcp', 443)).toEqual([PI.global4]);
  });

  it('DHCP and DHCPv6 only as clients send them: from port 68 (546), which only root may bind', async () => {
    const delta = await around(async () => {
      expect(await probe(pi, ['udp', LAN.global4, '67', '68'])).toBe('sent');
      expect(await probe(pi, ['udp', LAN.global6, '547', '546'])).toBe('sent');
      // To the DHCP server's port from any other port: not a DHCP client, refused.
      expect(await probe(pi, ['udp', LAN.global4, '67'])).toBe('EPERM');
      expect(await probe(pi, ['udp', LAN.global4, '67', '68'], uid.get('nobody'))).toBe('EACCES');
    });
    expect(delta('DHCP client')).toBe(1);
    expect(delta('DHCPv6 client')).toBe(1);
    expect(delta('not Tor')).toBeGreaterThanOrEqual(1);
    expect(await atLan.got('udp', 67)).toEqual([PI.global4]);
    expect(await atLan.got('udp', 547)).toEqual([PI.global6]);
  });

  it('SSH from the local network (admin.ssh.lan) only from private and link-local addresses, never a global one', async () => {
    const delta = await around(async () => {
      expect(await probe(lan, ['tcp', PI.private4, '22', LAN.private4])).toBe('connected');
      expect(await probe(lan, ['tcp', PI.private6, '22', LAN.private6])).toBe('connected');
      expect(await probe(lan, ['tcp', PI.linkLocal4, '22', LAN.linkLocal4])).toBe('connected');
      expect(await probe(lan, ['tcp', `${PI.linkLocal6}%vb`, '22', `${LAN.linkLocal6}%vb`])).toBe('connected');
      expect(await probe(lan, ['tcp', PI.global4, '22', LAN.global4])).toBe('timeout');
      expect(await probe(lan, ['tcp', PI.global6, '22', LAN.global6])).toBe('timeout');
    }, 'input');
    expect(delta('SSH from the local network, IPv4 (recipe: admin.ssh.lan)')).toBe(2);
    expect(delta('SSH from the local network, IPv6 (recipe: admin.ssh.lan)')).toBe(2);
    expect((await atPi.got('tcp', 22)).map((a) => a.replace(/%.*$/, '')).sort()).toEqual([LAN.private4, LAN.linkLocal4, LAN.private6, LAN.linkLocal6].sort());
  });

  it("each relay's start check passes with the table loaded and refuses, saying why, without it", async () => {
    const script = join(dir, 'require-firewall');
    expect((await pi.run([script], { reject: false })).exitCode).toBe(0);
    // The lan namespace has no ruleset: as a Pi whose firewall was flushed after it loaded.
    const refused = await lan.run([script], { reject: false });
    expect(refused.exitCode).toBe(1);
    expect(refused.all).toContain(`The firewall is not loaded (nftables has no table inet ${FIREWALL_TABLE}), so this relay stays stopped`);
  });
});

describe.runIf(isRoot)('the ruleset names only accounts the image has (nft refuses the whole file otherwise)', () => {
  const cleanups: Array<() => Promise<void>> = [];
  let ns: Netns;
  beforeAll(async () => {
    ns = await Netns.create('load');
    cleanups.push(() => ns.delete());
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });

  it('`simplex-pi render` (no image) writes a ruleset that loads in an image without systemd-resolved, as Raspberry Pi OS is', async () => {
    const dir = await scratch('render-fw');
    await writeFile(join(dir, 'fw.yaml'), RECIPE);
    const result = await cli(['render', '--recipe', join(dir, 'fw.yaml'), '--out', join(dir, 'out')]);
    expect(result.exitCode, result.all).toBe(0);
    const conf = join(dir, 'out/rootfs/etc/nftables.conf');
    expect(await readFile(conf, 'utf8')).not.toContain(`"${RESOLVED_USER}"`);
    const raspios = await imagePasswd([TOR_USER, TIMESYNC_USER]);
    const load = await ns.run(asImage(raspios.path, ['nft', '-f', conf]), { reject: false });
    expect(load.exitCode, load.all).toBe(0);
    expect(String((await ns.run(['nft', 'list', 'tables'])).stdout)).toContain(`table inet ${FIREWALL_TABLE}`);
  });

  it('the control: a ruleset naming systemd-resolved does not load at all in that image', async () => {
    const dir = await scratch('render-fw');
    const entries = await renderImageFiles(resolvePlan(parseRecipe(RECIPE, 'test')), OVERLAYS, { users: new Set(FIREWALL_ACCOUNTS) });
    await writeFile(join(dir, 'nftables.conf'), entries.find((e) => e.path === '/etc/nftables.conf')!.content!);
    await ns.run(['nft', 'flush', 'ruleset']);
    const raspios = await imagePasswd([TOR_USER, TIMESYNC_USER]);
    const load = await ns.run(asImage(raspios.path, ['nft', '-f', join(dir, 'nftables.conf')]), { reject: false });
    expect(load.exitCode).not.toBe(0);
    expect(load.all).toMatch(/User does not exist/);
    expect(String((await ns.run(['nft', 'list', 'tables'])).stdout)).not.toContain(FIREWALL_TABLE);
  });
});
