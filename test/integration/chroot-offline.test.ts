import { describe, expect, it } from 'vitest';
import { chrootRun, chrootRunOffline } from '../../builder/image/chroot.ts';
import { isRoot } from '../helpers/env.ts';

/**
 * The downloaded simplexmq binaries are run on the build host for `-v` and `ldd` (stages/binaries.ts) in a network
 * namespace of their own (security review M7): they see no interface but a loopback, so they reach nothing.
 */
describe.runIf(isRoot)('chrootRunOffline', () => {
  const interfaces = (procNetDev: string) =>
    procNetDev
      .split('\n')
      .slice(2)
      .map((line) => line.split(':')[0]!.trim())
      .filter(Boolean)
      .sort();

  it('runs a program in a network namespace of its own, with no interface but loopback; the plain chroot (the control) is in the host\'s', async () => {
    const offline = await chrootRunOffline('/', ['cat', '/proc/net/dev']);
    expect(interfaces(offline.stdout)).toEqual(['lo']);
    const namespace = async (runner: typeof chrootRun) => (await runner('/', ['readlink', '/proc/self/ns/net'])).stdout.trim();
    const host = await namespace(chrootRun);
    expect(host).toMatch(/^net:\[\d+\]$/);
    expect(await namespace(chrootRunOffline)).not.toBe(host);
  });
});
