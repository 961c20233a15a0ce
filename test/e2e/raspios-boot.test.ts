import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildPlan } from '../../builder/plan/plan.ts';
import { isRoot, testSshPublicKey } from '../helpers/env.ts';
import { TestServer } from '../helpers/http-server.ts';
import { type Customised, imagerCustomise, yescrypt } from '../helpers/imager.ts';
import { LOOKALIKE_OS_NAME, raspiosLookalike, serveLookalike } from '../helpers/raspios-lookalike.ts';
import { type BootFiles, VmTestRun, extractBootFiles, largerCard, makeStick, readCardCmdline, vmScratch } from '../helpers/vm.ts';
import { type AgentReport, type SystemReport, buildE2eImage, readStick, stickFiles } from './cluster.ts';
import { TorNetwork } from '../helpers/tor-network.ts';
import { authDirOf, reachEvery, targetOf, torOverlay } from './tor-scenario.ts';
import { type KeyPair, generateKeyPair, publicKeyBase64 } from '../../builder/signing/minisign.ts';
import { signBundle, testBundle } from '../helpers/update-bundles.ts';
import type { Vm } from '../helpers/vm.ts';

/**
 * Issue 10: the path real users take. The full pipeline on the Raspberry Pi OS Trixie look-alike
 * (test/helpers/raspios-lookalike.ts: pi-gen's layout and first-boot behaviour, consumed through the real
 * raspios provider from a local Imager repository), the result "flashed" to cards 4 GiB larger than the image,
 * one customised as Raspberry Pi Imager 2.x customises it (cloudinit-rpi: user, password, key, host name, time
 * zone), one not, each booted in qemu-system-aarch64. The card must come up the way a Pi would: the root
 * filesystem filling the card, Raspberry Pi OS's resize done once, a machine ID of its own, cloud-init
 * finished, Imager's user there, nothing waiting on a console, and simplex-pi's first boot, Tor and every
 * relay up, the addresses on the stick under the host name the Pi really has. A second boot changes nothing.
 */

const haveQemu = existsSync('/usr/bin/qemu-system-aarch64');
/** The look-alike's first boot does more than the Debian base's (initramfs resize, cloud-init under emulation). */
const BOOT_LIMIT = 15 * 60 * 1000;
const EXTRA_GIB = 4;
const MiB = 1024 * 1024;
const SERVERS = ['smp1', 'smp2', 'smp3', 'xftp', 'ssh'];

describe.runIf(isRoot && haveQemu)('the Raspberry Pi OS look-alike, built on and booted (qemu-system-aarch64)', () => {
  const server = new TestServer();
  let dir: string;
  let image: string;
  let plan: BuildPlan;
  let boot: BootFiles;
  let imagerKey: string;
  let imagerHash: string;
  let customised: Customised;
  const disk = (card: string) => join(dir, `card-${card}.img`);
  const stick = (name: string) => join(dir, `stick-${name}.img`);
  const run = new VmTestRun('raspios e2e');
  const { timings } = run;
  const track = run.track.bind(run);
  let first: { system: SystemReport; report: AgentReport; cardCmdline: string };
  const IMAGER = { hostname: 'clinic-relay', userName: 'alice', timezone: 'Asia/Kolkata', keyboard: 'in' };
  /**
   * The private Tor network (test/helpers/tor-network.ts) this file's card A joins from its second boot on, for the
   * updates (issue 16): the relays checked through it, and the network the only way out. Its own network, not the boot
   * test's: the two files run at the same time.
   */
  let torNet: TorNetwork;
  let torReady: Promise<void>;
  /** The key the test recipe names in update.public_key, as a project would sign its releases. */
  let updateKey: KeyPair;

  beforeAll(async () => {
    await server.start();
    dir = run.dir = await vmScratch();
    const lookalike = await raspiosLookalike();
    timings.lookalikeBuildSeconds = lookalike.buildSeconds;
    const imagerJson = await serveLookalike(server, lookalike);
    torNet = await TorNetwork.create(join(dir, 'tor-network'));
    updateKey = generateKeyPair();
    const built = await buildE2eImage(server, dir, undefined, {
      name: 'e2e-raspios',
      base: { provider: 'raspios', imager_json: imagerJson, os_name: LOOKALIKE_OS_NAME },
      overlays: [await torOverlay(dir, torNet)],
      extra: [`update: { public_key: ${publicKeyBase64(updateKey.publicKey)} }`],
    });
    torReady = torNet.start();
    torReady.catch(() => undefined);
    ({ image, plan } = built);
    timings.buildSeconds = built.buildSeconds;
    boot = await extractBootFiles(image, join(dir, 'boot'));
    await largerCard(image, disk('A'), EXTRA_GIB);
    await largerCard(image, disk('B'), EXTRA_GIB);
    imagerKey = await testSshPublicKey();
    imagerHash = await yescrypt('correct horse battery staple');
    customised = await imagerCustomise(disk('A'), 'cloudinit-rpi', { ...IMAGER, passwordHash: imagerHash, sshEnabled: true, sshAuthorizedKeys: [imagerKey] });
    for (const name of ['A', 'B']) await makeStick(stick(name), plan.export.usbLabel);
  }, 60 * 60 * 1000);

  /** Card A's second boot, in the private Tor network, left running for the update tests (they boot it again without it). */
  let onTor: Vm | undefined;

  afterAll(async () => {
    await server.stop();
    await onTor?.powerOff().catch(() => undefined);
    // The network's tors write into the scratch directory until they exit.
    await torNet?.stop();
    await run.finish();
  });

  /**
   * Boot a card until every relay is up, take both agent reports, and power off, or with `keep`, leave it running;
   * `figure` names the time to ready.
   */
  const bootOnce = async (name: string, card: string, figure: string, stickPath?: string, options: { torNetwork?: boolean; keep?: boolean } = {}) => {
    const vm = await run.start({ name, disk: disk(card), stick: stickPath, boot, dir, ...(options.torNetwork ? { torNetwork: torNet.vmNetwork() } : {}) });
    await vm.waitForAgent('ready', BOOT_LIMIT);
    timings[figure] = vm.elapsed() / 1000;
    // The export unit follows first boot (Tor and the relays never wait on a stick): its work is done when it says so.
    if (stickPath) await vm.waitForLine(/export: wrote the addresses and keys to /, 120_000);
    const report = await vm.report<AgentReport>();
    const system = await vm.report<SystemReport>('system', 240_000);
    if (!options.keep) await vm.powerOff();
    return { vm, report, system };
  };

  /** What every first boot on this base must show, customised or not. */
  const expectGrownAndSettled = (system: SystemReport) => {
    // The root partition reaches the end of the card, and the filesystem fills the partition (not ~256 MiB free
    // on a shrunk filesystem, as an empty machine-id left it: rpi-resize never ran).
    expect(system.diskSectors).not.toBeNull();
    expect(system.diskSectors! - (system.rootStart + system.rootSectors), 'sectors after the root partition').toBeLessThan((8 * MiB) / 512);
    expect(system.fsBytes, `filesystem ${system.fsBytes} B on a ${system.rootSectors * 512} B partition`).toBeGreaterThan(system.rootSectors * 512 * 0.95);
    expect(system.fsAvailBytes).toBeGreaterThan((EXTRA_GIB - 0.5) * 1024 * MiB);
    // Raspberry Pi OS's own growth ran on this first boot and disabled itself.
    expect(system.resizeUnit).toMatchObject({ ConditionResult: 'yes', Result: 'success', enabled: 'disabled' });
    expect(system.resizeUnit.ExecMainStartTimestampMonotonic).not.toBe('0');
    expect(system.growfsRoot.Result).toBe('success');
    // A machine ID of the card's own, made on this boot.
    expect(system.machineId).toMatch(/^[0-9a-f]{32}$/);
    // `resize` was used up; the card's disk id changed and fstab and cmdline.txt agree with each other.
    expect(system.cardCmdline).not.toMatch(/\bresize\b/);
    const partuuid = /root=PARTUUID=([0-9a-f]{8})-02/.exec(system.cardCmdline ?? '')?.[1];
    expect(partuuid).toBeDefined();
    expect(system.fstab).toContain(`PARTUUID=${partuuid}-02`);
    expect(system.fstab).toContain(`PARTUUID=${partuuid}-01`);
    // Nothing waits on a console or hangs: systemd settled, no job left.
    expect(system.systemState, `failed units: ${system.failedUnits}`).toBe('running');
    expect(system.jobs).toBe('');
    // cloud-init finished, and simplex-pi's first boot did not wait for its network-bound config stage.
    expect(system.cloudInit).toMatch(/status: done/);
    expect(system.firstbootAfter).not.toMatch(/cloud-config\.service/);
    // userconf-pi's rename wizard is disarmed: it would offer the admin account for renaming on tty8.
    expect(system.userconfig?.enabled).toBe('disabled');
    expect(system.gettyTty1).toBe('enabled');
  };

  /** Tor and every relay run; on a card's first boot, first boot itself ran and succeeded (later boots skip it). */
  const expectRelaysUp = (report: AgentReport, firstBoot = true) => {
    expect(report.units['tor@default.service']?.ActiveState).toBe('active');
    for (const instance of plan.smp.instances) expect(report.units[instance.unit], instance.unit).toMatchObject({ ActiveState: 'active', SubState: 'running' });
    expect(report.units[plan.xftp!.unit]).toMatchObject({ ActiveState: 'active', SubState: 'running' });
    if (firstBoot) expect(report.units['simplex-pi-firstboot.service']).toMatchObject({ ActiveState: 'active', Result: 'success' });
  };

  it(
    'a card customised by Imager (cloudinit-rpi): grows to the card, takes Imager\'s user, key and host name, and brings up every relay',
    { timeout: BOOT_LIMIT + 5 * 60_000 },
    track(async () => {
      expect(plan.hostname).not.toBe(IMAGER.hostname);
      const { vm, report, system } = await bootOnce('A-first', 'A', 'customisedFirstBootReady', stick('A'));
      expect(vm.commandLine).toContain(`ds=nocloud;i=${customised.instanceId}`);

      expectGrownAndSettled(system);
      expectRelaysUp(report);
      // Imager's customisation took: its host name, its user with the yescrypt hash and the key, its time zone.
      expect(system.hostname).toBe(IMAGER.hostname);
      const alice = system.users.find((u) => u.name === IMAGER.userName);
      expect(alice, JSON.stringify(system.users)).toBeDefined();
      expect(alice!.passwordHash).toBe(imagerHash);
      expect(alice!.authorizedKeys).toContain(imagerKey);
      expect(system.cloudInitUnits['cloud-final.service']?.Result).toBe('success');

      // The addresses reach the stick under the host name the Pi really has (Imager's), not the recipe's.
      const contents = readStick(stick('A'), system.hostname);
      expect([...contents.addresses.keys()].sort()).toEqual(SERVERS.filter((s) => s !== 'ssh').sort());
      expect(contents.ssh).toMatch(/^ssh \S+@[a-z2-7]{56}\.onion$/);
      expect(report.status).toContain(IMAGER.hostname);
      first = { system, report, cardCmdline: await readCardCmdline(disk('A')) };
    }),
  );

  it(
    'the customised card booted again: nothing changes (machine ID, size, keys, cmdline.txt), nothing runs twice',
    { timeout: BOOT_LIMIT + 5 * 60_000 },
    track(async () => {
      expect(first, 'needs the first boot').toBeDefined();
      // In the private Tor network: the update tests below go on with this boot.
      await torReady;
      const { vm, report, system } = await bootOnce('A-second', 'A', 'secondBootReady', undefined, { torNetwork: true, keep: true });
      onTor = vm;
      expect(system.machineId).toBe(first.system.machineId);
      expect(system.rootSectors).toBe(first.system.rootSectors);
      expect(system.fsBytes).toBe(first.system.fsBytes);
      expect(system.cardCmdline).toBe(first.system.cardCmdline);
      expect(await readCardCmdline(disk('A'))).toBe(first.cardCmdline);
      expect(system.hostname).toBe(IMAGER.hostname);
      expect(system.resizeUnit.ExecMainStartTimestampMonotonic).toBe('0');
      expect(report.keys).toEqual(first.report.keys);
      expect(report.units['simplex-pi-firstboot.service']?.ConditionResult).toBe('no');
      expect(system.systemState, `failed units: ${system.failedUnits}`).toBe('running');
      expectRelaysUp(report, false);
    }),
  );

  /** What the agent reports of the relays (relay-versions, and after each update). */
  interface RelayVersions {
    relays: Record<string, { ActiveState: string; SubState: string; invocation: string; version: string | null }>;
    current: string | null;
  }
  type UpdateAnswer = RelayVersions & { exitCode: number; output: string; seconds: number };

  it(
    'relay updates, on the running card in the private Tor network: a bundle with a flipped byte or another key\'s signature is refused before anything changes; a signed newer release is applied one relay at a time, checked through Tor, every address unchanged; a release whose relay cannot start is rolled back, and every relay runs the previous release again',
    { timeout: 45 * 60_000 },
    track(async () => {
      expect(first, 'needs the first boot').toBeDefined();
      expect(onTor, "needs card A's second boot, in the private Tor network").toBeDefined();
      const vm = onTor!;
      const bundles = join(dir, 'bundles');
      await mkdir(bundles, { recursive: true });
      const good = await testBundle(bundles, '6.5.3', updateKey);
      const broken = await testBundle(bundles, '6.5.4', updateKey, { brokenSmp: true });

      // A member's Tor client, with the member's keys off the stick: what every address is reached with.
      const folder = `simplex-pi-${IMAGER.hostname}`;
      const memberKeys = new Map([...stickFiles(stick('A'))].filter(([f]) => f.startsWith(`${folder}/client-auth/client-1/`)));
      const member = await torNet.client('member', { authDir: await authDirOf(join(dir, 'auth-member'), memberKeys) });
      const targets = new Map([...readStick(stick('A'), IMAGER.hostname).addresses].map(([name, address]) => [name, targetOf(address)]));
      /** Every address on the stick answers through Tor with the identity in it: the addresses the group has still work. */
      const reachAll = async (when: string) => {
        const { reached, failures } = await reachEvery(targets, member.socks, Date.now(), 12 * 60_000);
        expect([...reached.keys()].sort(), `${when}: not reached: ${JSON.stringify(Object.fromEntries(failures))}; console ${vm.consoleLog}`).toEqual([...targets.keys()].sort());
      };
      await reachAll('before any update');

      const relayUnits = [...plan.smp.instances.map((i) => i.unit), plan.xftp!.unit];
      const versions = (report: RelayVersions) => Object.fromEntries(relayUnits.map((u) => [u, /\bv(\d+\.\d+\.\d+)/.exec(report.relays[u]?.version ?? '')?.[1] ?? null]));
      const invocations = (report: RelayVersions) => Object.fromEntries(relayUnits.map((u) => [u, report.relays[u]?.invocation]));
      const all = (version: string) => Object.fromEntries(relayUnits.map((u) => [u, version]));
      const apply = (bundle: { bytes: Buffer; signature: Buffer }, flags = '-') =>
        vm.report<UpdateAnswer>(`update ${flags} ${bundle.bytes.toString('base64')} ${bundle.signature.toString('base64')}`, 40 * 60_000);

      const before = await vm.report<RelayVersions>('relay-versions');
      expect(before.current).toBe('6.5.2');
      expect(versions(before)).toEqual(all('6.5.2'));

      // Refused before anything changes: one flipped byte, and a good bundle signed by another key. No relay restarted.
      const flipped = Buffer.from(good.bytes);
      flipped[Math.floor(flipped.length / 2)]! ^= 0x01;
      const damaged = await apply({ bytes: flipped, signature: good.signature });
      expect(damaged.exitCode, damaged.output).not.toBe(0);
      expect(damaged.output).toMatch(/signature.*nothing was changed/s);
      const stranger = await apply({ bytes: good.bytes, signature: signBundle(good.bytes, generateKeyPair(), 'simplex-pi-relay-update-6.5.3.tar') });
      expect(stranger.exitCode, stranger.output).not.toBe(0);
      expect(stranger.output).toMatch(/not from the holder of the update key.*nothing was changed/s);
      for (const refused of [damaged, stranger]) {
        expect(refused.current).toBe('6.5.2');
        expect(invocations(refused), 'no relay restarted').toEqual(invocations(before));
      }

      // A signed newer release: applied, one relay at a time, each checked through Tor; the addresses unchanged.
      const updated = await apply(good);
      expect(updated.exitCode, updated.output).toBe(0);
      timings.updateSeconds = updated.seconds;
      expect(updated.current).toBe('6.5.3');
      expect(versions(updated), updated.output).toEqual(all('6.5.3'));
      for (const u of relayUnits) expect(updated.relays[u], u).toMatchObject({ ActiveState: 'active', SubState: 'running' });
      for (const instance of [...plan.smp.instances, plan.xftp!]) expect(updated.output).toMatch(new RegExp(`${instance.name} healthy on 6\\.5\\.3: reached through Tor`));
      await reachAll('after the update');
      const status = await vm.report<{ simplexmq: { running: string; lastUpdate: { outcome: string; from: string; to: string } } }>('status-json');
      expect(status.simplexmq).toMatchObject({ running: '6.5.3', lastUpdate: { outcome: 'updated', from: '6.5.2', to: '6.5.3' } });

      // A release whose SMP relay cannot start: the first relay restarted on it fails its check, and everything goes back.
      const rolledBack = await apply(broken);
      expect(rolledBack.exitCode, rolledBack.output).not.toBe(0);
      timings.rollbackSeconds = rolledBack.seconds;
      expect(rolledBack.output).toMatch(/smp1 is not healthy on simplexmq 6\.5\.4/);
      expect(rolledBack.output).toMatch(/Rolled back: every relay runs simplexmq 6\.5\.3 again/);
      expect(rolledBack.current).toBe('6.5.3');
      expect(versions(rolledBack), rolledBack.output).toEqual(all('6.5.3'));
      for (const u of relayUnits) expect(rolledBack.relays[u], u).toMatchObject({ ActiveState: 'active', SubState: 'running' });
      const after = await vm.report<{ simplexmq: { running: string; lastUpdate: { outcome: string; to: string } } }>('status-json');
      expect(after.simplexmq).toMatchObject({ running: '6.5.3', lastUpdate: { outcome: 'rolled-back', to: '6.5.4' } });
      await reachAll('after the rollback');
      await member.stop();
      await vm.powerOff();
      onTor = undefined;
      // Nothing in this file reached past the private network: not the VM, not a relay, not a client.
      expect(await torNet.outsideContacts()).toBe(0);
    }),
  );

  it(
    'a card flashed without customisation: grows, settles with no console prompt, and brings up every relay',
    { timeout: BOOT_LIMIT + 5 * 60_000 },
    track(async () => {
      const { report, system } = await bootOnce('B-first', 'B', 'plainFirstBootReady', stick('B'));
      expectGrownAndSettled(system);
      expectRelaysUp(report);
      expect(system.hostname).toBe(plan.hostname);
      // No Imager user: pi-gen's first user stays as pi-gen left it, with no way to log in.
      expect(system.users.map((u) => u.name)).not.toContain(IMAGER.userName);
      expect(system.users.find((u) => u.uid === 1000)).toMatchObject({ name: 'pi', shell: '/usr/sbin/nologin' });
      const contents = readStick(stick('B'), system.hostname);
      expect([...contents.addresses.keys()].sort()).toEqual(SERVERS.filter((s) => s !== 'ssh').sort());
    }),
  );
});
