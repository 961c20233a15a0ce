// npm run bench: figures on this machine. Prints, never asserts. `npm run bench -- --render-only` for the quick part,
// `-- --builds-only` for the builds alone (cold, no change, one field edited, a relay added).
// Render time per preset, and the systemd-analyze security exposure of every service the team preset ships.
// Cold build (empty cache, Debian base built with mmdebstrap), a rebuild with no change, warm rebuilds after a
// one-field recipe edit and after adding a relay (cached base, packages layer and xz chunks), time per stage, xz
// chunks compressed again, raw/compressed/allocated image sizes (chunked against one xz stream), peak disk use.
// The simplexmq stand-in is served from 127.0.0.1 like in the tests (real binaries cannot be downloaded here).
// Boot times in qemu-system-aarch64 (first boot to addresses on the stick, plain boot); `-- --vm-only` for those.
// The Raspberry Pi OS look-alike: its build cold and cached, the pipeline on it, a customised first boot;
// `-- --raspios-only` for those.
// The suite's private Tor network: its bootstrap, power-on to every relay address reached through it, and the
// watchdog's detection and recovery of a withdrawn onion and a hung relay; `-- --tor-only` for those.
import { copyFile, statfs, writeFile, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DEVICE_COMMAND, UNITS } from '../builder/plan/layout.ts';
import type { BuildPlan } from '../builder/plan/plan.ts';
import { OVERLAYS } from '../builder/render/render.ts';
import { listPresets } from '../builder/recipe/presets.ts';
import { chrootRun } from '../builder/image/chroot.ts';
import { mountImage } from '../builder/image/mount-image.ts';
import { silentLog } from '../builder/log.ts';
import { Resources } from '../builder/resources.ts';
import { systemdRoot } from '../test/helpers/real-tools.ts';
import { type UnitExposure, unitExposures } from '../test/helpers/unit-exposure.ts';
import { execa } from 'execa';
import { TestServer } from '../test/helpers/http-server.ts';
import { REPO, scratch, testSshPublicKey } from '../test/helpers/env.ts';
import { debianStandinRecipe, serveStandins } from '../test/helpers/standins.ts';
import { Vm, copyDisk, extractBootFiles, largerCard, makeStick } from '../test/helpers/vm.ts';
import { buildE2eImage, readStick, stickFiles } from '../test/e2e/cluster.ts';
import { TOR_TEST_RECIPE, authDirOf, reachEvery, secondsTo, targetOf, torOverlay, watchdogAllOk, watchdogUntil } from '../test/e2e/tor-scenario.ts';
import { TorNetwork } from '../test/helpers/tor-network.ts';
import { imagerCustomise } from '../test/helpers/imager.ts';
import { LOOKALIKE_OS_NAME, raspiosLookalike, serveLookalike } from '../test/helpers/raspios-lookalike.ts';
import { MANIFEST_FILE } from '../builder/outputs/manifest.ts';

const MiB = 1024 * 1024;
const mib = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`;

async function usedBytes(path: string): Promise<number> {
  const fs = await statfs(path);
  return (fs.blocks - fs.bfree) * fs.bsize;
}

async function timedBuild(label: string, recipe: string, out: string, cache: string, extra: string[] = []) {
  const before = await usedBytes(cache);
  let peak = 0;
  const sampler = setInterval(() => {
    void usedBytes(cache).then((used) => (peak = Math.max(peak, used - before)));
  }, 1000);
  const started = performance.now();
  const result = await execa('node', [join(REPO, 'bin/simplex-pi.mjs'), 'build', '--recipe', recipe, '--out', out, '--cache', cache, ...extra], {
    reject: false,
    all: true,
    env: { CI: '1' },
  });
  clearInterval(sampler);
  const seconds = (performance.now() - started) / 1000;
  if (result.exitCode !== 0) throw new Error(`${label} build failed:\n${result.all}`);
  const manifest = JSON.parse(await readFile(join(out, MANIFEST_FILE), 'utf8'));
  // The build log has every stage's time, emit included (the manifest is written during emit).
  const log = await readFile(join(out, `${manifest.recipe.name}.build.log`), 'utf8');
  const stages = Object.fromEntries([...log.matchAll(/== stage ([\w-]+) took ([\d.]+) s/g)].map((m) => [m[1]!, Number(m[2])]));
  const chunks = /xz: (\d+) chunks, (\d+) compressed, (\d+) from the cache/.exec(log);
  const sums = await readFile(join(out, 'SHA256SUMS'), 'utf8');
  return {
    label,
    seconds,
    peak,
    stages,
    outputs: manifest.outputs as Array<{ name: string; size: number }>,
    chunks: chunks ? { total: Number(chunks[1]), compressed: Number(chunks[2]) } : undefined,
    sums,
  };
}

/** Render time per preset: quick, no root. */
async function renderFigures(): Promise<void> {
  console.log('| preset | render (CLI, wall) |');
  console.log('|---|---|');
  for (const preset of await listPresets()) {
    const out = join(await scratch('bench-render'), 'out');
    const started = performance.now();
    await execa('node', [join(REPO, 'bin/simplex-pi.mjs'), 'render', '--recipe', preset.file, '--out', out]);
    const seconds = (performance.now() - started) / 1000;
    console.log(`| ${preset.recipe.name} (${preset.recipe.smp.instances} SMP) | ${seconds.toFixed(2)} s |`);
    await rm(dirname(out), { recursive: true, force: true });
  }
  console.log('');
}

/**
 * The sandbox of every service the `team` preset ships (10 SMP relays, XFTP, SSH over Tor: every unit there is),
 * scored by this host's `systemd-analyze security --offline=true` on the rendered tree, against the targets the
 * render test holds them to (test/helpers/unit-exposure.ts). Debian's units we add a drop-in to (ssh, tor@default)
 * are scored as this host packages them, and the Debian base's own growroot unit (static, not rendered) too.
 */
async function exposureFigures(): Promise<void> {
  const out = join(await scratch('bench-exposure'), 'out');
  await execa('node', [join(REPO, 'bin/simplex-pi.mjs'), 'render', '--recipe', join(REPO, 'recipes/team.yaml'), '--out', out]);
  const rootfs = join(out, 'rootfs');
  const plan = JSON.parse(await readFile(join(out, 'plan.json'), 'utf8')) as BuildPlan;
  const root = await systemdRoot(rootfs);
  try {
    await copyFile(join(OVERLAYS, 'debian-base/rootfs/etc/systemd/system', UNITS.growroot), join(root, 'etc/systemd/system', UNITS.growroot));
    const found = await unitExposures(root, rootfs, plan, [UNITS.tor, UNITS.growroot]);
    const what = (u: UnitExposure) =>
      u.kind === 'drop-in' ? "the base's, with our drop-in" : u.unit === UNITS.growroot ? 'the Debian base only (static)' : u.file ? 'ours' : "the base's";
    console.log(`| unit (team preset, systemd-analyze security --offline, ${(await execa('systemd-analyze', ['--version'])).stdout.split('\n')[0]}) | what | exposure | target |`);
    console.log('|---|---|---|---|');
    for (const u of found) console.log(`| ${u.unit} | ${what(u)} | ${u.exposure.toFixed(1)} | ${u.target ? (u.target.max === null ? `none: ${u.target.why}` : `<= ${u.target.max.toFixed(1)}`) : '-'} |`);
    console.log('');
  } finally {
    await rm(dirname(out), { recursive: true, force: true });
    await rm(root, { recursive: true, force: true });
  }
}

/**
 * First boot of the `team` layout (10 SMP + XFTP + SSH over Tor) in the arm64 chroot of a built image, with the
 * stand-in: onion keys, 11 `init`s (openssl under qemu-user), INI, addresses. Slower than on a Pi 4 (emulation).
 */
async function firstbootFigure(cache: string, server: TestServer, dir: string): Promise<void> {
  const standins = await serveStandins(server, dir, '6.5.2');
  const key = await testSshPublicKey();
  const recipe = join(dir, 'team-bench.yaml');
  await writeFile(recipe, debianStandinRecipe({ name: 'team-bench', standins, sshKey: key, instances: 10 }));
  const out = join(dir, 'out-team');
  await execa('node', [join(REPO, 'bin/simplex-pi.mjs'), 'build', '--recipe', recipe, '--out', out, '--cache', cache, '--compress', 'none'], { env: { CI: '1' } });
  // A fresh card for the restore below, before first boot runs in the image.
  const card = join(dir, 'team-card.img');
  await execa('cp', ['--sparse=always', join(out, 'team-bench.img'), card]);
  const resources = new Resources();
  const mounted = await mountImage(join(out, 'team-bench.img'), join(dir, 'team-root'), resources, silentLog);
  try {
    const started = performance.now();
    await chrootRun(mounted.root, [DEVICE_COMMAND, 'firstboot'], { what: 'run first boot' });
    const first = (performance.now() - started) / 1000;
    const again = performance.now();
    await chrootRun(mounted.root, [DEVICE_COMMAND, 'firstboot'], { what: 'run first boot again' });
    const second = (performance.now() - again) / 1000;
    console.log(`first boot, team layout (10 SMP + XFTP + SSH), arm64 chroot under qemu-user: ${first.toFixed(1)} s; a second run (nothing to do): ${second.toFixed(1)} s\n`);
    // The backup of that card (the device's own program, in the chroot: no relay runs there, so none is stopped),
    // and its restore onto a fresh copy of the image by the host's CLI.
    const identity = join(dir, 'owner.agekey');
    await execa('age-keygen', ['-o', identity]);
    const recipient = /^# public key: (age1\w+)$/m.exec(await readFile(identity, 'utf8'))![1]!;
    const backingUp = performance.now();
    await chrootRun(mounted.root, [DEVICE_COMMAND, 'backup', '--recipient', recipient, '--output', '/root/bench.backup.tar'], { what: 'back up' });
    const backupSeconds = (performance.now() - backingUp) / 1000;
    const backup = join(dir, 'team.backup.tar');
    await execa('cp', [join(mounted.root, 'root/bench.backup.tar'), backup]);
    await resources.releaseAll();
    const restoring = performance.now();
    await execa('node', [join(REPO, 'bin/simplex-pi.mjs'), 'restore', '--backup', backup, '--card', card, '--identity', identity]);
    const restoreSeconds = (performance.now() - restoring) / 1000;
    console.log(
      `backup, team layout (10 SMP + XFTP + SSH): ${((await stat(backup)).size / 1024).toFixed(0)} KiB, ${backupSeconds.toFixed(1)} s in the arm64 chroot under qemu-user ` +
        `(device program, age to a recipient); restore onto a fresh card image (host CLI: check read-only, write, sync): ${restoreSeconds.toFixed(1)} s\n`,
    );
  } finally {
    await resources.releaseAll();
  }
}

/**
 * The boot test's image (3 SMP + XFTP + SSH over Tor, stand-ins, the e2e agent overlay) in qemu-system-aarch64
 * -M virt (TCG on this host, no network): power-on to the addresses on the USB stick on the first boot, and a
 * plain boot of the same card afterwards (first boot done) to every relay listening.
 */
async function vmBootFigures(cache: string, server: TestServer, dir: string): Promise<void> {
  const vmDir = join(dir, 'vm');
  const { image, plan } = await buildE2eImage(server, join(dir, 'e2e'), cache);
  const boot = await extractBootFiles(image, join(vmDir, 'boot'));
  const disk = join(vmDir, 'card.img');
  const stick = join(vmDir, 'stick.img');
  await copyDisk(image, disk);
  await makeStick(stick, plan.export.usbLabel);
  const first = await Vm.start({ name: 'bench-first', disk, boot, dir: vmDir, stick });
  let firstFigures: { addresses: number; ready: number; login: number };
  try {
    await first.waitForAgent('ready', 15 * 60 * 1000);
    const ready = first.elapsed() / 1000;
    const addresses = (await first.waitForLine(/simplex-pi\[\d+\]: export: wrote/, 1000)).at / 1000;
    const login = (await first.waitForLine(/login: /, 1000)).at / 1000;
    firstFigures = { addresses, ready, login };
    await first.powerOff();
  } finally {
    await first.dispose();
  }
  const plain = await Vm.start({ name: 'bench-plain', disk, boot, dir: vmDir });
  try {
    await plain.waitForAgent('ready', 15 * 60 * 1000);
    const ready = plain.elapsed() / 1000;
    const login = (await plain.waitForLine(/login: /, 1000)).at / 1000;
    await plain.powerOff();
    console.log('| boot in the VM (qemu-system-aarch64 -M virt, TCG, 2 vCPUs, 1 GiB) | login prompt | addresses on the stick | every relay listening |');
    console.log('|---|---|---|---|');
    console.log(`| first boot | ${firstFigures.login.toFixed(1)} s | ${firstFigures.addresses.toFixed(1)} s | ${firstFigures.ready.toFixed(1)} s |`);
    console.log(`| plain boot (same card, first boot done) | ${login.toFixed(1)} s | - | ${ready.toFixed(1)} s |`);
    console.log(`power-on to addresses on the stick / plain boot to relays listening: ${(firstFigures.addresses / ready).toFixed(2)}\n`);
  } finally {
    await plain.dispose();
  }
}

/**
 * The Raspberry Pi OS Trixie look-alike (test/helpers/raspios-lookalike.ts): building it in an empty cache
 * (mmdebstrap of Debian trixie arm64 under qemu-user, pi-gen's layout, xz) and taking it from the cache; then
 * the full pipeline on it and a customised card's first boot in the VM to every relay listening.
 */
async function raspiosFigures(cache: string, server: TestServer, dir: string): Promise<void> {
  let started = performance.now();
  const lookalike = await raspiosLookalike(cache);
  const cold = (performance.now() - started) / 1000;
  started = performance.now();
  await raspiosLookalike(cache);
  const cached = (performance.now() - started) / 1000;
  const imagerJson = await serveLookalike(server, lookalike);
  const { image, plan, buildSeconds } = await buildE2eImage(server, join(dir, 'e2e-raspios'), cache, {
    name: 'e2e-raspios',
    base: { provider: 'raspios', imager_json: imagerJson, os_name: LOOKALIKE_OS_NAME },
  });
  const vmDir = join(dir, 'vm-raspios');
  const boot = await extractBootFiles(image, join(vmDir, 'boot'));
  const disk = join(vmDir, 'card.img');
  const stick = join(vmDir, 'stick.img');
  await largerCard(image, disk, 4);
  await imagerCustomise(disk, 'cloudinit-rpi', { hostname: 'bench-relay', userName: 'alice', sshEnabled: true, sshAuthorizedKeys: [await testSshPublicKey()] });
  await makeStick(stick, plan.export.usbLabel);
  const vm = await Vm.start({ name: 'bench-raspios', disk, boot, dir: vmDir, stick });
  try {
    await vm.waitForAgent('ready', 20 * 60 * 1000);
    const ready = vm.elapsed() / 1000;
    await vm.powerOff();
    console.log('| Raspberry Pi OS look-alike | seconds |');
    console.log('|---|---|');
    console.log(`| look-alike base, cold (mmdebstrap trixie arm64, layout, xz -1) | ${cold.toFixed(0)} |`);
    console.log(`| look-alike base, cached | ${cached.toFixed(2)} |`);
    console.log(`| full build on it (download, verify, packages, …, emit; uncompressed) | ${buildSeconds.toFixed(0)} |`);
    console.log(`| first boot of an Imager-customised card 4 GiB larger (resize, cloud-init) to every relay listening | ${ready.toFixed(0)} |`);
    console.log(`look-alike: ${mib(lookalike.size)} raw, ${mib(lookalike.xzSize)} .img.xz\n`);
  } finally {
    await vm.dispose();
  }
}

/**
 * The boot test's image in the suite's private Tor network (test/helpers/tor-network.ts, the VM joined through a
 * restricted user-mode network): the network's bootstrap; a first boot's power-on to every relay address on the
 * stick reached from the host through Tor (TLS and identity checked, as the watchdog and the apps check them);
 * then, with a watchdog round a minute, an onion service withdrawn from Tor and a hung relay (SIGSTOP) at once:
 * seconds from the fault until the watchdog said each failed, and until it said each recovered.
 */
async function torFigures(cache: string, server: TestServer, dir: string): Promise<void> {
  const torDir = join(dir, 'tor');
  const network = await TorNetwork.create(join(torDir, 'network'));
  try {
    const { image, plan } = await buildE2eImage(server, join(dir, 'e2e-tor'), cache, { overlays: [await torOverlay(torDir, network)], extra: TOR_TEST_RECIPE });
    await network.start();
    const boot = await extractBootFiles(image, join(torDir, 'boot'));
    const disk = join(torDir, 'card.img');
    const stick = join(torDir, 'stick.img');
    await copyDisk(image, disk);
    await makeStick(stick, plan.export.usbLabel);
    const vm = await Vm.start({ name: 'bench-tor', disk, boot, dir: torDir, stick, torNetwork: network.vmNetwork() });
    const poweredOn = Date.now();
    try {
      await vm.waitForLine(/simplex-pi\[\d+\]: export: wrote/, 15 * 60 * 1000);
      const addresses = readStick(stick, plan.hostname).addresses;
      const folder = `simplex-pi-${plan.hostname}`;
      const keys = new Map([...stickFiles(stick)].filter(([f]) => f.startsWith(`${folder}/client-auth/client-1/`)));
      const member = await network.client('member', { authDir: await authDirOf(join(torDir, 'auth-member'), keys) });
      const { reached, failures } = await reachEvery(new Map([...addresses].map(([name, address]) => [name, targetOf(address)])), member.socks, poweredOn, 15 * 60 * 1000);
      if (failures.size) throw new Error(`not reached through Tor: ${JSON.stringify(Object.fromEntries(failures))}`);
      const reachable = Math.max(...[...reached.values()].map((r) => r.seconds));
      const names = [...addresses.keys(), ...(plan.ssh.onion ? ['ssh'] : [])];
      const ok = await watchdogAllOk(vm, names, 10 * 60 * 1000);
      if (!names.every((n) => ok[n] === 'ok')) throw new Error(`the watchdog never reached every service: ${JSON.stringify(ok)}`);
      // Each fault's times count from when it was in place (the agent's answer).
      const inPlace: Record<string, number> = {};
      for (const [service, fault] of [['xftp', `fault withdraw ${plan.xftp!.onion.name}`], ['smp3', 'fault hang 3']] as const) {
        const answer = await vm.report<{ ok: boolean; output?: string }>(fault, 60_000);
        if (!answer.ok) throw new Error(`${fault}: ${answer.output}`);
        inPlace[service] = Date.now();
      }
      const recovered = (events: Parameters<typeof secondsTo>[0]) => ['xftp', 'smp3'].every((s) => secondsTo(events, s, 'recovered', inPlace[s]!) !== undefined);
      const { events } = await watchdogUntil(vm, (view) => recovered(view.events), 15 * 60 * 1000);
      const figure = (service: string, event: 'failing' | 'recovered') => secondsTo(events, service, event, inPlace[service]!)?.toFixed(0) ?? 'never';
      await vm.powerOff();
      console.log('| private Tor network (3 authorities, 3 relays, testing mode), the VM on it | seconds |');
      console.log('|---|---|');
      console.log(`| the network bootstrapped (every relay in the consensus, a client at 100%) | ${network.bootstrapSeconds.toFixed(1)} |`);
      console.log(`| first boot: power-on to every relay address on the stick reached through Tor (TLS, identity) | ${reachable.toFixed(0)} |`);
      console.log(`| watchdog (a round every 60 s): an onion withdrawn from Tor, noticed / recovered (reload Tor) | ${figure('xftp', 'failing')} / ${figure('xftp', 'recovered')} |`);
      console.log(`| watchdog: a hung relay (SIGSTOP), noticed / recovered (restart) | ${figure('smp3', 'failing')} / ${figure('smp3', 'recovered')} |`);
      console.log(`outside contacts counted in the network's namespace: ${await network.outsideContacts()}\n`);
    } finally {
      await vm.dispose();
    }
  } finally {
    await network.stop();
  }
}

await renderFigures();
await exposureFigures();
if (process.argv.includes('--render-only')) process.exit(0);
/** One part on its own, with an existing cache (BENCH_CACHE) so the Debian base need not be built again. */
async function only(name: string, figures: (cache: string, server: TestServer, dir: string) => Promise<void>): Promise<never> {
  const server = await new TestServer().start();
  const dir = await scratch(`bench-${name}`);
  try {
    await figures(process.env.BENCH_CACHE ?? join(dir, 'cache'), server, dir);
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
  process.exit(0);
}
if (process.argv.includes('--vm-only')) await only('vm', vmBootFigures);
if (process.argv.includes('--firstboot-only')) await only('firstboot', firstbootFigure);
if (process.argv.includes('--raspios-only')) await only('raspios', raspiosFigures);
if (process.argv.includes('--tor-only')) await only('tor', torFigures);

const server = await new TestServer().start();
const dir = await scratch('bench');
const cache = join(dir, 'cache');
try {
  const standins = await serveStandins(server, dir, '6.5.2');
  const key = await testSshPublicKey();
  const recipe = (instances: number, extra: string[] = []) => debianStandinRecipe({ name: 'bench', standins, sshKey: key, instances, extra });
  const path = join(dir, 'bench.yaml');
  await writeFile(path, recipe(3));
  await execa('mkdir', ['-p', cache]);
  console.log('simplex-pi bench: cold build (empty cache) …');
  const cold = await timedBuild('cold (empty cache)', path, join(dir, 'out-cold'), cache);
  console.log('simplex-pi bench: rebuild with no change …');
  const same = await timedBuild('no change', path, join(dir, 'out-same'), cache);
  await writeFile(path, recipe(3, ['watchdog: { interval_seconds: 3600 }']));
  console.log('simplex-pi bench: warm rebuild after a one-field recipe edit …');
  const field = await timedBuild('warm, one field edited (watchdog interval)', path, join(dir, 'out-field'), cache);
  await writeFile(path, recipe(4));
  console.log('simplex-pi bench: warm rebuild after adding a relay …');
  const warm = await timedBuild('warm, a relay added (instances 3 -> 4)', path, join(dir, 'out-warm'), cache);

  const names = ['base', 'prepare', 'packages', 'mount', 'binaries', 'configure', 'install-device', 'seal', 'emit'];
  console.log(`\n| build | total | chunks compressed | peak extra disk | ${names.join(' | ')} |`);
  console.log(`|---|---|---|---|${'---|'.repeat(names.length)}`);
  for (const run of [cold, same, field, warm]) {
    const stage = (name: string) => (run.stages[name] === undefined ? 'cached' : `${run.stages[name]} s`);
    const chunks = run.chunks ? `${run.chunks.compressed} of ${run.chunks.total}` : '-';
    console.log(`| ${run.label} | ${run.seconds.toFixed(0)} s | ${chunks} | ${mib(run.peak)} | ${names.map(stage).join(' | ')} |`);
  }
  console.log(`\ntwo builds of the same inputs (cold, no change): SHA256SUMS ${cold.sums === same.sums ? 'identical' : 'DIFFERENT'}`);
  const img = join(dir, 'out-warm', 'bench.img');
  const allocated = (await stat(img)).blocks * 512;
  const sizes = Object.fromEntries(warm.outputs.map((o) => [o.name, o.size]));
  // Against what emit wrote before chunking: one xz -6 stream of the whole image, on every core.
  // xz writes <image>.single.xz itself, beside the chunked one: no stream through this process.
  const single = `${img}.single.xz`;
  const started = performance.now();
  await execa('xz', ['-6', '-T0', '--keep', '--suffix=.single.xz', img]);
  const singleSeconds = (performance.now() - started) / 1000;
  const singleSize = (await stat(single)).size;
  const chunked = sizes['bench.img.xz']!;
  console.log(
    `image: raw ${mib(sizes['bench.img']!)} (${mib(allocated)} allocated on disk); .img.xz in chunks ${mib(chunked)}, one xz -6 -T0 stream ${mib(singleSize)} ` +
      `(${singleSeconds.toFixed(0)} s): chunked is ${(((chunked - singleSize) / singleSize) * 100).toFixed(2)} % larger`,
  );
  if (!process.argv.includes('--builds-only')) {
    await firstbootFigure(cache, server, dir);
    await vmBootFigures(cache, server, dir);
    await raspiosFigures(cache, server, dir);
    await torFigures(cache, server, dir);
  }
} finally {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
}
