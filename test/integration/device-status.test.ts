import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { bundleDeviceProgram } from '../../builder/device/bundle.ts';
import { torBootstrap } from '../../builder/device/status.ts';
import { parseBootstrap } from '../../builder/device/tor-control.ts';
import { listeningPorts } from '../../builder/device/listening.ts';
import { STATE, TOR_CONTROL_COOKIE } from '../../builder/plan/layout.ts';
import { resolvePlan } from '../../builder/plan/plan.ts';
import { parseRecipe } from '../../builder/recipe/load.ts';
import { isRoot, scratch } from '../helpers/env.ts';

describe('simplex-pi status, the parts that talk to the system', () => {
  it('reads LISTEN sockets from /proc/net/tcp and tcp6', () => {
    const tcp = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:2352 00000000:0000 0A 00000000:00000000 00:00000000 00000000   108        0 1 1',
      '   1: 00000000:14B5 00000000:0000 0A 00000000:00000000 00:00000000 00000000   998        0 2 1',
      '   2: 0100007F:14B6 0100007F:9C40 01 00000000:00000000 00:00000000 00000000   998        0 3 1',
    ].join('\n');
    const tcp6 = '  sl  local_address header\n   0: 00000000000000000000000000000000:1537 00000000000000000000000000000000:0000 0A 0 0 0 0 0\n';
    expect([...listeningPorts(tcp, tcp6)].sort()).toEqual([5301, 5431, 9042].sort());
  });

  it('reads the bootstrap phase', () => {
    expect(parseBootstrap('250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"\r\n250 OK')).toEqual({ progress: 100, summary: 'Done' });
    expect(parseBootstrap('515 Authentication failed')).toBeUndefined();
  });

  it('asks a real Tor over its control socket with cookie authentication (DisableNetwork 1)', { timeout: 60_000 }, async () => {
    const dir = await scratch('torctl');
    await mkdir(join(dir, 'data'), { mode: 0o700 });
    await mkdir(join(dir, 'run'), { mode: 0o700 });
    await chmod(join(dir, 'run'), 0o700);
    const socket = join(dir, 'run/control');
    const cookie = join(dir, 'run/control.authcookie');
    await writeFile(join(dir, 'torrc'), `DataDirectory ${dir}/data\nDisableNetwork 1\nSocksPort 0\nControlSocket ${socket}\nCookieAuthentication 1\nCookieAuthFile ${cookie}\n`);
    const tor = execa('tor', ['--defaults-torrc', '/dev/null', '-f', join(dir, 'torrc')], { reject: false, all: true });
    try {
      let answer = '';
      for (let i = 0; i < 100; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        answer = await torBootstrap(socket, cookie);
        if (!answer.startsWith('unknown')) break;
      }
      // With the network disabled Tor never finishes, but it answers with its phase.
      expect(answer).toMatch(/^connecting: \d+% \(.+\)$/);
    } finally {
      tor.kill();
      await tor;
    }
    expect(await torBootstrap(socket, cookie)).toMatch(/^unknown: cannot ask Tor/);
  });
});

/**
 * The device program as the Pi runs it (bundled, with Node), asked by root and by a person without root. What only
 * root may read on the Pi (the state directory, Tor's control cookie, the XFTP relay's files) is made in scratch
 * directories, mounted at their places in a mount namespace of the test's own, so nothing of this host is
 * touched; the person is `nobody`, through setpriv.
 */
describe.runIf(isRoot)('simplex-pi status and addresses, for root and for a person without root', () => {
  const ADDRESS = 'smp1\tsmp://fp:secret@abc.onion';
  /** The Pi's directories that the scratch ones are mounted on. */
  const MOUNTS = ['/var/lib', '/srv', '/run'];
  let dir: string;

  /** A file or directory at its place on the Pi, in the scratch tree; every directory on the way root's alone (0700). */
  const make = async (path: string, content?: string) => {
    const parts = path.split('/').filter(Boolean);
    const mount = MOUNTS.find((m) => path.startsWith(`${m}/`))!.split('/').filter(Boolean).length;
    for (let i = mount + 1; i <= (content === undefined ? parts.length : parts.length - 1); i++) await mkdir(join(dir, 'pi', ...parts.slice(0, i)), { mode: 0o700 }).catch(() => undefined);
    if (content !== undefined) await writeFile(join(dir, 'pi', path), content, { mode: 0o600 });
  };

  beforeAll(async () => {
    dir = await scratch('status-user');
    await chmod(dir, 0o755);
    await writeFile(join(dir, 'simplex-pi.mjs'), await bundleDeviceProgram(), { mode: 0o644 });
    const plan = resolvePlan(parseRecipe('name: t\n', 'test'));
    await writeFile(join(dir, 'plan.json'), JSON.stringify(plan), { mode: 0o644 });
    for (const mount of MOUNTS) await mkdir(join(dir, 'pi', mount), { recursive: true, mode: 0o755 });
    // What first boot leaves, and what Tor and the XFTP relay keep to themselves.
    await make(STATE.firstbootDone, '2026-01-01T00:00:00.000Z\n');
    await make(STATE.addresses, `${ADDRESS}\n`);
    await make(TOR_CONTROL_COOKIE, 'cookie');
    await make(plan.xftp!.filesPath);
  });

  /** The program's command, in a mount namespace where the scratch directories are the Pi's, as `user`. */
  const device = (user: 'root' | 'nobody', command: string) => {
    const as = user === 'root' ? '' : 'setpriv --reuid=nobody --regid=nogroup --clear-groups ';
    const mounts = MOUNTS.map((m) => `mount --bind ${dir}/pi${m} ${m}`).join(' && ');
    const script = `${mounts} && exec ${as}${process.execPath} ${dir}/simplex-pi.mjs ${command}`;
    return execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { reject: false, all: true, env: { SIMPLEX_PI_PLAN: join(dir, 'plan.json') } });
  };

  it('root: first boot finished, the card\'s room for the XFTP quota, and the addresses', async () => {
    const status = await device('root', 'status');
    expect(status.stdout).toContain('First boot: finished 2026-01-01T00:00:00.000Z');
    expect(status.stdout).toMatch(/Storage: .*XFTP quota/);
    expect(status.stdout).toContain('smp1  smp://fp:secret@abc.onion');
    expect(status.stdout).not.toContain('permission denied');
    const addresses = await device('root', 'addresses');
    expect([addresses.exitCode, addresses.stdout]).toEqual([0, ADDRESS]);
  });

  it('without root: "permission denied, run it with sudo", never "first boot has not finished" or "is tor running?"', async () => {
    const status = await device('nobody', 'status');
    expect(status.exitCode, status.all).toBe(0);
    expect(status.stdout).toContain('First boot: unknown: permission denied (only root may read /var/lib/simplex-pi); run `sudo simplex-pi status`');
    expect(status.stdout).toContain('Storage: !!  cannot check the XFTP quota: permission denied; run `sudo simplex-pi status`');
    expect(status.stdout).toContain('Tor: unknown: permission denied (only root and the debian-tor group may ask Tor); run `sudo simplex-pi status`');
    expect(status.stdout).toMatch(/Addresses .*\n {2}Permission denied: .*run `sudo simplex-pi status`/);
    expect(status.stdout).not.toMatch(/NOT FINISHED|not finished|is tor running|secret/);
    const addresses = await device('nobody', 'addresses');
    expect(addresses.exitCode).toBe(1);
    expect(addresses.stderr).toContain('simplex-pi addresses: permission denied: the addresses hold the relays\' passwords, and only root may read them; run `sudo simplex-pi addresses`');
    expect(addresses.all).not.toMatch(/not finished|secret/);
  });
});
