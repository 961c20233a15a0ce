import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { cp, readFile, readdir, readlink, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BuildPlan } from '../../builder/plan/plan.ts';
import { listPresets } from '../../builder/recipe/presets.ts';
import { cli, isRoot, scratch, testSshPublicKey } from '../helpers/env.ts';
import { type ClientKey, authPrivate } from '../../builder/device/client-auth.ts';
import { base32, newOnionKey } from '../../builder/device/onion.ts';
import { nftCheck, sshdCheck, standInBasePrograms, systemdRoot, systemdVerify, torOnionAuthView, torRun, torVerify } from '../helpers/real-tools.ts';
import { shippedUnits, unitExposures } from '../helpers/unit-exposure.ts';
import { STATE, UNITS } from '../../builder/plan/layout.ts';
import { relaysOf } from '../../builder/plan/relays.ts';
import { INIT_TIMEOUT_MS } from '../../builder/device/servers.ts';

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

  it('sshd -t accepts the SSH settings; with SSH off in the recipe, an sshd started anyway listens on the Pi only', async () => {
    const result = await sshdCheck(rendered.rootfs);
    expect(result.ok, result.output).toBe(true);
    if (!rendered.plan.ssh.enabled) expect(result.effective.get('listenaddress')).toEqual(['127.0.0.1:22']);
    expect(result.effective.get('passwordauthentication')).toEqual(['no']);
  });

  it('systemd-analyze verify has nothing to say about any service unit of ours (the relays, first boot, the USB export)', async () => {
    const root = await systemdRoot(rendered.rootfs);
    // Not the base's units we add a drop-in to: their programs are the base's, not in the rendered tree.
    const units = (await shippedUnits(rendered.rootfs)).filter((u) => u.kind !== 'drop-in').map((u) => u.unit);
    expect(units).toEqual(expect.arrayContaining([UNITS.firstboot, ...rendered.plan.smp.instances.map((i) => i.unit)]));
    expect(await systemdVerify(root, units)).toBe('');
  });

  it('every service the image ships is sandboxed to its exposure target (systemd-analyze security): first boot 4.0, the USB export 2.5, relays 1.5', async () => {
    const root = await systemdRoot(rendered.rootfs);
    const found = await unitExposures(root, rendered.rootfs, rendered.plan);
    // A unit with no target is a unit nobody decided a sandbox for: it fails here until it has one.
    expect(found.filter((u) => !u.target).map((u) => u.unit), 'units with no exposure target in test/helpers/unit-exposure.ts').toEqual([]);
    const over = found.filter((u) => u.target!.max !== null && u.exposure > u.target!.max).map((u) => `${u.unit}: ${u.exposure} > ${u.target!.max}`);
    expect(over).toEqual([]);
    expect(found.find((u) => u.unit === UNITS.firstboot)?.exposure).toBeLessThanOrEqual(4.0);
  });

  it('fail closed: systemd makes Tor, sshd and every relay require nftables.service (in a root without it, it refuses to start them)', async () => {
    const root = await systemdRoot(rendered.rootfs);
    const units = [UNITS.tor, UNITS.ssh, ...rendered.plan.smp.instances.map((i) => i.unit), ...(rendered.plan.xftp ? [rendered.plan.xftp.unit] : [])];
    await standInBasePrograms(root, units);
    expect(await systemdVerify(root, units)).toBe('');
    await rm(join(root, 'usr/lib/systemd/system', UNITS.nftables));
    const refused = await systemdVerify(root, units);
    for (const unit of units) expect(refused).toContain(`${unit}: Failed to create ${unit}/start: Unit ${UNITS.nftables} not found.`);
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

  it('every onion service has its introduction points rate-limit introductions, which tor --verify-config accepts (above)', () => {
    const blocks = torConf.split(/\n(?=HiddenServiceDir )/).slice(1);
    expect(blocks).toHaveLength(12);
    for (const block of blocks) expect(block.split('\n\n')[0]).toMatch(/^HiddenServiceEnableIntroDoSDefense 1$/m);
  });

  it("the image tells NetworkManager not to send the host name to the LAN's DHCP server (Raspberry Pi OS's network)", async () => {
    const conf = await readFile(join(rendered.rootfs, 'etc/NetworkManager/conf.d/simplex-pi.conf'), 'utf8');
    expect(conf).toMatch(/^\[connection\]\nipv4\.dhcp-send-hostname=0\nipv6\.dhcp-send-hostname=0\n$/m);
    expect(await readFile(join(rendered.out, 'files.txt'), 'utf8')).toMatch(/^-0644 root:root\s+\/etc\/NetworkManager\/conf\.d\/simplex-pi\.conf$/m);
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

  it('mistake avoided: no symlink, no directory mounted in another\'s place; each instance is chosen with SMP_SERVER_CFG_PATH and SMP_SERVER_LOG_PATH', async () => {
    // One unit file per instance (named like the instance, so systemd uses it as it is), every path written out.
    expect(existsSync(join(rendered.rootfs, 'etc/systemd/system/simplex-smp@.service'))).toBe(false);
    for (const n of [1, 7, 10]) {
      const unit = await readFile(join(rendered.rootfs, `etc/systemd/system/simplex-smp@${n}.service`), 'utf8');
      expect(unit).toContain(`Environment=SMP_SERVER_CFG_PATH=/etc/opt/simplex-smp${n}\n`);
      expect(unit).toContain(`Environment=SMP_SERVER_LOG_PATH=/var/opt/simplex-smp${n}\n`);
      expect(unit).toContain(`ConditionPathExists=/etc/opt/simplex-smp${n}/smp-server.ini\n`);
      expect(unit).toContain(`ReadWritePaths=/var/opt/simplex-smp${n}\n`);
      expect(unit).toContain(`ExecStartPre=/usr/local/lib/simplex-pi/set-aside-torn-record /var/opt/simplex-smp${n}/smp-server-messages.log /var/opt/simplex-smp${n}/smp-server-ntfs.log\n`);
      expect(unit).toContain('ExecStart=/usr/local/lib/simplex-pi/redact-passwords /usr/local/bin/smp-server start +RTS -N -RTS\n');
      expect(unit).not.toMatch(/ln -s|%i/);
      // The sandbox binds the relay's own directories back where they are (below), never one path onto another.
      for (const line of unit.match(/^Bind(ReadOnly)?Paths=.*$/gm) ?? []) expect(line).not.toMatch(/=.*:/);
      expect(unit).toMatch(/^User=simplex$/m);
    }
    expect(existsSync(join(rendered.rootfs, 'etc/systemd/system/simplex-smp@11.service'))).toBe(false);
    const xftp = await readFile(join(rendered.rootfs, 'etc/systemd/system/simplex-xftp.service'), 'utf8');
    expect(xftp).toContain('Environment=XFTP_SERVER_CFG_PATH=/etc/opt/simplex-xftp\n');
    expect(xftp).toContain('ReadWritePaths=/var/opt/simplex-xftp /srv/simplex-xftp/files\n');
    expect(xftp).not.toContain('set-aside-torn-record');
  });

  it('each relay sees only its own directories: the other relays\' keys, passwords and stores are hidden from it (they all run as one user)', async () => {
    const relays = relaysOf(rendered.plan);
    const under = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);
    for (const relay of relays) {
      const unit = await readFile(join(rendered.rootfs, 'etc/systemd/system', relay.unit), 'utf8');
      const values = (key: string) => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].flatMap((m) => m[1]!.trim().split(/\s+/));
      expect(values('TemporaryFileSystem').every((v) => v.endsWith(':ro'))).toBe(true);
      const hidden = values('TemporaryFileSystem').map((v) => v.replace(/:ro$/, ''));
      const readOnly = values('BindReadOnlyPaths');
      const writable = values('BindPaths');
      expect(readOnly).toEqual([relay.cfgPath]);
      expect(writable).toEqual(relay.writablePaths);
      for (const path of values('ReadWritePaths')) expect(writable).toContain(path);
      // Its own directories lie under the hidden ones, and are bound back; no other relay's is.
      for (const path of [relay.cfgPath, ...relay.writablePaths]) expect(hidden.some((dir) => under(path, dir)), `${relay.unit}: ${path}`).toBe(true);
      for (const other of relays.filter((o) => o !== relay)) {
        for (const path of [other.cfgPath, ...other.writablePaths]) {
          expect(hidden.some((dir) => under(path, dir)), `${relay.unit} hides ${path}`).toBe(true);
          expect([...readOnly, ...writable].some((bound) => under(path, bound) || under(bound, path)), `${relay.unit} binds ${path}`).toBe(false);
        }
      }
    }
    const smp1 = await readFile(join(rendered.rootfs, 'etc/systemd/system/simplex-smp@1.service'), 'utf8');
    expect(smp1).toContain('TemporaryFileSystem=/etc/opt:ro /srv/simplex-xftp:ro /var/opt:ro\nBindReadOnlyPaths=/etc/opt/simplex-smp1\nBindPaths=/var/opt/simplex-smp1\n');
  });

  it('first boot is sandboxed: it writes only Tor\'s, the relays\' and its own directories, with the capabilities for that, no network, no devices, and a bounded time', async () => {
    const unit = await readFile(join(rendered.rootfs, 'etc/systemd/system', UNITS.firstboot), 'utf8');
    const values = (key: string) => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].flatMap((m) => m[1]!.trim().split(/\s+/));
    const relays = relaysOf(rendered.plan);
    expect(values('ProtectSystem')).toEqual(['strict']);
    expect(values('ReadWritePaths')).toEqual(['/var/lib/tor', ...relays.flatMap((r) => [r.cfgPath, r.logPath]), '/srv/simplex-xftp']);
    expect(values('StateDirectory')).toEqual(['simplex-pi']);
    expect(values('StateDirectoryMode')).toEqual(['0700']);
    expect(values('CapabilityBoundingSet').sort()).toEqual(['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID']);
    expect(values('PrivateNetwork')).toEqual(['yes']);
    expect(values('PrivateDevices')).toEqual(['yes']);
    expect(values('RestrictAddressFamilies')).toEqual(['AF_UNIX']);
    // Bounded, and longer than any one init may take (the program stops an init that hangs itself).
    expect(values('TimeoutStartSec')).toEqual(['30min']);
    expect(30 * 60 * 1000).toBeGreaterThan(2 * INIT_TIMEOUT_MS);
    // What decides when it runs is as before.
    expect(values('ConditionPathExists')).toEqual(['!/var/lib/simplex-pi/firstboot.done']);
    expect(values('Before')).toEqual(['tor.service', 'tor@default.service']);
    expect(values('Type')).toEqual(['oneshot']);
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

/** A URL with what systemd would read as a specifier (%) and a variable ($): it must reach the program as it is. */
const CHECK_URL = 'https://mirror.example/relays%20latest/$HOME/simplex-pi-relay-update.tar';

describe('recipe options, rendered and checked by the real tools', () => {
  const aliceKey = 'A'.repeat(52).replace(/^A{4}/, 'BCDE');
  let rendered: Awaited<ReturnType<typeof render>>;
  beforeAll(async () => {
    const dir = await scratch('variant');
    const key = await testSshPublicKey();
    await writeFile(
      join(dir, 'variant.yaml'),
      [
        'name: variant',
        'base: { provider: debian }',
        'hostname: clinic-relays',
        'timezone: Europe/Berlin',
        'smp: { instances: 2, password: none, local_port_base: 6000, message_expiry_days: 7 }',
        'xftp: { enabled: false }',
        'tor:',
        '  pow_defense: false',
        '  max_streams: 0',
        '  vanguards_lite: false',
        `  client_auth: { keys: [{ name: alice, public_key: ${aliceKey} }], generate: 3 }`,
        `admin: { user: keeper, ssh: { over_tor: true, lan: true, authorized_keys: ["${key}"] } }`,
        'network: { outbound: open, allow_ping: true }',
        'backup: { recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p, on_stick: true }',
        `update: { check_url: "${CHECK_URL}" }`,
        '',
      ].join('\n'),
    );
    rendered = await render(join(dir, 'variant.yaml'));
  });

  it('update.check_url: a timer at a random time each day runs `update --if-newer` with the URL as one argument, as systemd reads it; sandboxed within its target; without it, no such unit', async () => {
    const root = await systemdRoot(rendered.rootfs);
    expect(await systemdVerify(root, [UNITS.update])).toBe('');
    expect(rendered.plan.units).toContain(UNITS.updateTimer);
    const timer = await readFile(join(rendered.rootfs, 'etc/systemd/system', UNITS.updateTimer), 'utf8');
    expect(timer).toMatch(/^OnCalendar=daily$/m);
    expect(timer).toMatch(/^RandomizedDelaySec=24h$/m);
    // Escaped as systemd reads an Exec line (% a specifier, $ a variable): systemd-analyze verify above refuses `%2`.
    const unit = await readFile(join(rendered.rootfs, 'etc/systemd/system', UNITS.update), 'utf8');
    expect(/^ExecStart=(.*)$/m.exec(unit)![1]).toMatch(/ update --from "https:\/\/mirror\.example\/relays%%20latest\/\$\$HOME\/simplex-pi-relay-update\.tar" --if-newer$/);
    const service = (await unitExposures(root, rendered.rootfs, rendered.plan)).find((u) => u.unit === UNITS.update)!;
    expect(service.exposure).toBeLessThanOrEqual(service.target!.max!);
    const plain = await render(presets.find((p) => p.recipe.name === 'family')?.file ?? presets[0]!.file);
    expect(existsSync(join(plain.rootfs, 'etc/systemd/system', UNITS.update))).toBe(false);
    expect(existsSync(join(plain.rootfs, 'etc/systemd/system', UNITS.updateTimer))).toBe(false);
  });

  it('a card restored from a backup keeps its SSH host keys: Raspberry Pi OS\'s key regeneration is skipped on it (and only on it)', async () => {
    const dropIn = await readFile(join(rendered.rootfs, 'etc/systemd/system/regenerate_ssh_host_keys.service.d/simplex-pi-restored.conf'), 'utf8');
    expect(dropIn).toMatch(new RegExp(`^\\[Unit\\]\\nConditionPathExists=!${STATE.restored}$`, 'm'));
  });

  it('backup.on_stick: the USB export may read Tor\'s and the relays\' directories (one capability, no more) and has the time to stop and start each relay; still within its exposure target', async () => {
    const unit = await readFile(join(rendered.rootfs, 'etc/systemd/system', UNITS.export), 'utf8');
    expect(unit).toMatch(/^CapabilityBoundingSet=CAP_DAC_READ_SEARCH$/m);
    expect(unit).toMatch(/^TimeoutStartSec=10min$/m);
    const root = await systemdRoot(rendered.rootfs);
    const exported = (await unitExposures(root, rendered.rootfs, rendered.plan)).find((u) => u.unit === UNITS.export)!;
    expect(exported.exposure).toBeLessThanOrEqual(exported.target!.max!);
  });

  it('tor accepts onion services with client authorization and without PoW, stream limits or vanguards-lite', async () => {
    const result = await torVerify(rendered.rootfs);
    expect(result.ok, result.output).toBe(true);
    const conf = await readFile(join(rendered.rootfs, 'etc/tor/torrc.d/50-simplex-pi.conf'), 'utf8');
    expect(conf).toContain('VanguardsLiteEnabled 0');
    expect(conf).not.toMatch(/HiddenServiceMaxStreams|HiddenServicePoWDefensesEnabled/);
    expect(conf).toContain('HiddenServicePort 5223 127.0.0.1:6001');
    for (const service of ['simplex-smp1', 'simplex-smp2']) {
      expect(await readFile(join(rendered.rootfs, `var/lib/tor/${service}/authorized_clients/alice.auth`), 'utf8')).toBe(`descriptor:x25519:${aliceKey}\n`);
    }
    // A member's key opens the relays, never SSH: that onion admits only the admin's key, made at first boot.
    expect(existsSync(join(rendered.rootfs, 'var/lib/tor/simplex-ssh/authorized_clients/alice.auth'))).toBe(false);
    const files = await readFile(join(rendered.out, 'files.txt'), 'utf8');
    expect(files).toMatch(/^d0700 debian-tor:debian-tor\s+\/var\/lib\/tor\/simplex-smp1\/authorized_clients$/m);
    expect(files).toMatch(/^-0600 debian-tor:debian-tor\s+\/var\/lib\/tor\/simplex-smp1\/authorized_clients\/alice\.auth$/m);
    expect(rendered.plan.tor.clientAuth.generate).toBe(3);

    // Tor reads client-authorization files only when it starts the services.
    const run = await torRun(rendered.rootfs, ['simplex-smp1', 'simplex-smp2', 'simplex-ssh']);
    expect(run.hostnames, run.output).toHaveLength(3);
    expect(run.output).not.toMatch(/\[warn\].*[Cc]lient auth/);
  });

  it('with client authorization on, Tor gets a ClientOnionAuthDir of its own and loads the key files first boot writes there', async () => {
    const conf = await readFile(join(rendered.rootfs, 'etc/tor/torrc.d/50-simplex-pi.conf'), 'utf8');
    expect(rendered.plan.tor.clientOnionAuthDir).toBe('/var/lib/tor/onion-auth');
    expect(conf).toContain('ClientOnionAuthDir /var/lib/tor/onion-auth');
    expect(await readFile(join(rendered.out, 'files.txt'), 'utf8')).toMatch(/^d0700 debian-tor:debian-tor\s+\/var\/lib\/tor\/onion-auth$/m);
    // A key file as first boot writes it (client-auth.ts authPrivate), for a sibling relay's onion.
    const tree = await scratch('onion-auth');
    await cp(rendered.rootfs, tree, { recursive: true });
    const raw = randomBytes(32);
    const key: ClientKey = { name: 'simplex-pi-relays', publicKey: 'unused', privateKey: base32(raw).toUpperCase() };
    const onion = newOnionKey().address.replace(/\.onion$/, '');
    await writeFile(join(tree, 'var/lib/tor/onion-auth/simplex-smp2.auth_private'), authPrivate(onion, key), { mode: 0o600 });
    const view = await torOnionAuthView(tree);
    expect(view.keys.has(onion), view.output).toBe(true);
    expect(Buffer.from(view.keys.get(onion)!, 'base64').equals(raw)).toBe(true);
  });

  it('a malformed client-authorization key would be caught by Tor (the check above can fail)', async () => {
    const bad = join(rendered.rootfs, 'var/lib/tor/simplex-smp1/authorized_clients/alice.auth');
    const good = await readFile(bad, 'utf8');
    await writeFile(bad, 'descriptor:x25519:TOOSHORT\n');
    try {
      const run = await torRun(rendered.rootfs, ['simplex-smp1']);
      expect(run.output).toMatch(/\[warn\] Client authorization encoded base32 public key length is invalid/);
    } finally {
      await writeFile(bad, good);
    }
  });

  it.runIf(isRoot)('nft accepts the open outbound policy with LAN SSH and ping', async () => {
    const result = await nftCheck(rendered.rootfs);
    expect(result.ok, result.output).toBe(true);
    const nft = await readFile(join(rendered.rootfs, 'etc/nftables.conf'), 'utf8');
    // From private and link-local sources only: never the whole IPv6 internet.
    expect(nft).toMatch(/^\t\tip saddr \{ 10\.0\.0\.0\/8, 172\.16\.0\.0\/12, 192\.168\.0\.0\/16, 169\.254\.0\.0\/16 \} tcp dport 22 counter accept /m);
    expect(nft).toMatch(/^\t\tip6 saddr \{ fe80::\/10, fc00::\/7 \} tcp dport 22 counter accept /m);
    expect(nft).not.toMatch(/^\t\ttcp dport 22/m);
    expect(nft).toContain('icmp type echo-request limit rate 5/second counter accept');
    expect(nft).toMatch(/hook output priority filter; policy accept;/);
    expect(nft).not.toMatch(/dport 600[01]\b/);
  });

  it('sshd listens on loopback and the LAN, for the named admin only by key', async () => {
    const result = await sshdCheck(rendered.rootfs);
    expect(result.ok, result.output).toBe(true);
    expect(result.effective.get('listenaddress')?.sort()).toEqual(['0.0.0.0:22', '127.0.0.1:22', '[::]:22'].sort());
    expect(await readFile(join(rendered.rootfs, 'etc/sudoers.d/simplex-pi-keeper'), 'utf8')).toBe('keeper ALL=(ALL:ALL) NOPASSWD: ALL\n');
  });

  it('carries the relay settings to the first-boot program: no password, expiry, no XFTP', async () => {
    expect(rendered.plan.xftp).toBeNull();
    expect(rendered.plan.units).toEqual(['simplex-pi-firstboot.service', 'simplex-pi-export.service', 'simplex-pi-watchdog.timer', 'simplex-pi-update.timer', 'simplex-smp@1.service', 'simplex-smp@2.service', 'nftables.service', 'ssh.service']);
    expect(rendered.plan.smp.instances[0]!.initArgs).toEqual(['init', '-y', '--disable-web', '--no-password']);
    expect(rendered.plan.smp.instances[1]!.ini).toContainEqual({ section: 'STORE_LOG', key: 'expire_messages_days', value: '7' });
    expect(existsSync(join(rendered.rootfs, 'etc/systemd/system/simplex-xftp.service'))).toBe(false);
    expect(await readFile(join(rendered.rootfs, 'etc/hostname'), 'utf8')).toBe('clinic-relays\n');
    expect(await readlink(join(rendered.rootfs, 'etc/localtime'))).toBe('/usr/share/zoneinfo/Europe/Berlin');
  });
});

describe("Raspberry Pi Imager's SSH options on this image, against sshd's real precedence", () => {
  // What cloud-init and Raspberry Pi OS put beside our drop-in: cloud-init writes Imager's "password
  // authentication" (ssh_pwauth: true) as PasswordAuthentication yes into 50-cloud-init.conf (cloudinit/ssh_util.py);
  // userconf-pi's rename-user writes rename_user.conf with a Banner. Imager's "Enable SSH" is a runcmd that enables
  // ssh.service; its public key goes to its user's ~/.ssh/authorized_keys.
  const others = {
    '50-cloud-init.conf': 'PasswordAuthentication yes\n',
    'rename_user.conf': 'Banner /usr/share/userconf-pi/sshd_banner\n',
  };

  it.each([
    ['recipes/team.yaml', ['127.0.0.1:22']],
    ['recipes/family.yaml', ['127.0.0.1:22']],
  ] as const)('%s: keys only whatever Imager asked for, listening where the recipe says', async (recipe, listen) => {
    const { rootfs } = await render(recipe);
    expect(await readdir(join(rootfs, 'etc/ssh/sshd_config.d'))).toEqual(['00-simplex-pi.conf']);
    const result = await sshdCheck(rootfs, others);
    expect(result.ok, result.output).toBe(true);
    expect(result.effective.get('passwordauthentication')).toEqual(['no']);
    expect(result.effective.get('kbdinteractiveauthentication')).toEqual(['no']);
    expect(result.effective.get('authenticationmethods')).toEqual(['publickey']);
    expect(result.effective.get('permitrootlogin')).toEqual(['no']);
    expect(result.effective.get('authorizedkeysfile')).toEqual(['.ssh/authorized_keys /etc/ssh/authorized_keys/%u']);
    expect(result.effective.get('listenaddress')).toEqual(listen);
  });

  it('the check can fail: a drop-in named like cloud-init\'s sorts after it and loses to Imager\'s password setting', async () => {
    const { rootfs } = await render('recipes/team.yaml');
    const dir = join(rootfs, 'etc/ssh/sshd_config.d');
    await rename(join(dir, '00-simplex-pi.conf'), join(dir, '50-simplex-pi.conf'));
    const result = await sshdCheck(rootfs, others);
    expect(result.effective.get('passwordauthentication')).toEqual(['yes']);
  });
});
