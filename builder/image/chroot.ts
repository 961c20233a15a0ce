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
