import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chown, lstat, mkdir, readFile, readdir, readlink, stat, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secretFiles } from '../../builder/device/export-files.ts';
import type { ServerRecord } from '../../builder/device/server-list.ts';
import type { BuildPlan, OnionService } from '../../builder/plan/plan.ts';
import { SELF_KEY_NAME } from '../../builder/plan/layout.ts';
import { findSecrets } from '../../builder/image/secrets.ts';
import { checkTimezone } from '../../builder/image/zoneinfo.ts';
import { base32, onionAddress } from '../../builder/device/onion.ts';
import { readIni } from '../../builder/device/ini.ts';
import { CHROOT_ENV, chrootRun } from '../../builder/image/chroot.ts';
import { killProcessesRootedUnder } from '../../builder/image/processes.ts';
import { execa } from 'execa';
import { decodeQrPng } from '../helpers/stick.ts';
import { mountImage } from '../../builder/image/mount-image.ts';
import { silentLog } from '../../builder/log.ts';
import { Resources } from '../../builder/resources.ts';
import { TestServer } from '../helpers/http-server.ts';
import { imagerSchemaErrors } from '../helpers/imager-schema.ts';
import { parseSha256Sums } from '../../builder/outputs/sha256sums.ts';
import { heldUnder, inspectImage } from '../helpers/inspect.ts';
import { systemdExposure, systemdVerify, torOnionAuthView } from '../helpers/real-tools.ts';
import { TEST_CACHE, cli, isRoot, scratch, testSshPublicKey } from '../helpers/env.ts';
import { type ServedStandins, serveStandins } from '../helpers/standins.ts';
import { REAL_NEEDED, buildStandin } from '../fixtures/standin/build.ts';

const VERSION = '6.5.2';

let sshKey = '';

/** RFC 4648 base32 (Tor's key encoding), any case. */
function fromBase32(text: string): Buffer {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const char of text.toLowerCase()) {
    value = (value << 5) | alphabet.indexOf(char);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}


/**
 * The one os_list entry of an Imager file in a build's output, checked against Imager's schema, with the sizes of
 * the output's files and its SHA256SUMS to compare with.
 */
async function imagerEntry(out: string, file: string) {
  const json = JSON.parse(await readFile(join(out, file), 'utf8'));
  expect(imagerSchemaErrors(json), file).toEqual([]);
  expect(json.os_list, file).toHaveLength(1);
  const sums = new Map(parseSha256Sums(await readFile(join(out, 'SHA256SUMS'), 'utf8')).map((e) => [e.name, e.sha256]));
  const sizes: Record<string, number> = {};
  for (const name of await readdir(out)) sizes[name] = (await stat(join(out, name))).size;
  return { ...json.os_list[0], sums, sizes } as { url: string; extract_size: number; extract_sha256: string; image_download_size: number; image_download_sha256: string; sums: Map<string, string>; sizes: Record<string, number> };
}

function recipe(name: string, standins: ServedStandins, extra: { instances?: number; smpUrl?: string; smpSha256?: string; version?: string } = {}): string {
  return [
    `name: ${name}`,
    'base:',
    '  provider: debian',
    'admin:',
    '  ssh:',
    '    over_tor: true',
    `    authorized_keys: ["${sshKey}"]`,
    'tor:',
    '  client_auth:',
    '    generate: 2',
    'smp:',
    `  instances: ${extra.instances ?? 2}`,
    'simplexmq:',
    `  version: ${extra.version ?? VERSION}`,
    `  release_notes_url: ${standins.releaseNotesUrl}`,
    '  smp_server:',
    `    url: ${extra.smpUrl ?? standins.smp.url}`,
    `    sha256: ${extra.smpSha256 ?? 'release-notes'}`,
    '  xftp_server:',
    `    url: ${standins.xftp.url}`,
    `    sha256: ${standins.xftp.sha256}`,
    '',
  ].join('\n');
}

describe.runIf(isRoot)('build --base debian with the simplexmq stand-in', () => {
  const server = new TestServer();
  let dir: string;
  let standins: ServedStandins;

  beforeAll(async () => {
    await server.start();
    dir = await scratch('build');
    standins = await serveStandins(server, dir, VERSION);
    sshKey = await testSshPublicKey();
  });
  afterAll(() => server.stop());

  it('produces a verified, checksummed image with the packages and binaries in place and no secrets', { timeout: 40 * 60 * 1000 }, async () => {
    await writeFile(join(dir, 'one.yaml'), recipe('one', standins));
    const out = join(dir, 'out-one');
    const result = await cli(['build', '--recipe', join(dir, 'one.yaml'), '--out', out, '--cache', TEST_CACHE, '--xz-level', '0']);
    expect(result.exitCode, result.all).toBe(0);

    expect((await readdir(out)).sort()).toEqual(['SHA256SUMS', 'manifest.json', 'one.build.log', 'one.img', 'one.img.bmap', 'one.img.xz', 'one.rpi-imager-manifest', 'one.rpi-imager.json']);
    const check = execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out }).toString();
    // The Imager files point at this directory without --publish-url: not in SHA256SUMS (emit.ts says why).
    expect(check).toBe('one.img: OK\none.img.xz: OK\none.img.bmap: OK\nmanifest.json: OK\n');
    expect(execFileSync('xz', ['--test', join(out, 'one.img.xz')]).toString()).toBe('');
    // Raspberry Pi Imager's files: valid for Imager, with the real files' sizes and hashes (SHA256SUMS, just
    // checked against the files, gives the hashes), no customisation on the Debian base.
    for (const file of ['one.rpi-imager.json', 'one.rpi-imager-manifest']) {
      const imager = await imagerEntry(out, file);
      expect(imager).toMatchObject({ extract_size: imager.sizes['one.img'], image_download_size: imager.sizes['one.img.xz'], init_format: 'none', devices: ['pi5-64bit', 'pi4-64bit', 'pi3-64bit'] });
      expect([imager.extract_sha256, imager.image_download_sha256]).toEqual([imager.sums.get('one.img'), imager.sums.get('one.img.xz')]);
      expect(fileURLToPath(imager.url)).toBe(join(out, 'one.img.xz'));
    }

    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
    expect(manifest.base).toMatchObject({ provider: 'debian', suite: 'bookworm', initFormat: 'none' });
    expect(manifest.simplexmq.binaries).toEqual([
      expect.objectContaining({ name: 'smp-server', sha256: standins.smp.sha256, sha256Source: 'release-notes', reportedVersion: `SMP server v${VERSION}.0 / 0000000` }),
      expect.objectContaining({ name: 'xftp-server', sha256: standins.xftp.sha256, sha256Source: 'recipe' }),
    ]);
    const packageNames = manifest.packages.map((p: { name: string }) => p.name);
    for (const name of ['tor', 'nftables', 'nodejs', 'openssl', 'libgmp10', 'linux-image-arm64', 'raspi-firmware']) expect(packageNames).toContain(name);

    await inspectImage(join(out, 'one.img'), async ({ root, bootFiles, readBoot }) => {
      const status = await readFile(join(root, 'var/lib/dpkg/status'), 'utf8');
      for (const name of ['tor', 'nftables', 'nodejs']) expect(status).toMatch(new RegExp(`^Package: ${name}\\nStatus: install ok installed$`, 'm'));
      for (const [name, served] of [['smp-server', standins.smp], ['xftp-server', standins.xftp]] as const) {
        const path = join(root, 'usr/local/bin', name);
        const info = await stat(path);
        expect((info.mode & 0o7777).toString(8)).toBe('755');
        expect([info.uid, info.gid]).toEqual([0, 0]);
        expect(createHash('sha256').update(await readFile(path)).digest('hex')).toBe(served.sha256);
      }
      const plan = JSON.parse(await readFile(join(root, 'etc/simplex-pi/plan.json'), 'utf8'));
      expect(plan.smp.instances.map((i: { name: string }) => i.name)).toEqual(['smp1', 'smp2']);
      expect(await findSecrets(root)).toEqual([]);
      expect(await readFile(join(root, 'etc/machine-id'), 'utf8')).toBe('');
      expect(existsSync(join(root, 'usr/sbin/policy-rc.d'))).toBe(false);
      expect((await lstat(join(root, 'etc/resolv.conf'))).isSymbolicLink()).toBe(true);
      expect(await readlink(join(root, 'etc/resolv.conf'))).toBe('../run/systemd/resolve/stub-resolv.conf');
      expect(await readdir(join(root, 'var/lib/apt/lists'))).toEqual([]);
      expect(existsSync(join(root, 'var/cache/debconf/config.dat'))).toBe(true);
      expect(await readdir(join(root, 'boot/firmware'))).toEqual([]);
      expect(bootFiles).toEqual(expect.arrayContaining(['cmdline.txt', 'config.txt', 'bcm2711-rpi-4-b.dtb', 'bcm2837-rpi-3-b.dtb']));
      expect(bootFiles.some((f) => f.startsWith('vmlinuz-'))).toBe(true);
      expect(await readBoot('cmdline.txt')).toContain('root=LABEL=RASPIROOT');
      // Debian's config.txt is raspi-firmware's, rewritten at every kernel update and without overlays: left alone.
      expect(await readBoot('config.txt')).not.toContain('disable-bt');
      const buildLog = await readFile(join(out, 'one.build.log'), 'utf8');
      expect(buildLog).toContain('the base has no avahi or Bluetooth units to mask');
      expect(buildLog).toContain("config.txt is Debian's raspi-firmware's");
      expect(await readFile(join(root, 'etc/systemd/network/10-wired.network'), 'utf8')).toMatch(/^\[DHCPv4\]\nSendHostname=no$/m);

      // configure: users, owners and modes, enabled units, the rendered files.
      const passwd = await readFile(join(root, 'etc/passwd'), 'utf8');
      const uid = (name: string) => Number(new RegExp(`^${name}:[^:]*:(\\d+):`, 'm').exec(passwd)?.[1]);
      expect(uid('simplex')).toBeGreaterThan(0);
      expect(passwd).toMatch(/^simplex:[^:]*:\d+:\d+:[^:]*:\/nonexistent:\/usr\/sbin\/nologin$/m);
      expect(passwd).toMatch(/^admin:[^:]*:\d+:\d+:[^:]*:\/home\/admin:\/bin\/bash$/m);
      const cfg = await stat(join(root, 'etc/opt/simplex-smp1'));
      expect([cfg.uid, (cfg.mode & 0o7777).toString(8)]).toEqual([uid('simplex'), '700']);
      expect((await stat(join(root, 'srv/simplex-xftp/files'))).uid).toBe(uid('simplex'));
      expect(await readFile(join(root, 'etc/ssh/authorized_keys/admin'), 'utf8')).toBe(`${sshKey}\n`);
      expect(((await stat(join(root, 'etc/sudoers.d/simplex-pi-admin'))).mode & 0o777).toString(8)).toBe('440');
      expect(await readFile(join(root, 'etc/hostname'), 'utf8')).toBe('simplex-pi\n');
      expect(await readFile(join(root, 'etc/hosts'), 'utf8')).toMatch(/^127\.0\.1\.1\tsimplex-pi$/m);
      expect(await readlink(join(root, 'etc/localtime'))).toBe('/usr/share/zoneinfo/UTC');
      // The packages stage installed tzdata (the Debian base has none), so the link leads to a zone in the image.
      await expect(checkTimezone(root, 'UTC')).resolves.toBeUndefined();
      const wants = await readdir(join(root, 'etc/systemd/system/multi-user.target.wants'));
      expect(wants).toEqual(expect.arrayContaining(['simplex-smp@1.service', 'simplex-smp@2.service', 'simplex-xftp.service', 'ssh.service', 'tor.service']));
      expect(await readdir(join(root, 'etc/systemd/system/sysinit.target.wants'))).toEqual(expect.arrayContaining(['nftables.service', 'simplex-pi-growroot.service']));
      // seal shrank the root filesystem to its content plus a margin (resize2fs's minimum is an overestimate, so
      // somewhat more stays free); unshrunk, the 1536 MiB added for the build would still be free. The Pi grows
      // the filesystem to the card on first boot.
      const free = await statfs(join(root, '.'));
      const freeMiB = (free.bfree * free.bsize) / 2 ** 20;
      expect(freeMiB).toBeGreaterThan(200);
      expect(freeMiB).toBeLessThan(1024);
      expect(await readFile(join(root, 'etc/tor/torrc'), 'utf8')).toContain('%include /etc/tor/torrc.d/*.conf');
      expect((await readdir(join(root, 'etc/ssh'))).filter((f) => f.startsWith('ssh_host_'))).toEqual([]);
      // Each relay starts through the program that keeps its password out of the journal.
      expect(((await stat(join(root, 'usr/local/lib/simplex-pi/redact-passwords'))).mode & 0o777).toString(8)).toBe('755');
      expect(await readFile(join(root, 'etc/systemd/system/simplex-smp@1.service'), 'utf8')).toContain('ExecStart=/usr/local/lib/simplex-pi/redact-passwords /usr/local/bin/smp-server start');
      // The image's own systemd units and binaries, read by the host's systemd-analyze.
      expect(await systemdVerify(root, ['simplex-smp@1.service', 'simplex-xftp.service'])).toBe('');
      expect(await systemdExposure(root, 'simplex-smp@2.service')).toBeLessThanOrEqual(2.0);
    });
    expect(await heldUnder(TEST_CACHE)).toEqual({ mounts: [], loops: [] });
  });

  it('runs first boot in the arm64 chroot of the built image: onion keys, identities, addresses; a second run keeps them', { timeout: 20 * 60 * 1000 }, async () => {
    const image = join(dir, 'firstboot.img');
    execFileSync('cp', ['--sparse=always', join(dir, 'out-one', 'one.img'), image]);
    const resources = new Resources();
    const mounted = await mountImage(image, join(dir, 'firstboot-root'), resources, silentLog);
    try {
      const root = mounted.root;
      const first = await chrootRun(root, ['/usr/local/bin/simplex-pi', 'firstboot'], { allowFailure: true, timeout: 15 * 60 * 1000 });
      expect(first.exitCode, `${first.stdout}\n${first.stderr}`).toBe(0);
      expect(first.stdout).toMatch(/smp1: onion created [a-z2-7]{56}\.onion/);
      expect(first.stdout).toContain('smp1: identity created');

      const passwd = await readFile(join(root, 'etc/passwd'), 'utf8');
      const uid = (name: string) => Number(new RegExp(`^${name}:[^:]*:(\\d+):`, 'm').exec(passwd)?.[1]);
      const plan = JSON.parse(await readFile(join(root, 'etc/simplex-pi/plan.json'), 'utf8'));
      const services: Array<{ dir: string; name: string }> = plan.tor.services;
      expect(services.map((s) => s.name)).toEqual(['simplex-smp1', 'simplex-smp2', 'simplex-xftp', 'simplex-ssh']);
      const keys = new Map<string, string>();
      for (const service of services) {
        const serviceDir = join(root, service.dir);
        const info = await stat(serviceDir);
        expect([info.uid, (info.mode & 0o777).toString(8)]).toEqual([uid('debian-tor'), '700']);
        for (const file of ['hs_ed25519_secret_key', 'hs_ed25519_public_key', 'hostname']) {
          const fileInfo = await stat(join(serviceDir, file));
          expect([fileInfo.uid, (fileInfo.mode & 0o777).toString(8)]).toEqual([uid('debian-tor'), '600']);
        }
        const publicKey = (await readFile(join(serviceDir, 'hs_ed25519_public_key'))).subarray(32);
        expect(await readFile(join(serviceDir, 'hostname'), 'utf8')).toBe(`${onionAddress(publicKey)}\n`);
        keys.set(service.name, createHash('sha256').update(await readFile(join(serviceDir, 'hs_ed25519_secret_key'))).digest('hex'));
      }
      for (const instance of plan.smp.instances) {
        const ini = await readFile(join(root, instance.cfgPath, 'smp-server.ini'), 'utf8');
        for (const setting of instance.ini) expect(readIni(ini, setting.section, setting.key)).toBe(setting.value);
        expect((await stat(join(root, instance.cfgPath, 'ca.crt'))).uid).toBe(uid('simplex'));
      }
      const addresses = (await readFile(join(root, 'var/lib/simplex-pi/addresses.txt'), 'utf8')).trim().split('\n');
      expect(addresses).toHaveLength(4);
      expect(addresses[0]).toMatch(/^smp1\tsmp:\/\/[A-Za-z0-9_-]{43}=:[^\s@:/]+@[a-z2-7]{56}\.onion:5223$/);
      // The XFTP relay's upload password, made by first boot (its init has none), is in the INI and the address.
      expect(addresses[2]).toMatch(/^xftp\txftp:\/\/[A-Za-z0-9_-]{43}=:[A-Za-z0-9_-]{43}=@[a-z2-7]{56}\.onion:443$/);
      const uploadPassword = readIni(await readFile(join(root, plan.xftp.cfgPath, 'file-server.ini'), 'utf8'), 'AUTH', 'create_password');
      expect(addresses[2]).toContain(`:${uploadPassword}@`);
      expect(first.stdout).toContain('xftp: upload password created');
      expect(addresses[3]).toMatch(/^ssh\tssh admin@[a-z2-7]{56}\.onion$/);
      const smp1Onion = (await readFile(join(root, services[0]!.dir, 'hostname'), 'utf8')).trim();
      expect(addresses[0]).toContain(`@${smp1Onion}:5223`);
      expect(((await stat(join(root, 'var/lib/simplex-pi/addresses.txt'))).mode & 0o777).toString(8)).toBe('600');

      const again = await chrootRun(root, ['/usr/local/bin/simplex-pi', 'firstboot'], { allowFailure: true, timeout: 15 * 60 * 1000 });
      expect(again.exitCode, again.stderr).toBe(0);
      expect(again.stdout).not.toContain('created');
      for (const service of services) {
        expect(createHash('sha256').update(await readFile(join(root, service.dir, 'hs_ed25519_secret_key'))).digest('hex')).toBe(keys.get(service.name));
      }
      expect((await readFile(join(root, 'var/lib/simplex-pi/addresses.txt'), 'utf8')).trim().split('\n')).toEqual(addresses);

      // status, readable without knowing systemd or Tor (no systemd runs in a chroot: states are unknown here).
      const report = await chrootRun(root, ['/usr/local/bin/simplex-pi', 'status'], { allowFailure: true });
      expect(report.exitCode, report.stderr).toBe(0);
      expect(report.stdout).toMatch(/^First boot: finished /m);
      for (const unit of ['tor@default', 'simplex-smp@1', 'simplex-smp@2', 'simplex-xftp', 'nftables', 'ssh']) expect(report.stdout).toContain(` ${unit} `);
      expect(report.stdout).toMatch(/^Tor: unknown: cannot ask Tor/m);
      for (const line of addresses) expect(report.stdout).toContain(line.split('\t')[1]);

      // Client authorization is on (generate: 2): the Pi's own Tor loads a key for each of its onion services, and each
      // relay admits its public half, so a relay can be the proxy that reaches a sibling (private routing).
      const view = await torOnionAuthView(root);
      // Every onion service, SSH's too: the relays route for each other, and the watchdog reaches each one.
      expect(view.keys.size, view.output).toBe(plan.tor.services.length);
      for (const instance of plan.tor.services.map((onion: OnionService) => ({ name: onion.name, onion }))) {
        const onion = (await readFile(join(root, instance.onion.dir, 'hostname'), 'utf8')).trim().replace(/\.onion$/, '');
        const privateKey = view.keys.get(onion);
        expect(privateKey, `${instance.name}: ${view.output}`).toBeDefined();
        const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), Buffer.from(privateKey!, 'base64')]);
        const publicKey = Buffer.from(createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })).export({ format: 'jwk' }).x!, 'base64url');
        const admitted = await readFile(join(root, instance.onion.dir, 'authorized_clients/simplex-pi-relays.auth'), 'utf8');
        expect(admitted).toBe(`descriptor:x25519:${base32(publicKey).toUpperCase()}\n`);
      }
      expect(first.stdout).toContain("client authorization: the Pi's own key for its onion services created");
    } finally {
      await resources.releaseAll();
    }
  });

  it("export: first boot leaves it to the export unit; a labelled device that is not USB storage is never written; the files for a stick hold each member's keys for the relays only, and the admin's for SSH", { timeout: 20 * 60 * 1000 }, async () => {
    const image = join(dir, 'export.img');
    execFileSync('cp', ['--sparse=always', join(dir, 'out-one', 'one.img'), image]);
    const stick = async (name: string, label: string) => {
      const path = join(dir, `${name}.fat`);
      execFileSync('truncate', ['-s', '64M', path]);
      execFileSync('mkfs.vfat', ['-F', '32', '-n', label, path]);
      return path;
    };
    // A loop device carries the label but is not USB storage: as the SD card's own partitions, never written.
    const labelled = await stick('labelled', 'SIMPLEX');
    const labelledBefore = createHash('sha256').update(await readFile(labelled)).digest('hex');
    const resources = new Resources();
    const mounted = await mountImage(image, join(dir, 'export-root'), resources, silentLog);
    try {
      const root = mounted.root;
      const device = execFileSync('losetup', ['--find', '--show', labelled]).toString().trim();
      resources.hold(`test stick ${device}`, async () => void execFileSync('losetup', ['--detach', device]));
      const first = await chrootRun(root, ['/usr/local/bin/simplex-pi', 'firstboot'], { allowFailure: true, timeout: 15 * 60 * 1000 });
      expect(first.exitCode, `${first.stdout}\n${first.stderr}`).toBe(0);
      expect(first.stdout).not.toMatch(/export/);
      expect(first.stdout).toContain("client authorization: the admin's key for SSH created; members' keys do not open SSH");
      // The one automatic export is now allowed, until it has happened.
      expect(existsSync(join(root, 'var/lib/simplex-pi/export.pending'))).toBe(true);
      const refused = await chrootRun(root, ['/usr/local/bin/simplex-pi', 'export', '--device', device], { allowFailure: true });
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toContain(`export: ${device} is not a USB stick`);
      expect(createHash('sha256').update(await readFile(labelled)).digest('hex')).toBe(labelledBefore);

      // What a stick would get, made from the state first boot left, by the device's own code.
      const plan = JSON.parse(await readFile(join(root, 'etc/simplex-pi/plan.json'), 'utf8')) as BuildPlan;
      const state = (file: string) => readFile(join(root, 'var/lib/simplex-pi', file), 'utf8').then((text) => JSON.parse(text));
      const servers = (await state('servers.json')).servers as ServerRecord[];
      const files = new Map((await secretFiles(plan, { servers, clientKeys: await state('client-auth.json'), adminKey: await state('client-auth-admin.json') }, 'pi')).map((f) => [f.path, f.content]));
      const relays = servers.filter((s) => s.kind !== 'ssh');
      const ssh = servers.find((s) => s.kind === 'ssh')!;
      expect(files.get('addresses.txt')!.toString().replaceAll('\r\n', '\n')).toBe(relays.map((r) => `${r.name}\t${r.address}\n`).join(''));
      // Each member's private key belongs to the public key every relay's Tor admits, and to no key SSH admits.
      const admitted = async (service: string) => {
        const dir = join(root, 'var/lib/tor', service, 'authorized_clients');
        return new Map(await Promise.all((await readdir(dir)).map(async (f) => [f.replace(/\.auth$/, ''), (await readFile(join(dir, f), 'utf8')).trim().split(':')[2]!] as const)));
      };
      const publicOf = (privateKey: string) => {
        const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), fromBase32(privateKey)]);
        return base32(Buffer.from(createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })).export({ format: 'jwk' }).x!, 'base64url')).toUpperCase();
      };
      for (const client of ['client-1', 'client-2']) {
        for (const relay of relays) {
          const line = files.get(`client-auth/${client}/${relay.name}.auth_private`)!.toString();
          expect(line).toMatch(/^[a-z2-7]{56}:descriptor:x25519:[A-Z2-7]{52}\n$/);
          const [onion, , , privateKey] = line.trim().split(':');
          expect(relay.onion).toBe(`${onion}.onion`);
          expect((await admitted(`simplex-${relay.name}`)).get(client)).toBe(publicOf(privateKey!));
        }
        expect(files.has(`client-auth/${client}/ssh.auth_private`)).toBe(false);
      }
      const sshAdmits = await admitted('simplex-ssh');
      // The admin's key, and the Pi's own (the watchdog reaches SSH's onion as a client would); never a member's.
      expect([...sshAdmits.keys()].sort()).toEqual(['simplex-pi-admin', SELF_KEY_NAME].sort());
      const adminLine = files.get('admin/ssh.auth_private')!.toString();
      expect(adminLine.startsWith(ssh.onion.replace(/\.onion$/, ':descriptor:x25519:'))).toBe(true);
      expect(sshAdmits.get('simplex-pi-admin')).toBe(publicOf(adminLine.trim().split(':')[3]!));
      expect(files.get('admin/ssh.txt')!.toString()).toContain(ssh.address);
      for (const relay of relays) expect(decodeQrPng(files.get(`qr/${relay.name}.png`) as Buffer)).toBe(relay.address);
    } finally {
      await resources.releaseAll();
    }
  });

  it('first boot cut off after each step (power cut) resumes to the same final state, keeping every key already written', { timeout: 30 * 60 * 1000 }, async () => {
    const image = join(dir, 'powercut.img');
    execFileSync('cp', ['--sparse=always', join(dir, 'out-one', 'one.img'), image]);
    const resources = new Resources();
    const mounted = await mountImage(image, join(dir, 'powercut-root'), resources, silentLog);
    const root = mounted.root;
    const secretKeys = async () => {
      const found = new Map<string, string>();
      for (const name of ['simplex-smp1', 'simplex-smp2', 'simplex-xftp', 'simplex-ssh']) {
        const key = await readFile(join(root, 'var/lib/tor', name, 'hs_ed25519_secret_key')).catch(() => undefined);
        if (key) found.set(name, createHash('sha256').update(key).digest('hex'));
      }
      return found;
    };
    /** Run first boot and, after `lines` lines of its log, cut the power: every process in the image dies at once. */
    const runUntil = async (lines: number): Promise<{ completed: boolean; output: string }> => {
      const child = execa('chroot', [root, '/usr/local/bin/simplex-pi', 'firstboot'], { env: CHROOT_ENV, extendEnv: false, reject: false, all: true });
      let output = '';
      let cut = false;
      child.all!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (!cut && output.split('\n').filter(Boolean).length >= lines) {
          cut = true;
          void killProcessesRootedUnder(root);
        }
      });
      const result = await child;
      await killProcessesRootedUnder(root);
      return { completed: !cut && result.exitCode === 0, output };
    };
    try {
      let kept = new Map<string, string>();
      let finished = false;
      for (let lines = 1; lines <= 20 && !finished; lines++) {
        const run = await runUntil(lines);
        finished = run.completed;
        const now = await secretKeys();
        for (const [name, hash] of kept) expect(now.get(name), `${name} after a cut at line ${lines}:\n${run.output}`).toBe(hash);
        kept = now;
      }
      expect(finished).toBe(true);
      const final = await chrootRun(root, ['/usr/local/bin/simplex-pi', 'firstboot'], { allowFailure: true, timeout: 10 * 60 * 1000 });
      expect(final.exitCode, final.stderr).toBe(0);
      expect(final.stdout).not.toContain('created');
      expect(await secretKeys()).toEqual(kept);
      expect(kept.size).toBe(4);
      const addresses = (await readFile(join(root, 'var/lib/simplex-pi/addresses.txt'), 'utf8')).trim().split('\n');
      expect(addresses).toHaveLength(4);
      for (const instance of ['simplex-smp1', 'simplex-smp2']) {
        const onion = (await readFile(join(root, 'var/lib/tor', instance, 'hostname'), 'utf8')).trim();
        expect(addresses.some((line) => line.includes(`@${onion}:5223`))).toBe(true);
      }
    } finally {
      await killProcessesRootedUnder(root);
      await resources.releaseAll();
    }
  });

  it('rebuilds after a recipe edit from the cached packages layer, without running apt', { timeout: 15 * 60 * 1000 }, async () => {
    // The edit: another instance, another host name, and an overlay of the recipe's own.
    const overlay = join(dir, 'overlay');
    await mkdir(join(overlay, 'etc/simplex-pi-extra'), { recursive: true });
    await writeFile(join(overlay, 'etc/simplex-pi-extra/marker'), 'from the recipe overlay\n');
    // Owned by some user on the build machine: in the image it must belong to root.
    await chown(join(overlay, 'etc/simplex-pi-extra/marker'), 1234, 1234);
    await writeFile(join(dir, 'two.yaml'), `${recipe('two', standins, { instances: 3 })}hostname: relays\noverlays: [overlay]\n`);
    const out = join(dir, 'out-two');
    const result = await cli(['build', '--recipe', join(dir, 'two.yaml'), '--out', out, '--cache', TEST_CACHE, '--compress', 'none']);
    expect(result.exitCode, result.all).toBe(0);
    expect(result.all).toMatch(/packages \(cached layer [0-9a-f]+\)/);
    const log = await readFile(join(out, 'two.build.log'), 'utf8');
    expect(log).not.toContain('apt-get install');
    expect((await readdir(out)).sort()).toEqual(['SHA256SUMS', 'manifest.json', 'two.build.log', 'two.img', 'two.img.bmap', 'two.rpi-imager-manifest', 'two.rpi-imager.json']);
    // Uncompressed: Imager downloads the image itself.
    const imager = await imagerEntry(out, 'two.rpi-imager-manifest');
    expect(fileURLToPath(imager.url)).toBe(join(out, 'two.img'));
    expect([imager.extract_size, imager.image_download_size]).toEqual([imager.sizes['two.img'], imager.sizes['two.img']]);
    expect([imager.extract_sha256, imager.image_download_sha256]).toEqual([imager.sums.get('two.img'), imager.sums.get('two.img')]);
    await inspectImage(join(out, 'two.img'), async ({ root }) => {
      const plan = JSON.parse(await readFile(join(root, 'etc/simplex-pi/plan.json'), 'utf8'));
      expect(plan.smp.instances).toHaveLength(3);
      expect(await readFile(join(root, 'etc/hostname'), 'utf8')).toBe('relays\n');
      expect(await readFile(join(root, 'etc/simplex-pi-extra/marker'), 'utf8')).toBe('from the recipe overlay\n');
      const marker = await stat(join(root, 'etc/simplex-pi-extra/marker'));
      expect([marker.uid, marker.gid]).toEqual([0, 0]);
      expect(await readdir(join(root, 'etc/systemd/system/multi-user.target.wants'))).toContain('simplex-smp@3.service');
    });
  });

  /** A release `version` whose notes give `notes` for the smp asset and whose smp asset is `bytes`. */
  function serveRelease(version: string, notes: string, bytes: Buffer): void {
    server.serve(`/releases/download/v${version}/smp-server-ubuntu-22_04-aarch64`, bytes);
    server.serve(`/api/releases/tags/v${version}`, JSON.stringify({ tag_name: `v${version}`, body: notes }));
  }
  const smpAt = (version: string) => `${server.url}/releases/download/v${version}/smp-server-ubuntu-22_04-aarch64`;

  /** A lock file (simplexmq.lock.json's format) in the scratch directory that locks this version's smp asset at `sha256`. */
  const lockFile = async (name: string, sha256: string) => {
    const path = join(dir, `${name}.lock.json`);
    await writeFile(path, JSON.stringify({ lockfileVersion: 1, releases: { [VERSION]: { 'smp-server-ubuntu-22_04-aarch64': sha256 } } }));
    return path;
  };
  const tamperedStandin = async () => {
    const genuine = await readFile(standins.smp.path);
    const tampered = Buffer.from(genuine);
    tampered[tampered.length - 2] = tampered[tampered.length - 2]! ^ 1;
    return { genuineSha: createHash('sha256').update(genuine).digest('hex'), tampered, tamperedSha: createHash('sha256').update(tampered).digest('hex') };
  };

  const refusals: Array<[string, () => Promise<string | { recipe: string; args: string[] }>, RegExp]> = [
    [
      'a binary whose bytes differ from the sha256 in the release notes',
      async () => {
        const genuine = await readFile(standins.smp.path);
        const tampered = Buffer.from(genuine);
        tampered[tampered.length - 2] = tampered[tampered.length - 2]! ^ 1;
        const sha = createHash('sha256').update(Buffer.concat([genuine, Buffer.from('genuine')])).digest('hex');
        serveRelease('6.5.7', `SHA2-256(smp-server-ubuntu-22_04-aarch64)= ${sha}\n`, tampered);
        return recipe('bad-hash', standins, { smpUrl: smpAt('6.5.7') }).replace(standins.releaseNotesUrl, `${server.url}/api/releases/tags/v6.5.7`);
      },
      /sha256 mismatch for smp-server: expected [0-9a-f]{64}, got [0-9a-f]{64}/,
    ],
    [
      'a release whose notes do not list the asset',
      async () => {
        serveRelease('6.5.8', `SHA2-256(xftp-server-ubuntu-22_04-aarch64)= ${standins.xftp.sha256}\n`, await readFile(standins.smp.path));
        return recipe('no-line', standins, { smpUrl: smpAt('6.5.8') }).replace(standins.releaseNotesUrl, `${server.url}/api/releases/tags/v6.5.8`);
      },
      /have no SHA2-256\(smp-server-ubuntu-22_04-aarch64\) line, so smp-server cannot be verified; pin simplexmq.smp_server.sha256/,
    ],
    [
      'a binary whose sha256 differs from the lock file, though the release notes agree with it',
      async () => {
        const { genuineSha, tampered, tamperedSha } = await tamperedStandin();
        serveRelease('6.5.10', `SHA2-256(smp-server-ubuntu-22_04-aarch64)= ${tamperedSha}\n`, tampered);
        return {
          recipe: recipe('lock-vs-notes', standins, { smpUrl: smpAt('6.5.10'), smpSha256: 'lock' }).replace(standins.releaseNotesUrl, `${server.url}/api/releases/tags/v6.5.10`),
          args: ['--lock', await lockFile('lock-vs-notes', genuineSha)],
        };
      },
      /the release notes at \S+ give sha256 [0-9a-f]{64} for smp-server-ubuntu-22_04-aarch64, but \S+lock-vs-notes\.lock\.json locks simplexmq [\d.]+'s at [0-9a-f]{64}: the asset was replaced after it was locked, or the notes were changed\. Nothing was downloaded/,
    ],
    [
      'a binary whose sha256 differs from the lock file, where the release notes do not list it',
      async () => {
        // The lock names bytes no build has fetched (the download cache holds files by sha256: a locked sha256
        // already there would be taken from it, and the served file never read).
        const locked = createHash('sha256').update(randomBytes(32)).digest('hex');
        serveRelease('6.5.11', `SHA2-256(xftp-server-ubuntu-22_04-aarch64)= ${standins.xftp.sha256}\n`, await readFile(standins.smp.path));
        return {
          recipe: recipe('lock-only', standins, { smpUrl: smpAt('6.5.11'), smpSha256: 'lock' }).replace(standins.releaseNotesUrl, `${server.url}/api/releases/tags/v6.5.11`),
          args: ['--lock', await lockFile('lock-only', locked)],
        };
      },
      /sha256 mismatch for smp-server \(locked in lock-only\.lock\.json\): expected [0-9a-f]{64}, got [0-9a-f]{64}/,
    ],
    [
      'a release that cannot be found',
      async () => recipe('no-release', standins).replace(standins.releaseNotesUrl, `${server.url}/api/releases/tags/v9.9.9`),
      /cannot fetch simplexmq release notes from .*v9\.9\.9: HTTP 404/,
    ],
  ];

  it.each(refusals)('refuses %s and writes nothing to the output', { timeout: 10 * 60 * 1000 }, async (what, make, message) => {
    const path = join(dir, 'bad.yaml');
    const made = await make();
    await writeFile(path, typeof made === 'string' ? made : made.recipe);
    const out = join(dir, `out-${what.replaceAll(' ', '-').replaceAll(',', '')}`);
    const result = await cli(['build', '--recipe', path, '--out', out, '--cache', TEST_CACHE, '--compress', 'none', ...(typeof made === 'string' ? [] : made.args)]);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toMatch(/build log: .*\/logs\//);
    expect(existsSync(out)).toBe(false);
    expect(await heldUnder(TEST_CACHE)).toEqual({ mounts: [], loops: [] });
  });

  it('--update-lock enters the release notes\' sha256 into the lock file and says so; the build then takes it from the lock', { timeout: 10 * 60 * 1000 }, async () => {
    // A lock that knows another version only: this one is added, the other kept.
    const lock = join(dir, 'update.lock.json');
    const other = 'a'.repeat(64);
    await writeFile(lock, JSON.stringify({ lockfileVersion: 1, releases: { '6.4.9': { 'smp-server-ubuntu-22_04-aarch64': other } } }));
    await writeFile(join(dir, 'locked.yaml'), recipe('locked', standins, { smpSha256: 'lock' }));
    const out = join(dir, 'out-locked');
    const result = await cli(['build', '--recipe', join(dir, 'locked.yaml'), '--out', out, '--cache', TEST_CACHE, '--compress', 'none', '--lock', lock, '--update-lock']);
    expect(result.exitCode, result.all).toBe(0);
    expect(result.stderr).toContain(`warning: ${lock} updated from the release notes: ${VERSION} smp-server-ubuntu-22_04-aarch64: added ${standins.smp.sha256}. Review the change (git diff)`);
    const written = JSON.parse(await readFile(lock, 'utf8')) as { releases: Record<string, Record<string, string>> };
    expect(written.releases).toEqual({ '6.4.9': { 'smp-server-ubuntu-22_04-aarch64': other }, [VERSION]: { 'smp-server-ubuntu-22_04-aarch64': standins.smp.sha256 } });
    const { simplexmq } = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as { simplexmq: { binaries: Array<{ name: string; sha256: string; sha256Source: string }> } };
    expect(simplexmq.binaries.find((b) => b.name === 'smp-server')).toMatchObject({ sha256: standins.smp.sha256, sha256Source: 'lock' });
    expect(simplexmq.binaries.find((b) => b.name === 'xftp-server')).toMatchObject({ sha256Source: 'recipe' });
  });

  it('refuses a binary built for another machine, and one that reports another version', { timeout: 10 * 60 * 1000 }, async () => {
    const x86 = await readFile(process.execPath);
    server.serve('/x86/smp-server', x86);
    const x86sha = createHash('sha256').update(x86).digest('hex');
    const wrongMachine = recipe('x86', standins).replace(/smp_server:\n.*\n.*\n/, `smp_server:\n    url: ${server.url}/x86/smp-server\n    sha256: ${x86sha}\n`);
    await writeFile(join(dir, 'x86.yaml'), wrongMachine);
    const first = await cli(['build', '--recipe', join(dir, 'x86.yaml'), '--out', join(dir, 'out-x86'), '--cache', TEST_CACHE, '--compress', 'none']);
    expect(first.stderr).toContain('smp-server is built for x86-64 (64-bit), not aarch64');
    expect(existsSync(join(dir, 'out-x86'))).toBe(false);

    const older = await buildStandin({ kind: 'smp', version: '6.5.1.0', output: join(dir, 'smp-server-6.5.1') });
    const olderBytes = await readFile(older);
    server.serve('/old/smp-server', olderBytes);
    const olderSha = createHash('sha256').update(olderBytes).digest('hex');
    const wrongVersion = recipe('old', standins).replace(/smp_server:\n.*\n.*\n/, `smp_server:\n    url: ${server.url}/old/smp-server\n    sha256: ${olderSha}\n`);
    await writeFile(join(dir, 'old.yaml'), wrongVersion);
    const second = await cli(['build', '--recipe', join(dir, 'old.yaml'), '--out', join(dir, 'out-old'), '--cache', TEST_CACHE, '--compress', 'none']);
    expect(second.stderr).toContain(`smp-server reports version 6.5.1.0, but the recipe asks for simplexmq ${VERSION}`);
    expect(existsSync(join(dir, 'out-old'))).toBe(false);

    // The stand-in needs the libraries the real assets need; one more that no image has is found by ldd in the image.
    const needy = await buildStandin({ kind: 'smp', version: `${VERSION}.0`, output: join(dir, 'smp-server-needy'), needed: [...REAL_NEEDED, 'libsimplexpi-absent.so.1'] });
    const needyBytes = await readFile(needy);
    server.serve('/needy/smp-server', needyBytes);
    const needySha = createHash('sha256').update(needyBytes).digest('hex');
    await writeFile(join(dir, 'needy.yaml'), recipe('needy', standins).replace(/smp_server:\n.*\n.*\n/, `smp_server:\n    url: ${server.url}/needy/smp-server\n    sha256: ${needySha}\n`));
    const third = await cli(['build', '--recipe', join(dir, 'needy.yaml'), '--out', join(dir, 'out-needy'), '--cache', TEST_CACHE, '--compress', 'none']);
    expect(third.stderr).toContain('smp-server needs shared libraries the image does not have: libsimplexpi-absent.so.1;');
    expect(existsSync(join(dir, 'out-needy'))).toBe(false);
  });
});
