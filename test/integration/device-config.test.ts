import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { fingerprintOf, serverAddress, validPassword } from '../../builder/device/address.ts';
import { applyIni, readIni } from '../../builder/device/ini.ts';
import { newOnionKey } from '../../builder/device/onion.ts';
import { type ServerSpec, ensureServer } from '../../builder/device/servers.ts';
import { resolvePlan } from '../../builder/plan/plan.ts';
import { parseRecipe } from '../../builder/recipe/load.ts';
import { standinScript } from '../fixtures/standin/build.ts';
import { freePort, scratch } from '../helpers/env.ts';

describe('INI settings and addresses, on what simplexmq init writes (the stand-in, same files and format)', () => {
  let dir: string;
  let smp: string;
  let env: Record<string, string>;
  const onion = newOnionKey().address;

  beforeAll(async () => {
    dir = await scratch('device');
    // The stand-in's script run by the host's Node, as its ELF runs it in the image (the ELF itself is linked
    // against arm64 libraries this host does not have).
    await writeFile(join(dir, 'standin.js'), await standinScript('smp', '6.5.2.0'));
    smp = join(dir, 'smp-server');
    await writeFile(smp, `#!/bin/sh\nexec node -e "$(cat '${join(dir, 'standin.js')}')" -- "$@"\n`, { mode: 0o755 });
    env = { SMP_SERVER_CFG_PATH: join(dir, 'cfg'), SMP_SERVER_LOG_PATH: join(dir, 'log') };
    await execa(smp, ['init', '-y', '--disable-web', '-n', onion], { env });
  });

  it('applies the plan\'s settings to init\'s INI: single port, SOCKS through Tor, always, onion hosts, expiry', async () => {
    const plan = resolvePlan(parseRecipe('name: t\nsmp: { message_expiry_days: 7 }\n', 'r'));
    const ini = await readFile(join(dir, 'cfg/smp-server.ini'), 'utf8');
    expect(readIni(ini, 'TRANSPORT', 'port')).toBe('5223,443');
    expect(readIni(ini, 'PROXY', 'socks_proxy')).toBeUndefined();
    const applied = applyIni(ini, plan.smp.instances[0]!.ini);
    expect(readIni(applied, 'TRANSPORT', 'port')).toBe('5301');
    expect(readIni(applied, 'TRANSPORT', 'websockets')).toBe('off');
    expect(readIni(applied, 'PROXY', 'socks_proxy')).toBe('127.0.0.1:9050');
    expect(readIni(applied, 'PROXY', 'socks_mode')).toBe('always');
    expect(readIni(applied, 'PROXY', 'host_mode')).toBe('onion');
    expect(readIni(applied, 'STORE_LOG', 'expire_messages_days')).toBe('7');
    // Comments that were not settings stay, the order of sections stays, and applying again changes nothing.
    expect(applied).toContain('# client_concurrency = 32');
    expect(applied.match(/^\[[A-Z_]+\]$/gm)).toEqual(ini.match(/^\[[A-Z_]+\]$/gm));
    expect(applyIni(applied, plan.smp.instances[0]!.ini)).toBe(applied);
    expect(applied.match(/^socks_proxy/gm)).toHaveLength(1);
  });

  it('the server accepts the result and listens on the planned port', async () => {
    const port = await freePort();
    const ini = await readFile(join(dir, 'cfg/smp-server.ini'), 'utf8');
    await writeFile(join(dir, 'cfg/smp-server.ini'), applyIni(ini, [{ section: 'TRANSPORT', key: 'port', value: String(port) }, { section: 'PROXY', key: 'socks_proxy', value: '127.0.0.1:9050' }]));
    const server = execa(smp, ['start'], { env, reject: false, all: true });
    let output = '';
    server.all!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    for (let i = 0; i < 100 && !output.includes(`port ${port}`); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    server.kill();
    await server;
    expect(output).toContain(`Serving SMP protocol on port ${port} (TLS)...`);
  });

  it('an INI simplexmq would refuse is refused by the stand-in too (localhost as SOCKS host)', async () => {
    const ini = await readFile(join(dir, 'cfg/smp-server.ini'), 'utf8');
    await writeFile(join(dir, 'cfg/smp-server.ini'), applyIni(ini, [{ section: 'PROXY', key: 'socks_proxy', value: 'localhost:9050' }]));
    const result = await execa(smp, ['start'], { env, reject: false, all: true, timeout: 10_000 });
    expect(result.exitCode).not.toBe(0);
    expect(String(result.all)).toContain('SOCKS5 host should be IPv4 or IPv6 address');
  });

  it('computes the fingerprint like the server and like openssl, and builds addresses the apps accept', async () => {
    const pem = await readFile(join(dir, 'cfg/ca.crt'), 'utf8');
    const fingerprint = fingerprintOf(pem);
    expect(`${fingerprint}\n`).toBe(await readFile(join(dir, 'cfg/fingerprint'), 'utf8'));
    const der = execFileSync('openssl', ['x509', '-in', join(dir, 'cfg/ca.crt'), '-outform', 'DER']);
    const viaOpenssl = execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: der }).toString('base64').replaceAll('+', '-').replaceAll('/', '_');
    expect(fingerprint).toBe(viaOpenssl);
    expect(fingerprint).toMatch(/^[A-Za-z0-9_-]{43}=$/);

    const password = readIni(await readFile(join(dir, 'cfg/smp-server.ini'), 'utf8'), 'AUTH', 'create_password')!;
    expect(validPassword(password)).toBe(true);
    const address = serverAddress({ scheme: 'smp', fingerprint, password, onion, port: 5223 });
    expect(address).toBe(`smp://${fingerprint}:${password}@${onion}:5223`);
    expect(address).toMatch(/^smp:\/\/[A-Za-z0-9_-]{43}=:[^\s@:/]+@[a-z2-7]{56}\.onion:5223$/);
    expect(serverAddress({ scheme: 'xftp', fingerprint, onion: onion.replace('.onion', ''), port: 443 })).toBe(`xftp://${fingerprint}@${onion}:443`);
  });

  it('an identity a power cut left with empty files is made again; a complete one (even without ca.key) is kept', async () => {
    const base = await scratch('identity');
    const spec: ServerSpec = {
      binary: smp,
      iniFile: 'smp-server.ini',
      cfgPath: join(base, 'cfg'),
      logPath: join(base, 'log'),
      env: { SMP_SERVER_CFG_PATH: join(base, 'cfg'), SMP_SERVER_LOG_PATH: join(base, 'log') },
      initArgs: ['init', '-y', '--disable-web'],
      ini: [],
    };
    const me = { uid: process.getuid!(), gid: process.getgid!() };
    const fingerprint = () => readFile(join(base, 'cfg/fingerprint'), 'utf8');
    expect(await ensureServer(spec, onion, me)).toEqual({ created: true });
    const first = await fingerprint();
    // An operator may keep ca.key offline: that identity is still complete.
    await writeFile(join(base, 'cfg/ca.key'), '');
    expect(await ensureServer(spec, onion, me)).toEqual({ created: false });
    expect(await fingerprint()).toBe(first);
    // What ext4 shows after a power cut hit files init wrote without fsync: they exist, but are empty.
    await writeFile(join(base, 'cfg/ca.crt'), '');
    expect(await ensureServer(spec, onion, me)).toEqual({ created: true });
    expect(await fingerprint()).not.toBe(first);
    expect(fingerprintOf(await readFile(join(base, 'cfg/ca.crt'), 'utf8'))).toBe((await fingerprint()).trim());
  });

  it('refuses parts that would make a broken address', () => {
    const fingerprint = `${'A'.repeat(43)}=`;
    expect(() => serverAddress({ scheme: 'smp', fingerprint, password: 'a:b', onion, port: 5223 })).toThrow(/forbids/);
    expect(() => serverAddress({ scheme: 'smp', fingerprint, password: 'has space', onion, port: 5223 })).toThrow(/forbids/);
    expect(() => serverAddress({ scheme: 'smp', fingerprint, onion: 'example.com', port: 5223 })).toThrow(/not a v3 onion address/);
    expect(() => serverAddress({ scheme: 'smp', fingerprint: 'abc', onion, port: 5223 })).toThrow(/not a simplexmq fingerprint/);
  });
});
