import { type RunOptions, type RunResult, run } from '../exec.ts';

/**
 * The environment inside the image's chroot. Nothing of the host's environment leaks in: a stray TMPDIR or
 * locale would change what maintainer scripts do.
 */
export const CHROOT_ENV: Record<string, string> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  LANG: 'C.UTF-8',
  LC_ALL: 'C.UTF-8',
  DEBIAN_FRONTEND: 'noninteractive',
  DEBCONF_NONINTERACTIVE_SEEN: 'true',
};

/** Run an arm64 program inside the mounted image; qemu-user runs it through binfmt_misc. */
export function chrootRun(root: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return run('chroot', [root, ...args], { ...options, env: { ...CHROOT_ENV, ...options.env }, cleanEnv: true });
}

/**
 * chrootRun with no network at all: in a network namespace of its own (`unshare --net`: only a loopback, down).
 * For the downloaded simplexmq binaries, run on the build host for `-v` and `ldd` (security review M7): a chroot is
 * no boundary for root, but a binary that is not what it claims can at least reach nothing, the release's token
 * and the signing key are in other jobs, and the sha256 was checked before it ran.
 */
export function chrootRunOffline(root: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return run('unshare', ['--net', '--', 'chroot', root, ...args], { ...options, env: { ...CHROOT_ENV, ...options.env }, cleanEnv: true });
}
