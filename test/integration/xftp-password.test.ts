import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { fingerprintOf, serverAddress } from '../../builder/device/address.ts';
import { readIni } from '../../builder/device/ini.ts';
import { ensurePassword } from '../../builder/device/servers.ts';
import { scratch } from '../helpers/env.ts';
import { StandinRelay, freePort, relaySession } from '../helpers/standin-relay.ts';

/**
 * The XFTP relay's upload password: first boot adds [AUTH] create_password to what `xftp-server init` wrote
 * (init has no option for it), and the xftp:// address carries it. The stand-in checks an upload (FNEW) against
 * it as the real server does, so this shows the password lands where the server reads it.
 */
const ONION = 'a'.repeat(56);

describe('XFTP upload password', () => {
  let dir: string;
  let relay: StandinRelay;
  let port: number;
  const owner = { uid: process.getuid!(), gid: process.getgid!() };

  const upload = async (password: string | undefined) => {
    const { socket, ask } = await relaySession(port, 'xftp/1');
    const answer = await ask(`FNEW ${password ?? '-'}`);
    socket.destroy();
    return answer.split(' ')[0];
  };
  const withRelay = async <T>(body: () => Promise<T>): Promise<T> => {
    const running = await relay.start();
    try {
      return await body();
    } finally {
      running.process.kill('SIGINT');
      await running.process;
    }
  };

  beforeAll(async () => {
    dir = await scratch('xftp-password');
    relay = await StandinRelay.create(dir, 'xftp');
    port = await freePort();
    await mkdir(join(dir, 'files'));
    const init = await relay.run('init', '-p', join(dir, 'files'), '-q', '1gb', '-n', `${ONION}.onion`);
    expect(init.exitCode, init.all).toBe(0);
    await writeFile(relay.iniPath, (await readFile(relay.iniPath, 'utf8')).replace(/^port = .*$/m, `port = ${port}`));
  });

  it('as init leaves it, anyone may upload (the control)', async () => {
    expect(await withRelay(() => upload(undefined))).toBe('OK');
  });

  it('with the password first boot sets, an upload without it or with another is refused, and one with the address\'s password works', async () => {
    expect(await ensurePassword({ cfgPath: relay.cfgPath, iniFile: 'file-server.ini' }, owner)).toEqual({ created: true });
    const password = readIni(await readFile(relay.iniPath, 'utf8'), 'AUTH', 'create_password');
    expect(password).toMatch(/^[A-Za-z0-9_-]{43}=$/);
    const fingerprint = fingerprintOf(await readFile(join(relay.cfgPath, 'ca.crt'), 'utf8'));
    const address = serverAddress({ scheme: 'xftp', fingerprint, password, onion: ONION, port: 443 });
    const fromAddress = /^xftp:\/\/[^:]+:([^@]+)@/.exec(address)?.[1];
    expect(fromAddress).toBe(password);

    const answers = await withRelay(async () => [await upload(undefined), await upload('not-the-password'), await upload(fromAddress)]);
    expect(answers).toEqual(['ERR', 'ERR', 'OK']);
  });

  it('a second first-boot run keeps the password it made', async () => {
    const before = await readFile(relay.iniPath, 'utf8');
    expect(await ensurePassword({ cfgPath: relay.cfgPath, iniFile: 'file-server.ini' }, owner)).toEqual({ created: false });
    expect(await readFile(relay.iniPath, 'utf8')).toBe(before);
  });
});
