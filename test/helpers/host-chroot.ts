// A freshly bootstrapped Debian as a stand-in for a fresh build host (test/integration/fresh-host.test.ts): what
// the machine's installer leaves (minbase, apt, ca-certificates, git), a checkout of this repository, and a way to
// run commands in it as root.
//
// Everything is mounted in a mount namespace of its own (`unshare --mount --propagation private`), held open by a
// sleeping process and entered with nsenter: nothing reaches the host's mount table, so a crashed test leaves no
// mounts behind (the namespace goes away with its last process), and the recursive /dev bind cannot propagate
// an unmount back to the host's /dev. binfmt_misc is the kernel's, shared with the host.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, readdir, readlink, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { hashOf } from '../../builder/hash.ts';
import { REPO, TEST_CACHE } from './env.ts';

export const DEBIAN_MIRROR = 'http://deb.debian.org/debian';
const SECURITY_MIRROR = 'http://deb.debian.org/debian-security';

/** The archive lines of a Debian install: the release, its updates and its security updates. */
function sources(suite: string): string[] {
  return [`deb ${DEBIAN_MIRROR} ${suite} main`, `deb ${DEBIAN_MIRROR} ${suite}-updates main`, `deb ${SECURITY_MIRROR} ${suite}-security main`];
}

/** What the installer of a minimal machine leaves: Essential, apt, and what is needed to fetch a checkout. */
const INCLUDE = ['apt', 'ca-certificates', 'git'];

/**
 * The bootstrapped root filesystem of `suite` as a tarball, made once per machine and cached under the test
 * cache, keyed by what goes into it (not by date: a rebuild picks up the archive's updates only when a key input
 * changes, or when the cached file is deleted).
 */
export async function bootstrappedHost(suite: string): Promise<string> {
  const { stdout: mmdebstrapVersion } = await execa('mmdebstrap', ['--version']);
  const key = hashOf({ version: 1, suite, variant: 'minbase', include: INCLUDE, sources: sources(suite), mmdebstrap: mmdebstrapVersion.trim() }).slice(0, 16);
  const dir = join(TEST_CACHE, 'fresh-host');
  const tarball = join(dir, `${suite}-${key}.tar`);
  if (existsSync(tarball)) return tarball;
  await mkdir(dir, { recursive: true });
  const partial = `${tarball}.partial`;
  await rm(partial, { force: true });
  const result = await execa('mmdebstrap', ['--variant=minbase', `--include=${INCLUDE.join(',')}`, '--format=tar', suite, partial, ...sources(suite)], {
    reject: false,
    all: true,
    timeout: 15 * 60 * 1000,
  });
  if (result.exitCode !== 0) throw new Error(`bootstrapping a fresh ${suite} with mmdebstrap failed:\n${result.all}`);
  await rename(partial, tarball);
  return tarball;
}

export interface StepResult {
  exitCode: number;
  /** stdout and stderr interleaved. */
  all: string;
  stdout: string;
  seconds: number;
}

/** What a root shell on a fresh machine has; nothing else of the test's environment goes in. */
const BASE_ENV: Record<string, string> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  LANG: 'C.UTF-8',
  TERM: 'dumb',
};

/** Where the checkout is, inside the chroot. */
export const CHECKOUT = '/root/simplex-pi';

export class HostChroot {
  private constructor(
    /** The suite, for messages. */
    readonly name: string,
    readonly root: string,
    private readonly holder: ResultPromise,
    private readonly env: Record<string, string>,
  ) {}

  /**
   * Unpack `tarball` into `root` (an empty scratch directory), make it reach the package registries the way the
   * build host does, copy the checkout in, and mount /proc, /sys, /dev and /run in its own namespace.
   */
  static async create(name: string, tarball: string, root: string, checkout: Uint8Array): Promise<HostChroot> {
    await execa('tar', ['-xf', tarball, '-C', root]);
    // The build host reaches the registries through a TLS proxy with its own CA: the chroot gets those CA
    // certificates and, for npm, the system npm config's cafile (as an environment variable: a pinned npm's
    // global config file is under its own prefix, not /etc/npmrc). Nothing else of the host's configuration.
    const extraCas = await readdir('/usr/local/share/ca-certificates').catch(() => [] as string[]);
    for (const name of extraCas.filter((n) => n.endsWith('.crt'))) {
      await copyFile(join('/usr/local/share/ca-certificates', name), join(root, 'usr/local/share/ca-certificates', name));
    }
    const env = { ...BASE_ENV };
    const cafile = /^\s*cafile\s*=\s*(\S+)/m.exec(await readFile('/etc/npmrc', 'utf8').catch(() => ''))?.[1];
    if (cafile) env.npm_config_cafile = cafile;
    // A fresh machine has these from its installer; mmdebstrap writes neither.
    await rm(join(root, 'etc/resolv.conf'), { force: true });
    await copyFile('/etc/resolv.conf', join(root, 'etc/resolv.conf'));
    await writeFile(join(root, 'etc/hosts'), '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n');
    await mkdir(join(root, CHECKOUT), { recursive: true });
    await execa('tar', ['-x', '-C', join(root, CHECKOUT)], { input: checkout });

    const holder = execa('unshare', ['--mount', '--propagation', 'private', 'sleep', '7200'], { reject: false });
    const chroot = new HostChroot(name, root, holder, env);
    await chroot.waitForNamespace();
    for (const [args, target] of [
      [['-t', 'proc', 'proc'], 'proc'],
      [['-t', 'sysfs', 'sysfs'], 'sys'],
      [['--rbind', '/dev'], 'dev'],
      [['-t', 'tmpfs', 'tmpfs'], 'run'],
    ] as const) {
      await execa('nsenter', [`--mount=/proc/${holder.pid}/ns/mnt`, '--', 'mount', ...args, join(root, target)]);
    }
    const certs = await chroot.run(['update-ca-certificates']);
    if (certs.exitCode !== 0) throw new Error(`update-ca-certificates in the fresh chroot failed:\n${certs.all}`);
    return chroot;
  }

  private async waitForNamespace(): Promise<void> {
    const own = await readlink('/proc/self/ns/mnt');
    for (let i = 0; i < 100; i++) {
      const theirs = await readlink(`/proc/${this.holder.pid}/ns/mnt`).catch(() => own);
      if (theirs !== own) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('unshare did not start a mount namespace');
  }

  /** Run a command as root in the chroot, in the checkout, with a fresh machine's environment. */
  async run(command: string[], options: { timeout?: number; cwd?: string } = {}): Promise<StepResult> {
    const started = Date.now();
    const envArgs = Object.entries(this.env).map(([name, value]) => `${name}=${value}`);
    const result = await execa(
      'nsenter',
      [`--mount=/proc/${this.holder.pid}/ns/mnt`, '--', 'chroot', this.root, '/usr/bin/env', '-i', '-C', options.cwd ?? CHECKOUT, ...envArgs, ...command],
      { reject: false, all: true, timeout: options.timeout ?? 15 * 60 * 1000, stdin: 'ignore' },
    );
    return { exitCode: result.exitCode ?? -1, all: String(result.all), stdout: String(result.stdout), seconds: (Date.now() - started) / 1000 };
  }

  /** End the namespace: its mounts go with it. */
  async close(): Promise<void> {
    this.holder.kill('SIGKILL');
    await this.holder;
  }
}

/**
 * A clean checkout as a tar stream: `git archive REV` when SIMPLEX_PI_FRESH_HOST_REV is set (to run this test
 * against another commit's setup-host.sh and CLI), else the working tree's tracked and untracked, not ignored
 * files, as a commit of it would hold them. Never node_modules or caches.
 */
export async function checkoutTar(): Promise<Uint8Array> {
  const rev = process.env.SIMPLEX_PI_FRESH_HOST_REV;
  if (rev) return (await execa('git', ['-C', REPO, 'archive', '--format=tar', rev], { encoding: 'buffer' })).stdout;
  const { stdout } = await execa('git', ['-C', REPO, 'ls-files', '-z', '--cached', '--others', '--exclude-standard']);
  const files = stdout.split('\0').filter((f) => f && existsSync(join(REPO, f)));
  return (await execa('tar', ['-c', '-C', REPO, '--null', '-T', '-'], { input: files.join('\0'), encoding: 'buffer' })).stdout;
}
