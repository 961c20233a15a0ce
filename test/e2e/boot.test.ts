import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildPlan } from '../../builder/plan/plan.ts';
import { UNITS } from '../../builder/plan/layout.ts';
import { sha256File } from '../../builder/hash.ts';
import { REPO, TEST_CACHE, cli, freePort, isRoot } from '../helpers/env.ts';
import { TestServer } from '../helpers/http-server.ts';
import { SERVED_PORT, TorNetwork } from '../helpers/tor-network.ts';
import { AptRepo, type Suite, makeDeb, repackDeb } from '../helpers/apt-repo.ts';
import { debianDeb } from '../helpers/debian-packages.ts';
import { isClearnetUri, sourceUris } from '../../builder/image/apt-sources.ts';
import { probeService } from '../../builder/device/relay-probe.ts';
import type { WatchdogEvent } from '../../builder/device/watchdog-policy.ts';
import { TOR_TEST_RECIPE, type WatchdogView, authDirOf, healthOf, reachEvery, secondsTo, targetOf, torOverlay, watchdogAllOk, watchdogOf, watchdogUntil } from './tor-scenario.ts';
import { type BootFiles, Vm, VmTestRun, copyDisk, largerCard, extractBootFiles, makeStick, vmScratch } from '../helpers/vm.ts';
import { execa } from 'execa';
import { decryptBackup, identitiesIn } from '../../builder/restore/read-backup.ts';
import { bytesFound, secretsInTemporaryDirectories } from '../helpers/secret-scan.ts';
import { type AgentReport, type StickContents, type SystemReport, type UnitState, buildE2eImage, filesOnCard, fingerprintOf, hashesOnCard, keyFilesOf, readStick, secretsOnStick, stickFiles } from './cluster.ts';

/**
 * Issue 5: the built image, booted for real (qemu-system-aarch64 -M virt, its own kernel and initramfs, no
 * network or a restricted one), does its first boot, starts Tor and every relay, keeps the relays off the
 * network, and hands over the addresses on a virtual USB stick. Only the simplexmq binaries are stand-ins.
 * The tests share the cards (disk images) in order: card A boots first, again, and again behind a forwarded
 * port; card B is the power-cut card and the "second card from the same image".
 */

const haveQemu = existsSync('/usr/bin/qemu-system-aarch64');
const BOOT_LIMIT = 8 * 60 * 1000;
const SERVERS = ['smp1', 'smp2', 'smp3', 'xftp', 'ssh'];
/** What members get on the stick: the relays (SSH's address goes only to the admin folder). */
const RELAYS = SERVERS.filter((s) => s !== 'ssh');
const ONION = /^[a-z2-7]{56}\.onion$/;
/** The address qemu's user-mode network gives the guest, where its host forwards go. */
const GUEST_IP = '10.0.2.15';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.runIf(isRoot && haveQemu)('the image booted in a VM (qemu-system-aarch64)', () => {
  const server = new TestServer();
  let dir: string;
  let image: string;
  let plan: BuildPlan;
  let boot: BootFiles;
  const run = new VmTestRun('e2e');
  const { timings } = run;
  const track = run.track.bind(run);
  const disk = (card: string) => join(dir, `card-${card}.img`);
  const stick = (name: string) => join(dir, `stick-${name}.img`);
  /**
   * The test recipe runs the watchdog every 60 s (TOR_TEST_RECIPE) so that card T's tests see rounds within minutes;
   * every other boot masks its timer for that boot (systemd-debug-generator's `systemd.mask=`): a round a minute,
   * each seconds of emulated CPU, is what no user's Pi runs (the default is every 10 minutes) and slowed every test.
   */
  const start = (options: Omit<Parameters<typeof Vm.start>[0], 'boot' | 'dir'>) =>
    run.start({ ...options, boot, dir, append: [...(options.append ?? []), ...(options.torNetwork ? [] : [`systemd.mask=${UNITS.watchdogTimer}`])] });
  let cardA: { report: AgentReport; stick: StickContents };
  let cardB: { report: AgentReport };
  let otherStickSha256: string;
  let decoySha256: string;
  let sshPrivateKey: string;
  /** The suite's own Tor network (issue 15): made before the build (the image's Tor joins it), started in the background. */
  let torNet: TorNetwork;
  let torReady: Promise<void>;

  beforeAll(async () => {
    await server.start();
    dir = run.dir = await vmScratch();
    torNet = await TorNetwork.create(join(dir, 'tor-network'));
    const built = await buildE2eImage(server, dir, undefined, { overlays: [await torOverlay(dir, torNet)], extra: TOR_TEST_RECIPE });
    ({ image, plan, sshPrivateKey } = built);
    torReady = torNet.start();
    torReady.catch(() => undefined);
    timings.buildSeconds = built.buildSeconds;
    boot = await extractBootFiles(image, join(dir, 'boot'));
    // Card A is a larger SD card than the image, as users' cards are: first boot must grow into it.
    await largerCard(image, disk('A'), 2);
    await copyDisk(image, disk('B'));
    for (const name of ['A', 'B', 'B2', 'later', 'backup', 'C', 'C-later']) await makeStick(stick(name), plan.export.usbLabel);
    await makeStick(stick('other'), 'BACKUP');
    otherStickSha256 = await sha256File(stick('other'));
    // The recipe's label on a disk that is not USB storage (a virtio disk): it must never be written.
    await makeStick(stick('decoy'), plan.export.usbLabel);
    decoySha256 = await sha256File(stick('decoy'));
  }, 20 * 60 * 1000);

  /** A request to the agent that changes something in the VM (messages, relays); it must have worked. */
  const ask = async (vm: Vm, request: string) => {
    const answer = await vm.report<{ ok: boolean; output?: string; count?: number | null; killSignal?: string; journal?: string; state?: Record<string, string>; listening?: boolean }>(request, 180_000);
    expect(answer.ok, `${request}: ${answer.output}`).toBe(true);
    return answer;
  };

  /**
   * A boot of card A that one test leaves running for the next, which would otherwise boot the card again (a minute
   * or two under emulation each time). Handed over only by a test that passed; a test that finds none, or one for
   * another test, boots the card itself, so each test still runs alone (`vitest -t`).
   */
  let runningA: { vm: Vm; next: string } | undefined;
  const handOver = (vm: Vm, next: string) => {
    runningA = { vm, next };
  };
  const takeOver = (test: string): Vm | undefined => {
    const running = runningA;
    runningA = undefined;
    if (running && running.next !== test) void running.vm.powerOff().catch(() => undefined);
    return running?.next === test ? running.vm : undefined;
  };
  /** Card A booted and ready: the boot handed over for `test`, or a new one. */
  const readyA = async (test: string, options: Omit<Parameters<typeof start>[0], 'disk'>) => {
    const handed = takeOver(test);
    if (handed) return handed;
    const vm = await start({ ...options, disk: disk('A') });
    await vm.waitForAgent('ready', BOOT_LIMIT);
    return vm;
  };

  afterAll(async () => {
    await server.stop();
    if (runningA) await runningA.vm.powerOff().catch(() => undefined);
    // The network's tors write into the run's scratch directory until they exit: stop them before it is removed
    // (removing it first failed with ENOTEMPTY while an authority still wrote its state).
    await torNet?.stop();
    await run.finish();
  });

  it(
    'first boot: the addresses of every relay reach the USB stick, matching the onions Tor serves; Tor and every relay run',
    { timeout: BOOT_LIMIT + 60_000 },
    track(async () => {
      const vm = await start({ name: 'A-first', disk: disk('A'), stick: stick('A'), virtioDisks: [stick('decoy')] });
      await vm.waitForAgent('ready', BOOT_LIMIT);
      const exported = await vm.waitForLine(/export: wrote the addresses and keys to \/dev\/sd[a-z]/, 120_000);
      timings.firstBootAddressesOnStick = exported.at / 1000;
      timings.firstBootReady = vm.elapsed() / 1000;
      const report = await vm.report<AgentReport>();
      const system = await vm.report<SystemReport>('system', 240_000);
      await vm.powerOff();

      // The card is 2 GiB larger than the image: the root partition now reaches its end and the filesystem
      // fills the partition (the Debian base's own growth, simplex-pi-growroot.service).
      expect(system.diskSectors! - (system.rootStart + system.rootSectors), 'sectors after the root partition').toBeLessThan(16384);
      expect(system.fsBytes, `filesystem ${system.fsBytes} B on a ${system.rootSectors * 512} B partition`).toBeGreaterThan(system.rootSectors * 512 * 0.95);
      expect(system.fsAvailBytes).toBeGreaterThan(1.5 * 1024 ** 3);
      expect(system.machineId).toMatch(/^[0-9a-f]{32}$/);

      // The stick, read on the host like a user would: every relay, well-formed, QR codes decoding to them; SSH's
      // address only in the admin folder.
      const contents = readStick(stick('A'), plan.hostname);
      expect([...contents.addresses.keys()].sort()).toEqual([...RELAYS].sort());
      for (const name of ['smp1', 'smp2', 'smp3']) {
        expect(contents.addresses.get(name)).toMatch(/^smp:\/\/[A-Za-z0-9_-]{43}=?:[A-Za-z0-9_=-]{20,}@[a-z2-7]{56}\.onion(:5223)?$/);
      }
      expect(contents.addresses.get('xftp')).toMatch(/^xftp:\/\/[A-Za-z0-9_-]{43}=:[A-Za-z0-9_-]{43}=@[a-z2-7]{56}\.onion:443$/);
      for (const name of ['smp1', 'smp2', 'smp3', 'xftp']) expect(contents.qr.get(name)).toBe(contents.addresses.get(name));
      expect(contents.servers.map((s) => [s.name, s.address])).toEqual([...contents.addresses.entries()]);
      expect(report.addresses?.replaceAll('\n', '\r\n')).toBe([...contents.addresses, ['ssh', contents.ssh]].map(([n, a]) => `${n}\t${a}\r\n`).join(''));

      // Each address's onion is the hostname in Tor's own service directory, read while Tor runs the service.
      // (Tor rewrites that file whenever it differs from what it derives from the key: it is Tor's word.)
      for (const name of SERVERS) {
        const hostname = report.onions[`simplex-${name}`]?.hostname;
        expect(hostname).toMatch(ONION);
        expect(name === 'ssh' ? contents.ssh : contents.addresses.get(name)).toContain(hostname!);
      }
      // Client authorization: the member's key opens every relay, the admin's own key alone opens SSH.
      const onStick = stickFiles(stick('A'));
      const folder = `simplex-pi-${plan.hostname}`;
      expect([...onStick.keys()].filter((f) => f.includes('/client-auth/')).sort()).toEqual(RELAYS.map((r) => `${folder}/client-auth/client-1/${r}.auth_private`).sort());
      expect(onStick.get(`${folder}/admin/ssh.auth_private`)?.toString()).toMatch(new RegExp(`^${report.onions['simplex-ssh']!.hostname!.replace('.onion', '')}:descriptor:x25519:[A-Z2-7]{52}\n$`));
      // The recipe's label on a virtio disk: ignored, never written, and not counted as a second stick.
      expect(await sha256File(stick('decoy'))).toBe(decoySha256);
      expect(report.exportJournal).toMatch(/export: ignoring \/dev\/vd[a-z]: it carries the label SIMPLEX but is not a USB stick/);
      expect(report.units['simplex-pi-export.service']).toMatchObject({ Result: 'success' });
      expect(report.status).toMatch(/^Secrets last exported to a stick: \S+, in the clear, to \/dev\/sd[a-z]+\d*( \(.*\))?: the automatic first export$/m);
      expect(report.status).toMatch(/^Automatic export after first boot: done$/m);

      // Tor and every relay unit ran (no restarts), and every relay port was listening.
      expect(report.units['tor@default.service']?.ActiveState).toBe('active');
      for (const instance of plan.smp.instances) {
        expect(report.units[instance.unit], instance.unit).toMatchObject({ ActiveState: 'active', SubState: 'running', NRestarts: '0' });
        expect(report.listening.some((l) => l.endsWith(`:${instance.localPort}`)), `port ${instance.localPort}`).toBe(true);
      }
      expect(report.units[plan.xftp!.unit]).toMatchObject({ ActiveState: 'active', SubState: 'running', NRestarts: '0' });
      // Each relay is its unit's main process (the password filter exec'd it) and sees only its own directories:
      // another relay's keys and passwords are not there for it, though all run as one user.
      for (const relay of [...plan.smp.instances, plan.xftp!]) {
        const service = relay.cfgPath.split('/').pop()!;
        const view = report.relayView[relay.unit]!;
        expect({ etcOpt: view.etcOpt, varOpt: view.varOpt }, relay.unit).toEqual({ etcOpt: [service], varOpt: [service] });
        // The relay's program (the stand-in's launcher becomes node), not the wrapper's shell or its sed.
        expect(view.comm, relay.unit).toMatch(/^(smp-server|xftp-server|node)$/);
      }
      expect(report.relayJournal[plan.smp.instances[0]!.unit]).toMatch(/Server address: smp:\/\/[A-Za-z0-9_=-]+:<hidden>@/);
      expect(report.listening.some((l) => l.endsWith(`:${plan.xftp!.localPort}`))).toBe(true);
      expect(report.units['simplex-pi-firstboot.service']).toMatchObject({ ActiveState: 'active', Result: 'success', ConditionResult: 'yes' });
      expect(report.units['nftables.service']?.ActiveState).toBe('active');
      // The shipped `simplex-pi status` agrees.
      for (const { unit, localPort } of [...plan.smp.instances, plan.xftp!]) {
        expect(report.status).toContain(`ok  ${unit.replace(/\.service$/, '').padEnd(20)} active, listening on ${localPort}`);
      }
      expect(report.status).toMatch(/First boot: finished/);
      expect(report.status).toMatch(/^Storage: ok +XFTP quota 1gb fits: [\d.]+ GiB free on the card/m);
      expect(report.status).not.toMatch(/!!|NOT/);
      cardA = { report, stick: contents };
    }),
  );

  it(
    'firewall: a host port forwarded to a listening relay never reaches it; nftables alone and the unit\'s IPAddressDeny alone each stop it; with both down it does (the control); inside, only Tor and the time daemon leave; without the ruleset a relay stays stopped',
    { timeout: BOOT_LIMIT + 5 * 60_000 },
    track(async () => {
      const relay = plan.smp.instances[0]!;
      const hostPort = await freePort();
      // Card A's second boot, which the next test goes on with (hence its sticks, plugged in there).
      const vm = await start({ name: 'A-second', disk: disk('A'), forward: { hostPort, guestPort: relay.localPort }, laterSticks: [stick('other'), stick('later')] });
      await vm.waitForAgent('ready', BOOT_LIMIT);
      timings.plainBootReady = vm.elapsed() / 1000;
      timings.plainBootLogin = (await vm.waitForLine(/login: /, 1000)).at / 1000;
      // Knock only once the guest has its address from qemu's DHCP: before that, nothing could answer anyway.
      let net = await vm.report<Pick<AgentReport, 'interfaces'>>('net');
      for (let i = 0; i < 60 && !Object.values(net.interfaces).flat().includes(GUEST_IP); i++) {
        await sleep(1000);
        net = await vm.report<Pick<AgentReport, 'interfaces'>>('net');
      }
      expect(Object.values(net.interfaces).flat(), 'the guest got its address from qemu').toContain(GUEST_IP);
      const report = await vm.report<AgentReport>();
      expect(report.listening.some((l) => l.endsWith(`:${relay.localPort}`))).toBe(true);
      expect(report.units[relay.unit]?.ActiveState).toBe('active');
      expect(report.nftTables).toContain('simplex_pi');

      /** Connect from the host; then count the connections the relay has logged this boot. */
      const knock = async (waitMs: number) => {
        const answered = await tryConnect(hostPort, waitMs);
        let journal = '';
        for (let i = 0; i < (answered ? 10 : 1); i++) {
          journal = (await vm.report<{ journal: string }>('journal')).journal;
          if (/connection from/.test(journal)) break;
          await sleep(1000);
        }
        return { answered, reached: journal.split('\n').filter((l) => /connection from (::ffff:)?10\.0\.2\.2 /.test(l)).length };
      };
      const control = async (action: string) => {
        const result = await vm.report<{ ok: boolean; output?: string; nftTables: string; ipAddressDeny: string }>(`control ${action}`);
        expect(result.ok, result.output).toBe(true);
        return result;
      };

      // As shipped: both layers up.
      expect(await knock(10_000)).toEqual({ answered: false, reached: 0 });

      // tor-only from inside the Pi (security review M3): only Tor leaves, and DNS and NTP only for the time
      // daemon (and, on this base, the resolver). 192.0.2.1 is a documentation address the restricted network
      // never delivers: a refusal can only come from nftables. Counters are compared before and after each probe.
      type Probe = { ok: boolean; output?: string; outcome: string; met: string[]; counters: Record<string, number> };
      const probe = async (args: string) => {
        const result = await vm.report<Probe>(`probe ${args}`, 60_000);
        expect(result.ok, result.output).toBe(true);
        return result;
      };
      const rootDns = await probe('tcp 192.0.2.1 53 root');
      expect(rootDns.outcome, 'root, TCP to port 53 of an address that is not the resolver').toBe('ECONNREFUSED');
      expect(rootDns.met).toContain('not Tor');
      expect(rootDns.met).not.toContain('DNS: systemd-timesyncd, for its NTP servers');
      const userNtp = await probe('udp 192.0.2.1 123 nobody');
      expect(userNtp.outcome, 'a normal user, UDP to port 123').toBe('EPERM');
      expect(userNtp.met).toContain('not Tor');
      expect(userNtp.met).not.toContain('NTP: systemd-timesyncd');
      // The control: the same packets from the time daemon's user pass the output chain (its rules count them).
      const timesyncNtp = await probe('udp 192.0.2.1 123 systemd-timesync');
      expect(timesyncNtp.outcome).toBe('sent');
      expect(timesyncNtp.met).toContain('NTP: systemd-timesyncd');
      const timesyncDns = await probe('udp 192.0.2.1 53 systemd-timesync');
      expect(timesyncDns.outcome).toBe('sent');
      expect(timesyncDns.met).toContain('DNS: systemd-timesyncd, for its NTP servers');
      // nftables alone.
      expect((await control('unit-ip-open')).ipAddressDeny).toBe('IPAddressDeny=');
      expect(await knock(10_000)).toEqual({ answered: false, reached: 0 });
      // The relay unit's IPAddressDeny=any alone.
      expect((await control('unit-ip-close')).ipAddressDeny).not.toBe('IPAddressDeny=');
      expect((await control('nft-flush')).nftTables).not.toContain('simplex_pi');
      expect(await knock(10_000)).toEqual({ answered: false, reached: 0 });
      // The control: with both down, the same knock reaches the relay. So the two checks above could fail.
      await control('unit-ip-open');
      const open = await knock(20_000);
      expect(open.answered).toBe(true);
      expect(open.reached).toBeGreaterThanOrEqual(1);

      // Fail closed (security review L6): with the ruleset gone, a relay does not start again; with it back, it does.
      const stopped = await ask(vm, 'relay try-restart 1');
      expect(stopped, stopped.output).toMatchObject({ state: { ActiveState: expect.not.stringMatching(/^active$/) }, listening: false });
      expect(stopped.journal).toContain('The firewall is not loaded (nftables has no table inet simplex_pi), so this relay stays stopped');
      expect((await control('nft-restore')).nftTables).toContain('simplex_pi');
      await ask(vm, 'relay wait-active 1');
      handOver(vm, 'second boot');
    }),
  );

  it(
    'second boot: first boot is skipped, keys unchanged; a labelled stick plugged in later gets the health report and no secret, root\'s explicit export gives it the addresses, export.encrypt_to an archive the age CLI opens; the journal of every boot holds no secret',
    { timeout: BOOT_LIMIT + 240_000 },
    track(async () => {
      expect(cardA, 'needs the first boot').toBeDefined();
      const vm = await readyA('second boot', { name: 'A-second', laterSticks: [stick('other'), stick('later')] });
      const before = await vm.report<AgentReport>();
      expect(before.units['simplex-pi-firstboot.service']).toMatchObject({ ActiveState: 'inactive', ConditionResult: 'no' });
      expect(before.firstbootJournal).not.toMatch(/created|kept/);
      expect(before.keys).toEqual(cardA.report.keys);
      expect(Object.values(before.keys).every((hash) => hash !== null)).toBe(true);
      expect(before.onions).toEqual(cardA.report.onions);
      // Relay passwords, the member's key, the admin's key and the Pi's own key: what no later stick may get.
      expect(before.secrets).toHaveLength(RELAYS.length + 3);

      // A stick with another label is left alone; one with the recipe's label, plugged in while the Pi runs,
      // gets the health report through the udev rule, and nothing secret: the one automatic export was card A's
      // first boot.
      await vm.plugStick(0);
      await vm.plugStick(1);
      let after = before;
      for (let i = 0; i < 60 && !/wrote the health report/.test(after.exportJournal); i++) {
        await sleep(2000);
        after = await vm.report<AgentReport>();
      }
      expect(after.exportJournal).toMatch(/export: wrote the health report only \(no secrets\) to \/dev\/sd[a-z]/);
      const plugged = join(dir, 'stick-later-plugged.img');
      await copyDisk(stick('later'), plugged);
      expect(await secretsOnStick(plugged, before.secrets)).toEqual([]);
      const folder = `simplex-pi-${plan.hostname}`;
      const health = stickFiles(plugged);
      expect([...health.keys()].sort()).toEqual([`${folder}/README.txt`, `${folder}/health.txt`]);
      // The report is the export unit's view through its sandbox: every relay active and listening, nothing amiss.
      const healthText = health.get(`${folder}/health.txt`)!.toString();
      for (const { unit, localPort } of [...plan.smp.instances, plan.xftp!]) {
        expect(healthText).toContain(`ok  ${unit.replace(/\.service$/, '').padEnd(20)} active, listening on ${localPort}`);
      }
      expect(healthText).toMatch(/^Storage: ok +XFTP quota 1gb fits/m);
      // The watchdog's view (no network here: each relay answers on its own port, its onion waits for Tor), and
      // the last backup, without saying where it went.
      expect(healthText).toMatch(/^Reached through Tor \(the watchdog, every 60 s/m);
      expect(healthText).toMatch(/^Last backup: never/m);
      expect(healthText).not.toMatch(/!!|NOT|\/dev\/|QEMU/);
      for (const onion of Object.values(before.onions)) expect(health.get(`${folder}/health.txt`)!.toString()).not.toContain(onion.hostname!.slice(0, 56));

      // The journal of both boots (first boot, two starts of every relay): no password and no private key, read
      // through journalctl and in the journal files' raw bytes. The control line shows both readings see one.
      const journal = await vm.report<{ marker: string; secretCount: number; files: number; boots: number; inExport: string[]; inFiles: string[] }>('journal-secrets', 180_000);
      expect(journal.secretCount).toBe(before.secrets.length);
      expect(journal.files).toBeGreaterThan(0);
      expect(journal.inExport).toEqual([journal.marker]);
      expect(journal.inFiles).toEqual([journal.marker]);

      // The owner's explicit export, as root on the Pi: the same addresses as at first boot.
      const explicit = await vm.report<{ ok: boolean; output: string }>('export', 180_000);
      expect(explicit.ok, explicit.output).toBe(true);
      expect(explicit.output).toMatch(/export: wrote the addresses and keys to \/dev\/sd[a-z]/);

      // export.encrypt_to: the device's own code (its Node, the bundled age) encrypts to the owner's key, and the
      // standard age CLI on the owner's computer opens it: the same addresses and keys.
      execFileSync('age-keygen', ['-o', join(dir, 'owner-identity.txt')], { stdio: 'ignore' });
      const recipient = execFileSync('age-keygen', ['-y', join(dir, 'owner-identity.txt')]).toString().trim();
      const sealed = await vm.report<{ ok: boolean; output: string }>(`export-encrypted ${recipient}`, 180_000);
      expect(sealed.ok, sealed.output).toBe(true);
      expect(sealed.output).toContain(`export: wrote the addresses and keys (encrypted to ${recipient}) to /dev/sd`);
      await vm.powerOff();
      const later = readStick(stick('later'), plan.hostname);
      expect([...later.addresses]).toEqual([...cardA.stick.addresses]);
      expect(later.ssh).toBe(cardA.stick.ssh);
      expect(await sha256File(stick('other'))).toBe(otherStickSha256);
      const archive = join(dir, 'secrets.tar.age');
      await writeFile(archive, stickFiles(stick('later')).get(`${folder}/secrets.tar.age`)!);
      const opened = join(dir, 'opened');
      await mkdir(opened);
      execFileSync('age', ['-d', '-i', join(dir, 'owner-identity.txt'), '-o', join(opened, 'secrets.tar'), archive]);
      execFileSync('tar', ['-xf', join(opened, 'secrets.tar'), '-C', opened]);
      expect(await readFile(join(opened, 'addresses.txt'), 'utf8')).toBe([...cardA.stick.addresses].map(([n, a]) => `${n}\t${a}\r\n`).join(''));
      expect(await readFile(join(opened, 'admin/ssh.auth_private'), 'utf8')).toMatch(/:descriptor:x25519:[A-Z2-7]{52}\n$/);
    }),
  );

  it(
    'power cut in the middle of first boot: the next boot completes, keeping every key the cut run had written; two labelled sticks then get no secret',
    { timeout: 2 * BOOT_LIMIT + 120_000 },
    track(async () => {
      const vm = await start({ name: 'B-cut', disk: disk('B'), stick: stick('B') });
      await vm.waitForLine(/simplex-pi\[\d+\]: smp2: onion created/, BOOT_LIMIT);
      await vm.cutPower();
      timings.powerCutAt = vm.elapsed() / 1000;
      // What the cut run said it had made, each line printed only once its files were on the card.
      const made = vm.lines.flatMap((l) => {
        const m = /simplex-pi\[\d+\]: (\w+): (onion|identity) created/.exec(l.text);
        return m ? [{ server: m[1]!, part: m[2] as 'onion' | 'identity' }] : [];
      });
      expect(made).toEqual(expect.arrayContaining([{ server: 'smp1', part: 'onion' }, { server: 'smp1', part: 'identity' }, { server: 'smp2', part: 'onion' }]));
      expect(vm.lines.some((l) => /simplex-pi\[\d+\]: done:/.test(l.text))).toBe(false);
      const kept = made.flatMap(({ server, part }) => keyFilesOf(plan, server)[part]);
      const afterCut = await hashesOnCard(disk('B'), [...kept, '/var/lib/simplex-pi/firstboot.done'], join(dir, 'card-B-root'));
      expect(afterCut['/var/lib/simplex-pi/firstboot.done']).toBeNull();
      for (const path of kept) expect(afterCut[path], path).toMatch(/^[0-9a-f]{64}$/);

      // Two sticks with the recipe's label at this (the finishing) first boot: neither gets a secret, and the
      // console and the journal say why.
      const resumed = await start({ name: 'B-resumed', disk: disk('B'), stick: stick('B'), moreSticks: [stick('B2')] });
      await resumed.waitForAgent('ready', BOOT_LIMIT);
      const refusal = await resumed.waitForLine(/export: REFUSED: 2 USB sticks carry the label SIMPLEX/, 120_000);
      let report = await resumed.report<AgentReport>();
      for (let i = 0; i < 30 && report.units['simplex-pi-export.service']?.ActiveState !== 'failed'; i++) {
        await sleep(2000);
        report = await resumed.report<AgentReport>();
      }
      await resumed.powerOff();
      expect(refusal.text).toMatch(/neither|none gets them/);
      expect(report.exportJournal).toContain('export: REFUSED: 2 USB sticks carry the label SIMPLEX');
      expect(report.units['simplex-pi-export.service']).toMatchObject({ ActiveState: 'failed' });
      // Still to come, and status says so: the next single labelled stick gets it.
      expect(report.status).toMatch(/^Automatic export after first boot: ARMED/m);
      expect(report.secrets).toHaveLength(RELAYS.length + 3);
      for (const name of ['B', 'B2']) expect(await secretsOnStick(stick(name), report.secrets), `stick ${name}`).toEqual([]);
      expect(report.units['simplex-pi-firstboot.service']).toMatchObject({ ActiveState: 'active', Result: 'success' });
      for (const path of kept) expect(report.keys[path], path).toBe(afterCut[path]);
      for (const { server, part } of made) expect(report.firstbootJournal).toContain(`${server}: ${part} kept`);
      const addresses = new Map(report.servers!.servers.map((s) => [s.name, s.address]));
      expect([...addresses.keys()].sort()).toEqual([...SERVERS].sort());
      for (const name of SERVERS) expect(addresses.get(name)).toContain(report.onions[`simplex-${name}`]!.hostname!);
      cardB = { report };
    }),
  );

  it(
    'two cards from the same image: every onion address and server fingerprint differs',
    track(async () => {
      expect(cardA && cardB, 'needs both cards booted').toBeTruthy();
      const onions = (r: AgentReport) => Object.values(r.onions).map((o) => o.hostname!);
      const fingerprints = (r: AgentReport) => r.servers!.servers.filter((s) => s.kind !== 'ssh').map((s) => fingerprintOf(s.address));
      const a = { onions: onions(cardA.report), fps: fingerprints(cardA.report) };
      const b = { onions: onions(cardB.report), fps: fingerprints(cardB.report) };
      expect(a.onions).toHaveLength(SERVERS.length);
      expect(a.fps).toHaveLength(4);
      // Distinct within each card and across the two.
      expect(new Set([...a.onions, ...b.onions]).size).toBe(2 * SERVERS.length);
      expect(new Set([...a.fps, ...b.fps]).size).toBe(8);
      const keys = (r: AgentReport) => Object.values(r.keys).filter((h) => h !== null);
      expect(new Set([...keys(cardA.report), ...keys(cardB.report)]).size).toBe(keys(cardA.report).length + keys(cardB.report).length);
    }),
  );

  it(
    'undelivered messages survive a relay restart and a reboot; with systemd\'s default SIGTERM put back (the control) a restart loses them',
    { timeout: 2 * BOOT_LIMIT + 5 * 60_000 },
    track(async () => {
      expect(cardA, 'needs the first boot').toBeDefined();
      const vm = await start({ name: 'A-messages', disk: disk('A') });
      await vm.waitForAgent('ready', BOOT_LIMIT);
      await ask(vm, 'messages send 1 member 5');
      await ask(vm, 'messages send 2 member 5');
      // As shipped: the unit stops the relay with SIGINT (2), on which it saves what it holds.
      const kept = await ask(vm, 'relay restart 1');
      expect(kept.killSignal).toBe('KillSignal=2');
      expect(kept.journal).toContain('messages saved: 5');
      expect((await ask(vm, 'messages count 1 member')).count).toBe(5);
      // The control: the same restart with SIGTERM (15) loses every message, as the real server does.
      const lost = await ask(vm, 'relay sigterm 2');
      expect(lost.killSignal).toBe('KillSignal=15');
      expect((await ask(vm, 'messages count 2 member')).count).toBe(0);
      // A clean power-off stops every relay the same way: what relay 1 holds is on the card at the next boot.
      await ask(vm, 'messages send 1 member 3');
      await vm.powerOff();
      const rebooted = await start({ name: 'A-messages-reboot', disk: disk('A') });
      await rebooted.waitForAgent('ready', BOOT_LIMIT);
      expect((await ask(rebooted, 'messages count 1 member')).count).toBe(8);
      handOver(rebooted, 'save cut');
    }),
  );

  it(
    'power cut while a relay saves its messages: the next boot brings every relay up with no restart loop, and every message written in full is there',
    { timeout: 2 * BOOT_LIMIT + 8 * 60_000 },
    track(async () => {
      expect(cardA, 'needs the first boot').toBeDefined();
      const relay = plan.smp.instances[0]!;
      const saved = `${relay.logPath}/smp-server-messages.log`;
      const vm = await readyA('save cut', { name: 'A-save-cut' });
      await ask(vm, 'relay slow-save 1 3000');
      // About 150 KB to save in 8 KiB writes, 3 s apart: about a minute of saving.
      await ask(vm, 'messages send 1 bulk 300 400');
      await ask(vm, 'relay stop 1');
      await sleep(25_000);
      await vm.cutPower();

      // What the cut left on the card: complete records, and perhaps one cut off.
      const onCard = (await filesOnCard(disk('A'), [saved], join(dir, 'card-A-root')))[saved];
      expect(onCard, 'the relay had begun writing its messages file').toBeDefined();
      const text = onCard!.toString('latin1');
      const complete = text.split('\n').slice(0, -1);
      const torn = !text.endsWith('\n') && text.length > 0;
      const inQueue = (queue: string) => complete.filter((line) => line.startsWith(`v3 ${queue} `)).length;
      expect(inQueue('bulk'), 'the cut came while the file was being written').toBeGreaterThan(0);
      expect(inQueue('bulk'), 'the cut came while the file was being written').toBeLessThan(300);

      // This boot goes on into the next test (the backup): hence the labelled stick.
      const next = await start({ name: 'A-after-save-cut', disk: disk('A'), stick: stick('backup') });
      await next.waitForAgent('ready', BOOT_LIMIT);
      const report = await next.report<AgentReport>();
      for (const unit of [...plan.smp.instances.map((i) => i.unit), plan.xftp!.unit]) {
        expect(report.units[unit], unit).toMatchObject({ ActiveState: 'active', NRestarts: '0' });
      }
      if (torn) expect(report.relayJournal[relay.unit]).toMatch(/set-aside-torn-record: .*smp-server-messages\.log was cut off while it was written/);
      expect((await ask(next, 'messages count 1 bulk')).count).toBe(inQueue('bulk'));
      expect((await ask(next, 'messages count 1 member')).count).toBe(inQueue('member'));
      timings.saveCutTorn = torn ? 1 : 0;
      handOver(next, 'dead card');
    }),
  );

  it(
    'a dead card costs minutes: card A backed up to a stick and restored onto card C, flashed from a newer build, serves the same addresses, queues and messages',
    { timeout: 3 * BOOT_LIMIT + 15 * 60_000 },
    track(async () => {
      expect(cardA, 'needs card A booted').toBeTruthy();
      // The owner's age key, made on the owner's computer; only its recipient goes into recipes and onto the Pi.
      const identity = join(dir, 'owner.agekey');
      await execa('age-keygen', ['-o', identity]);
      const recipient = /^# public key: (age1\w+)$/m.exec(await readFile(identity, 'utf8'))![1]!;
      // Card A (the boot the test before left running, or a new one): what its relays hold, then the owner's backup
      // to the labelled stick it was booted with.
      const vm = await readyA('dead card', { name: 'A-backup', stick: stick('backup') });
      const held = { member: (await ask(vm, 'messages count 1 member')).count, bulk: (await ask(vm, 'messages count 1 bulk')).count };
      expect(held.member, 'card A holds messages from the tests above').toBeGreaterThan(0);
      const beforeBackup = await vm.report<AgentReport>();
      const backingUp = Date.now();
      const made = await ask(vm, `backup ${recipient}`);
      timings.backupSeconds = (Date.now() - backingUp) / 1000;
      const afterBackup = await vm.report<AgentReport>();
      await vm.powerOff();

      // Image Y: a newer simplexmq (its init writes an INI with a new section) and a recipe edit (backups to every
      // labelled stick, unattended).
      const builtNext = Date.now();
      const next = await buildE2eImage(server, join(dir, 'next'), undefined, { simplexmq: '7.0.0', extra: [`backup: { recipient: ${recipient}, on_stick: true }`] });
      timings.restoreImageBuildSeconds = (Date.now() - builtNext) / 1000;
      await copyDisk(next.image, disk('C'));
      expect(made.output).toMatch(/backup: smp1 stopped for a moment/);
      expect(made.output).toMatch(/backup: 4 relays and SSH, \d+ files, \d+ bytes, encrypted to age1\w+, in [\d.]+ s: written to \/dev\/sd[a-z]+\d*/);
      for (const instance of plan.smp.instances) {
        // Stopped (it saved its messages) and started again: a new main process, running.
        expect(afterBackup.units[instance.unit]?.ActiveState, `${instance.unit} runs again after the backup`).toBe('active');
        expect(afterBackup.units[instance.unit]?.ExecMainStartTimestampMonotonic, `${instance.unit} was restarted`).not.toBe(beforeBackup.units[instance.unit]?.ExecMainStartTimestampMonotonic);
      }
      // The XFTP relay holds nothing in memory that the backup takes: it is left running.
      expect(afterBackup.units[plan.xftp!.unit]?.ExecMainStartTimestampMonotonic).toBe(beforeBackup.units[plan.xftp!.unit]?.ExecMainStartTimestampMonotonic);
      expect(afterBackup.status).toMatch(/^Last backup: \S+ \(\d+ bytes, encrypted with the recipient key, to \/dev\/sd/m);

      const onStick = [...stickFiles(stick('backup')).entries()].filter(([path]) => /\/backups\/simplex-pi-backup-[\w-]+\.tar$/.test(path));
      expect(onStick).toHaveLength(1);
      const backupFile = join(dir, 'card-A.backup.tar');
      await writeFile(backupFile, onStick[0]![1]);
      timings.backupBytes = onStick[0]![1].length;

      // The standard age CLI opens it: the files inside, by role.
      const sealed = await execa('tar', ['-xOf', backupFile, 'identity.tar.age'], { encoding: 'buffer' });
      const opened = await execa('age', ['-d', '-i', identity], { input: sealed.stdout, encoding: 'buffer' });
      const listed = (await execa('tar', ['-t'], { input: opened.stdout })).stdout.split('\n');
      expect(listed).toEqual(expect.arrayContaining(['manifest.json', 'relays/smp1/onion/hs_ed25519_secret_key', 'relays/smp1/config/ca.key', 'relays/smp1/state/smp-server-messages.log', 'relays/xftp/config/file-server.ini', 'ssh/onion/hs_ed25519_secret_key']));
      // Everything a key in the clear would be, to look for afterwards.
      const { entries, manifest } = await decryptBackup(onStick[0]![1], { identities: identitiesIn(await readFile(identity, 'utf8'), identity), source: identity }, backupFile);
      const secrets = entries.flatMap((e) => {
        if (e.path.endsWith('hs_ed25519_secret_key')) return [e.content.subarray(32)];
        if (/\.key$/.test(e.path)) return [Buffer.from(e.content.toString('utf8').split('\n')[1]!)];
        const password = /^create_password\s*[=:]\s*(\S+)$/m.exec(e.content.toString('utf8'))?.[1];
        return password ? [Buffer.from(password)] : [];
      });
      expect(secrets.length).toBeGreaterThanOrEqual(2 * 5 + 4);
      expect(await bytesFound(stick('backup'), secrets), 'the stick holds no key in the clear').toEqual([]);

      // Refused, and card C left exactly as flashed: another owner's key, a changed byte.
      const flashedAt = Date.now() - 1000;
      const flashed = await sha256File(disk('C'));
      const stranger = join(dir, 'stranger.agekey');
      await execa('age-keygen', ['-o', stranger]);
      const wrongKey = await cli(['restore', '--backup', backupFile, '--card', disk('C'), '--identity', stranger]);
      expect(wrongKey.exitCode).not.toBe(0);
      expect(wrongKey.all).toMatch(/was not encrypted to the key in .*stranger\.agekey.*nothing was written to the card/);
      const tampered = join(dir, 'tampered.backup.tar');
      const bytes = Buffer.from(onStick[0]![1]);
      // A byte in the middle of the encrypted part (past age's header), as a bad stick or a forger would change it.
      const at = bytes.indexOf('age-encryption.org/v1') + Math.floor(sealed.stdout.length / 2);
      bytes.writeUInt8(bytes.readUInt8(at) ^ 0x01, at);
      await writeFile(tampered, bytes);
      const changed = await cli(['restore', '--backup', tampered, '--card', disk('C'), '--identity', identity]);
      expect(changed.exitCode).not.toBe(0);
      expect(changed.all).toMatch(/is damaged or was altered.*nothing was written to the card/);
      expect(await sha256File(disk('C'))).toBe(flashed);

      const restoring = Date.now();
      const restored = await cli(['restore', '--backup', backupFile, '--card', disk('C'), '--identity', identity]);
      timings.restoreSeconds = (Date.now() - restoring) / 1000;
      expect(restored.exitCode, restored.all).toBe(0);
      expect(restored.all).toMatch(/restore: done in [\d.]+ s: \d+ files of backup [0-9a-f]{32}/);
      expect(restored.all).toMatch(/carried from simplexmq 6\.5\.2 to 7\.0\.0 at first boot/);
      expect(restored.all).toMatch(/!! The Pi this backup came from must stay OFF/);
      expect(restored.all).toMatch(/now holds every key of the relays \(now readable by root only\): flash it, then delete it/);
      // An independent look at what the restores could have left on this computer: no key in the clear in any file
      // of its temporary directories written since they began (the cards under test, which hold them by design, left out).
      expect(await secretsInTemporaryDirectories(secrets, [dir, TEST_CACHE], flashedAt)).toEqual([]);

      // Card C's first boot: A's identities kept, the INI carried into 7.0.0's format, the same addresses on the stick.
      const c = await start({ name: 'C-restored', disk: disk('C'), stick: stick('C'), laterSticks: [stick('C-later')] });
      await c.waitForAgent('ready', BOOT_LIMIT);
      await c.waitForLine(/export: wrote the addresses and keys to \/dev\/sd[a-z]/, 120_000);
      timings.restoredCardReady = c.elapsed() / 1000;
      const moved = { member: (await ask(c, 'messages count 1 member')).count, bulk: (await ask(c, 'messages count 1 bulk')).count };
      await c.plugStick(0);
      // The export unit runs for every labelled stick plugged in: both sticks get the one backup it makes.
      const written = () => c.lines.filter((l) => /backup: 4 relays and SSH, .* written to \/dev\/sd/.test(l.text)).length;
      for (let waited = 0; written() < 2 && waited < 240_000; waited += 2000) await sleep(2000);
      expect(written(), 'backups written after the second stick was plugged in').toBe(2);
      expect(c.lines.filter((l) => /backup: smp1 stopped for a moment/.test(l.text)), 'one backup for both sticks: the relays stop once').toHaveLength(1);
      const report = await c.report<AgentReport>();
      await c.powerOff();

      expect(moved, 'the queues and undelivered messages card A held').toEqual(held);
      const contents = readStick(stick('C'), next.plan.hostname);
      expect(new Map(contents.addresses)).toEqual(new Map(cardA.stick.addresses));
      expect(contents.ssh).toBe(cardA.stick.ssh);
      for (const name of SERVERS) expect(report.onions[`simplex-${name}`]?.hostname, `Tor serves ${name}'s onion of card A`).toBe(cardA.report.onions[`simplex-${name}`]?.hostname);
      for (const relay of [...next.plan.smp.instances, next.plan.xftp!]) expect(report.units[relay.unit], relay.unit).toMatchObject({ ActiveState: 'active', SubState: 'running' });
      expect(report.firstbootJournal).toContain(`WARNING: this card was restored from backup ${manifest.id}`);
      expect(report.firstbootJournal).toMatch(/smp1: INI migrated from simplexmq 6\.5\.2 to 7\.0\.0: added NAMES\.enable = off/);
      expect(report.firstbootJournal).toMatch(/smp1: identity kept/);
      expect(report.status).toContain(`Restored from backup ${manifest.id}, made on`);
      // backup.on_stick: the stick plugged in later got a fresh backup of the same relays, encrypted to the owner.
      const later = [...stickFiles(stick('C-later')).entries()].find(([path]) => /\/backups\/simplex-pi-backup-[\w-]+\.tar$/.test(path));
      expect(later, 'a backup on the stick plugged in later').toBeDefined();
      const again = await decryptBackup(later![1], { identities: identitiesIn(await readFile(identity, 'utf8'), identity), source: identity }, 'later stick');
      expect(again.manifest.relays.map((r) => [r.name, r.onion, r.fingerprint])).toEqual(manifest.relays.map((r) => [r.name, r.onion, r.fingerprint]));
      expect(again.manifest.simplexmq).toBe('7.0.0');
    }),
  );

  /** Card T, a copy of card A, booted into the private Tor network: shared by the two tests below. */
  let onTor: { vm: Vm; member: { path: string }; poweredOn: number } | undefined;

  it(
    'through a private Tor network: every address on the stick answers as the apps reach it (TLS, ALPN, the identity in the address); a wrong fingerprint, a stopped relay and a client without a key are refused; SSH logs in over Tor with the recipe\'s key',
    { timeout: BOOT_LIMIT + 20 * 60_000 },
    track(async () => {
      expect(cardA, 'needs card A booted').toBeTruthy();
      await torReady;
      timings.torNetworkBootstrap = torNet.bootstrapSeconds;
      await copyDisk(disk('A'), disk('T'));
      // Each client's keys as a member and the admin get them: off card A's stick.
      const onStick = stickFiles(stick('A'));
      const folder = `simplex-pi-${plan.hostname}`;
      const memberKeys = new Map([...onStick].filter(([f]) => f.startsWith(`${folder}/client-auth/client-1/`)));
      expect(memberKeys.size).toBe(RELAYS.length);
      const [member, admin, stranger] = await Promise.all([
        torNet.client('member', { authDir: await authDirOf(join(dir, 'auth-member'), memberKeys) }),
        torNet.client('admin', { authDir: await authDirOf(join(dir, 'auth-admin'), new Map([...onStick].filter(([f]) => f === `${folder}/admin/ssh.auth_private`))) }),
        torNet.client('stranger'),
      ]);
      const vm = await start({ name: 'T-tor', disk: disk('T'), torNetwork: torNet.vmNetwork() });
      const poweredOn = Date.now();
      onTor = { vm, member: member.socks, poweredOn };
      await vm.waitForAgent('ready', BOOT_LIMIT);

      // Every relay address on the stick, reached through the network as a member's app reaches it.
      const targets = new Map(RELAYS.map((name) => [name, targetOf(cardA.stick.addresses.get(name)!)]));
      const { reached, failures } = await reachEvery(targets, member.socks, poweredOn, 12 * 60_000);
      expect([...reached.keys()].sort(), `not reached: ${JSON.stringify(Object.fromEntries(failures))}; console ${vm.consoleLog}`).toEqual([...RELAYS].sort());
      timings.powerOnToEveryAddressReachable = Math.max(...[...reached.values()].map((r) => r.seconds));
      for (const [name, { detail }] of reached) {
        expect(detail, name).toContain(`ALPN ${name === 'xftp' ? 'xftp/1' : 'smp/1'}, identity ${targets.get(name)!.fingerprint}`);
      }

      // Controls: each of these must fail, or the check above proves nothing.
      const smp1 = targets.get('smp1')!;
      const wrong = await probeService({ ...smp1, fingerprint: targets.get('smp2')!.fingerprint }, member.socks, 90_000);
      expect(wrong).toMatchObject({ ok: false, stage: 'identity' });
      const keyless = await probeService(smp1, stranger.socks, 90_000);
      expect(keyless.ok).toBe(false);
      expect(keyless.ok ? '' : keyless.error).toMatch(/client authorization/);
      await ask(vm, 'relay stop 2');
      let stopped = await probeService(targets.get('smp2')!, member.socks, 90_000);
      for (let i = 0; i < 10 && stopped.ok; i++) {
        await sleep(3000);
        stopped = await probeService(targets.get('smp2')!, member.socks, 90_000);
      }
      expect(stopped, 'a stopped relay is not reached').toMatchObject({ ok: false });
      await ask(vm, 'relay restart 2');
      expect(await probeService(targets.get('smp2')!, member.socks, 90_000)).toMatchObject({ ok: true });

      // SSH over Tor: the admin's client key opens the onion, the recipe's key logs in.
      const sshOnion = cardA.stick.ssh!.split('@')[1]!;
      const login = await execa(
        'ssh',
        [
          '-i', sshPrivateKey,
          '-o', `ProxyCommand=${process.execPath} --import tsx ${join(REPO, 'test/helpers/socks-pipe.ts')} ${admin.socks.path} %h %p`,
          '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=120',
          `${plan.ssh.user}@${sshOnion}`, 'id -un; hostname',
        ],
        { reject: false, all: true, timeout: 5 * 60_000 },
      );
      expect(login.exitCode, login.all).toBe(0);
      expect(String(login.stdout).split('\n')[0]).toBe(plan.ssh.user);
      // And the stranger's Tor cannot open SSH's onion at all.
      expect(await probeService({ kind: 'ssh', host: sshOnion, port: 22 }, stranger.socks, 90_000)).toMatchObject({ ok: false });
      await Promise.all([admin.stop(), stranger.stop()]);
    }),
  );

  it(
    'the watchdog, in the private network: an onion withdrawn, a hung relay and a relay that can never start again are noticed within a round; the first two recovered, the third reported and left alone, never restarted in a loop',
    { timeout: 25 * 60_000 },
    track(async () => {
      expect(onTor, 'needs card T on the Tor network').toBeDefined();
      const { vm } = onTor!;
      const names = [...RELAYS, 'ssh'];
      // Its rounds so far: every service reached through Tor.
      expect(await watchdogAllOk(vm, names, 10 * 60_000)).toEqual(Object.fromEntries(names.map((n) => [n, 'ok'])));

      // Three faults at once; each one's times count from when it was in place (the agent's answer).
      const faultAt = Date.now();
      const inPlace: Record<string, number> = {};
      await ask(vm, `fault withdraw ${plan.xftp!.onion.name}`);
      inPlace.xftp = Date.now();
      await ask(vm, 'fault hang 3');
      inPlace.smp3 = Date.now();
      await ask(vm, 'fault break 2');
      inPlace.smp2 = Date.now();
      const smp2 = plan.smp.instances[1]!.unit;
      const done = ({ events }: WatchdogView) =>
        events.some((e) => e.service === 'xftp' && e.event === 'recovered') &&
        events.some((e) => e.service === 'smp3' && e.event === 'recovered') &&
        events.some((e) => e.service === 'smp2' && e.event === 'given-up');
      let seen = await watchdogUntil(vm, done, 18 * 60_000);
      const of = (service: string) => seen.events.filter((e) => e.service === service && Date.parse(e.at) >= faultAt - 5000);
      const summary = (service: string) => of(service).map((e) => (e.event === 'step' ? `step:${e.step}` : e.event === 'failing' ? `failing:${e.fault}` : e.event));
      expect({ xftp: summary('xftp'), smp3: summary('smp3'), smp2: summary('smp2') }, seen.journal.slice(-4000)).toEqual({
        xftp: ['failing:onion', 'step:reload-tor', 'recovered'],
        smp3: ['failing:service', 'step:restart-service', 'recovered'],
        smp2: ['failing:service', 'step:restart-service', 'step:restart-service', 'given-up'],
      });
      const at = (service: string, event: WatchdogEvent['event']) => secondsTo(seen.events, service, event, inPlace[service]!)!;
      timings.watchdogDetectWithdrawnOnion = at('xftp', 'failing');
      timings.watchdogRecoverWithdrawnOnion = at('xftp', 'recovered');
      timings.watchdogDetectHungRelay = at('smp3', 'failing');
      timings.watchdogRecoverHungRelay = at('smp3', 'recovered');
      timings.watchdogGiveUpBrokenRelay = at('smp2', 'given-up');
      // Noticed within its interval: by the first round after the fault (a round already under way when the faults
      // came may end before it sees them), read off the journal's round summaries, not off a clock. (smp2 is a
      // fault once systemd stops restarting it: until then its unit is restarting, which the watchdog leaves alone.)
      const rounds = seen.journal.split('\n').filter((l) => / watchdog: \d+ of \d+ reached through Tor/.test(l)).map((l) => Date.parse(l.split(' ')[0]!));
      for (const service of ['xftp', 'smp3']) {
        const noticed = inPlace[service]! + at(service, 'failing') * 1000;
        expect(rounds.filter((t) => t > inPlace[service]! && t < noticed).length, `${service}: rounds that ended between the fault and its notice`).toBeLessThanOrEqual(1);
      }

      // Given up means left alone: a whole round later, no step was taken and systemd's own restarts had stopped at
      // its limit (with 1 s between them, a loop would show within that round).
      const givenUp = Date.parse(of('smp2').find((e) => e.event === 'given-up')!.at);
      expect(seen.units[smp2]?.ActiveState).toBe('failed');
      const restartsAtGivingUp = Number(seen.units[smp2]?.NRestarts);
      const roundAfter = givenUp + (plan.watchdog.intervalSeconds - 10) * 1000;
      for (let i = 0; i < 60 && Date.parse(((await healthOf(vm)).watchdog as { lastRound: string }).lastRound) < roundAfter; i++) await sleep(5000);
      seen = await watchdogOf(vm);
      expect(summary('smp2').at(-1)).toBe('given-up');
      expect(seen.units[smp2]?.ActiveState).toBe('failed');
      expect(Number(seen.units[smp2]?.NRestarts), 'no restart after the start limit').toBe(restartsAtGivingUp);

      // status says so, in words and in JSON; the other services are reached through Tor again.
      const now = await healthOf(vm);
      if (!('services' in now.watchdog)) throw new Error(`the watchdog's state is unreadable: ${JSON.stringify(now.watchdog)}`);
      expect(now.watchdog.services.smp2).toMatchObject({ state: 'given-up', fault: 'service' });
      expect(now.watchdog.services.smp2!.lastError).toMatch(/has failed/);
      for (const name of ['smp1', 'smp3', 'xftp', 'ssh']) expect(now.watchdog.services[name]?.state, name).toBe('ok');
      const text = (await vm.report<AgentReport>()).status;
      expect(text).toMatch(/^ {2}!! +smp2 +GIVEN UP: failed since \S+: simplex-smp@2 has failed/m);
      expect(text).toMatch(/^ {2}ok +xftp +reached /m);
      // And its history: the last events, in words (the giving up is the last of them).
      expect(text).toMatch(/^ {4}\S+ {2}smp2 still fails after every step: GIVEN UP, no more restarts until /m);
      for (const name of ['xftp', 'smp3']) expect(await probeService(targetOf(cardA.stick.addresses.get(name)!), onTor!.member, 90_000), name).toMatchObject({ ok: true });
      // Card T stays on for the security update test, which powers it off.
    }),
  );

  it(
    'security updates through the private Tor network: unattended-upgrades, as its timers run it, installs from a security archive only an exit reaches a newer test package and a newer libuv1, which the relays use, and needrestart restarts the relays; a package of another origin is left alone; apt reached nothing but Tor',
    { timeout: 40 * 60_000 },
    track(async () => {
      expect(onTor, 'needs card T on the Tor network').toBeDefined();
      const { vm } = onTor!;
      const TEST_PKG = 'simplex-pi-test-pkg';
      const CONTROL_PKG = 'simplex-pi-test-control';
      const LIBRARY = 'libuv1';
      const state = await vm.report<{ sources: Record<string, string>; codename: string; versions: Record<string, string | null> }>(`apt-state ${LIBRARY}`, 120_000);
      // The image's own sources: every archive through Tor, Debian's at its onion services, nothing in the clear.
      const uris = Object.entries(state.sources).flatMap(([file, text]) => sourceUris(text, file.endsWith('.sources')).map((uri) => `${file}: ${uri}`));
      expect(uris.length, JSON.stringify(state.sources)).toBeGreaterThan(0);
      expect(uris.filter((u) => !/: tor\+http:\/\/[a-z2-7]{56}\.onion\//.test(u)), 'sources not at an onion service').toEqual([]);
      expect(uris.filter((u) => isClearnetUri(u.split(': ')[1]!))).toEqual([]);

      // The repository: TEST FIXTURES imitating Debian's security archive (Origin Debian, Label Debian-Security,
      // Codename <release>-security, what the image's unattended-upgrades admits) and another archive it does not.
      const repo = await AptRepo.create(join(dir, 'apt-repo'));
      const security: Suite = { name: `${state.codename}-security`, origin: 'Debian', label: 'Debian-Security', suite: 'stable-security', codename: `${state.codename}-security`, description: "TEST FIXTURE imitating Debian's security archive" };
      const other: Suite = { name: state.codename, origin: 'simplex-pi-test', label: 'simplex-pi-test', suite: 'stable', codename: state.codename, description: 'TEST FIXTURE: an archive of another origin' };
      const debs = join(dir, 'apt-debs');
      await mkdir(debs, { recursive: true });
      await repo.publish(security, [await makeDeb(debs, TEST_PKG, '1.0')]);
      await repo.publish(other, [await makeDeb(debs, CONTROL_PKG, '1.0')]);
      await repo.serve(torNet.netns, torNet.address, SERVED_PORT);
      try {
        const sources = [security, other].map((s) => `Types: deb\nURIs: tor+http://${torNet.address}:${SERVED_PORT}/\nSuites: ${s.name}\nComponents: main\nSigned-By: /etc/apt/keyrings/simplex-pi-e2e.asc\n`).join('\n');
        await ask(vm, `apt-source ${Buffer.from(JSON.stringify({ sources, key: repo.key })).toString('base64')}`);
        const installed = await vm.report<{ ok: boolean; output: string; versions: Record<string, string | null> }>(`apt-install ${TEST_PKG} ${CONTROL_PKG}`, 15 * 60_000);
        expect(installed.versions, installed.output).toEqual({ [TEST_PKG]: '1.0', [CONTROL_PKG]: '1.0' });

        // The updates: 1.1 of both, and the library the relays (Node, for the stand-ins) have mapped, its files as
        // Debian ships them under a higher version, as a security update of it looks to dpkg and needrestart.
        const library = await repackDeb(debs, (await debianDeb(LIBRARY, { suite: state.codename })).path, `${state.versions[LIBRARY]}+simplexpi1`);
        await repo.publish(security, [await makeDeb(debs, TEST_PKG, '1.0'), await makeDeb(debs, TEST_PKG, '1.1'), library]);
        await repo.publish(other, [await makeDeb(debs, CONTROL_PKG, '1.0'), await makeDeb(debs, CONTROL_PKG, '1.1')]);
        const requestsBefore = repo.requests.length;
        const run = await vm.report<{
          ok: boolean;
          output: string;
          counters: { before: Record<string, number>; after: Record<string, number> };
          apt: Record<string, number>;
          journal: string;
          log: string;
          dpkgLog: string;
          relays: { before: Record<string, Record<string, string>>; after: Record<string, Record<string, string>> };
          versions: Record<string, string | null>;
        }>(`apt-unattended ${TEST_PKG} ${CONTROL_PKG} ${LIBRARY}`, 30 * 60_000);
        const context = `${run.output}\n--- journal\n${run.journal}\n--- unattended-upgrades.log\n${run.log}\n--- dpkg\n${run.dpkgLog.slice(-3000)}`;
        expect(run.ok, context).toBe(true);
        expect(run.versions, context).toEqual({ [TEST_PKG]: '1.1', [CONTROL_PKG]: '1.0', [LIBRARY]: `${state.versions[LIBRARY]}+simplexpi1` });
        expect(run.log, 'unattended-upgrade did it').toMatch(new RegExp(`Packages that will be upgraded: .*${TEST_PKG}`));
        expect(repo.requests.slice(requestsBefore).some((r) => r.includes(`/pool/${security.name}/${TEST_PKG}_1.1_all.deb`)), repo.requests.join('\n')).toBe(true);
        // needrestart restarted every relay that was running (smp2 is the watchdog test's broken one) with it.
        for (const relay of [plan.smp.instances[0]!, plan.smp.instances[2]!, plan.xftp!]) {
          const [before, after] = [run.relays.before[relay.unit]!, run.relays.after[relay.unit]!];
          expect(Number(after.ExecMainStartTimestampMonotonic), `${relay.unit} restarted by needrestart\n${context}`).toBeGreaterThan(Number(before.ExecMainStartTimestampMonotonic));
          expect(after.ActiveState, relay.unit).toBe('active');
        }
        expect(run.journal + run.dpkgLog, 'needrestart said what it restarted').toMatch(/Restarting services/);
        // apt's traffic: only to Tor's SOCKS port, never anywhere else; the firewall refused nothing meanwhile.
        expect(run.apt['e2e apt to Tor'], JSON.stringify(run.apt)).toBeGreaterThan(0);
        expect(run.apt['e2e apt not loopback'], JSON.stringify(run.apt)).toBe(0);
        expect(run.counters.after['not Tor'], JSON.stringify(run.counters)).toBe(run.counters.before['not Tor']);
      } finally {
        await repo.stop();
      }

      await vm.powerOff();
      // Nothing the suite ran reached past the private network: not the VM, not a relay, not a client, not apt.
      expect(await torNet.outsideContacts()).toBe(0);
    }),
  );
});

/**
 * Open a TLS session with the forwarded port as an SMP client would. qemu's user network accepts on the host side
 * whatever happens inside; true only if the relay itself answered, i.e. completed the TLS handshake.
 */
async function tryConnect(port: number, waitMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, ALPNProtocols: ['smp/1'], rejectUnauthorized: false });
    let settled = false;
    const done = (answered: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(answered);
    };
    const timer = setTimeout(() => done(false), waitMs);
    socket.on('secureConnect', () => done(true));
    socket.on('end', () => done(false));
    socket.on('error', () => done(false));
  });
}
