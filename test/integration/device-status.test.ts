import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { listeningPorts, parseBootstrap, torBootstrap } from '../../builder/device/status.ts';
import { scratch } from '../helpers/env.ts';

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
