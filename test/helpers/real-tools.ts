import { execFileSync } from 'node:child_process';
import { cp, mkdir, readFile, readdir, writeFile, chmod } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { createConnection } from 'node:net';
import { BINARY_DIR, DEVICE_COMMAND, DEVICE_LIB_DIR, RELAY_KINDS, TIMESYNC_USER, TOR_DIR, TOR_USER } from '../../builder/plan/layout.ts';
import { freePort, scratch } from './env.ts';
import { asImage, imagePasswd } from './netns.ts';

/**
 * The real tools, run on rendered files the way they run on the Pi, adapted only where a path must point into
 * the test's own directory. Tor never touches the network (DisableNetwork 1).
 */

/** The rendered Tor configuration, made runnable in a scratch directory (paths under TOR_DIR moved there). */
async function torSetup(rendered: string): Promise<{ dir: string; torrc: string }> {
  const dir = await scratch('tor');
  // Client-authorization files the render put under TOR_DIR come along, with the modes Tor demands.
  await cp(join(rendered, TOR_DIR), join(dir, 'hs'), { recursive: true }).catch(() => undefined);
  await mkdir(join(dir, 'data'), { mode: 0o700 });
  await chmod(join(dir, 'data'), 0o700);
  const conf = (await readFile(join(rendered, 'etc/tor/torrc.d/50-simplex-pi.conf'), 'utf8')).replaceAll(`${TOR_DIR}/`, `${dir}/hs/`);
  await writeFile(join(dir, 'simplex-pi.conf'), conf);
  // The image's own torrc, with its %include pointed at the copy.
  const torrc = (await readFile(join(rendered, 'etc/tor/torrc'), 'utf8')).replace('/etc/tor/torrc.d/*.conf', join(dir, '*.conf'));
  await writeFile(join(dir, 'torrc'), `DataDirectory ${dir}/data\nDisableNetwork 1\n${torrc}`);
  return { dir, torrc: join(dir, 'torrc') };
}

export async function torVerify(rendered: string): Promise<{ ok: boolean; output: string }> {
  const { torrc } = await torSetup(rendered);
  const result = await execa('tor', ['--verify-config', '--defaults-torrc', '/dev/null', '-f', torrc], { reject: false, all: true });
  return { ok: result.exitCode === 0 && /Configuration was valid/.test(String(result.all)), output: String(result.all) };
}

/**
 * Run Tor (DisableNetwork 1, SOCKS off) on the rendered configuration until every onion service has written its
 * hostname: what --verify-config does not check, such as client-authorization files, is read then.
 */
export async function torRun(rendered: string, services: string[]): Promise<{ hostnames: string[]; output: string }> {
  const { dir, torrc } = await torSetup(rendered);
  const tor = execa('tor', ['--defaults-torrc', '/dev/null', '-f', torrc, '--SocksPort', '0'], { reject: false, all: true });
  let hostnames: string[] = [];
  for (let i = 0; i < 300 && hostnames.length < services.length; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    hostnames = (await Promise.all(services.map((s) => readFile(join(dir, 'hs', s, 'hostname'), 'utf8').catch(() => '')))).filter(Boolean);
  }
  tor.kill('SIGTERM');
  return { hostnames, output: String((await tor).all) };
}

/**
 * Run Tor (DisableNetwork 1) on the configuration and onion files of `rendered` (a rendered tree, or an image's
 * root after first boot) and ask it over a control port which client authorization keys it loaded for onion
 * services it connects to (ONION_CLIENT_AUTH_VIEW): onion address (no .onion) -> base64 x25519 private key.
 */
export async function torOnionAuthView(rendered: string): Promise<{ keys: Map<string, string>; output: string }> {
  const { torrc } = await torSetup(rendered);
  const port = await freePort();
  const tor = execa('tor', ['--defaults-torrc', '/dev/null', '-f', torrc, '--SocksPort', '0', '--ControlPort', `127.0.0.1:${port}`], { reject: false, all: true });
  try {
    let reply = '';
    for (let i = 0; i < 300 && !reply.includes('250 OK\r\n250 closing'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      reply = await new Promise<string>((resolve) => {
        const socket = createConnection({ host: '127.0.0.1', port });
        let data = '';
        socket.on('connect', () => socket.write('AUTHENTICATE ""\r\nONION_CLIENT_AUTH_VIEW\r\nQUIT\r\n'));
        socket.on('data', (chunk) => (data += chunk.toString()));
        socket.on('close', () => resolve(data));
        socket.on('error', () => resolve(''));
      });
    }
    const keys = new Map([...reply.matchAll(/^250-CLIENT (\S+) x25519:(\S+)/gm)].map((m) => [m[1]!, m[2]!] as const));
    return { keys, output: reply };
  } finally {
    tor.kill('SIGTERM');
    await tor;
  }
}

/**
 * `nft -c` on the rendered ruleset, as the image's nft would load it: with the image's accounts (`users`, of those
 * the firewall may name; by default the ones every base a build accepts has) rather than this machine's.
 */
export async function nftCheck(rendered: string, users: readonly string[] = [TOR_USER, TIMESYNC_USER]): Promise<{ ok: boolean; output: string }> {
  const passwd = await imagePasswd(users);
  const [command, ...args] = asImage(passwd.path, ['nft', '-c', '-f', join(rendered, 'etc/nftables.conf')]);
  const result = await execa(command!, args, { reject: false, all: true });
  return { ok: result.exitCode === 0, output: String(result.all) };
}

/**
 * `sshd -t` and `sshd -T` (the effective settings) with the rendered drop-ins, `otherDropIns` beside them (as other
 * packages write theirs into the image's sshd_config.d), and a throwaway host key. Like Debian's sshd_config, the
 * drop-ins are included before anything else.
 */
export async function sshdCheck(
  rendered: string,
  otherDropIns: Record<string, string> = {},
): Promise<{ ok: boolean; output: string; effective: Map<string, string[]> }> {
  const dir = await scratch('sshd');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
  await mkdir('/run/sshd', { recursive: true }).catch(() => undefined);
  const dropIns = join(dir, 'sshd_config.d');
  await cp(join(rendered, 'etc/ssh/sshd_config.d'), dropIns, { recursive: true });
  for (const [name, text] of Object.entries(otherDropIns)) await writeFile(join(dropIns, name), text);
  await writeFile(join(dir, 'sshd_config'), `Include ${dropIns}/*.conf\nHostKey ${join(dir, 'host_key')}\nUsePAM yes\n`);
  const test = await execa('/usr/sbin/sshd', ['-t', '-f', join(dir, 'sshd_config')], { reject: false, all: true });
  const dump = await execa('/usr/sbin/sshd', ['-T', '-f', join(dir, 'sshd_config')], { reject: false });
  const effective = new Map<string, string[]>();
  for (const line of String(dump.stdout).split('\n')) {
    const [key, ...value] = line.split(' ');
    if (key) effective.set(key, [...(effective.get(key) ?? []), value.join(' ')]);
  }
  return { ok: test.exitCode === 0, output: String(test.all), effective };
}

/**
 * A root for systemd-analyze: this host's systemd units plus the rendered /etc, with stand-in executables where
 * the units expect the relay binaries and the device program.
 */
export async function systemdRoot(rendered: string): Promise<string> {
  const root = await scratch('systemd');
  await mkdir(join(root, 'usr/lib'), { recursive: true });
  await cp('/usr/lib/systemd', join(root, 'usr/lib/systemd'), { recursive: true });
  await cp(join(rendered, 'etc'), join(root, 'etc'), { recursive: true });
  // What the units run from the image itself (the relay's ExecStartPre=), as rendered.
  await cp(join(rendered, DEVICE_LIB_DIR), join(root, DEVICE_LIB_DIR), { recursive: true }).catch(() => undefined);
  await mkdir(join(root, BINARY_DIR), { recursive: true });
  for (const { binary } of Object.values(RELAY_KINDS)) await writeFile(join(root, BINARY_DIR, binary), '#!/bin/sh\n', { mode: 0o755 });
  // The device program, which the install-device stage puts there (first boot and the USB export run it).
  await writeFile(join(root, DEVICE_COMMAND), '#!/bin/sh\n', { mode: 0o755 });
  return root;
}

export async function systemdVerify(root: string, units: string[]): Promise<string> {
  const result = await execa('systemd-analyze', ['verify', `--root=${root}`, ...units], { reject: false, all: true });
  return `${String(result.all)}${result.exitCode ? `\n(exit ${result.exitCode})` : ''}`.trim();
}

/**
 * Stand-ins for the programs the base's own units run (Debian's tor and ssh units, from this machine), which
 * systemd-analyze verify insists exist under the root: what is checked is our drop-ins, not those packages. Ours
 * (the relays, DEVICE_LIB_DIR) are never stood in for: a missing one stays an error.
 */
export async function standInBasePrograms(root: string, units: string[]): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const missing = [...(await systemdVerify(root, units)).matchAll(/Command (\/\S+) is not executable/g)]
      .map((m) => m[1]!)
      .filter((path) => !path.startsWith(`${DEVICE_LIB_DIR}/`) && !path.startsWith(`${BINARY_DIR}/`));
    if (!missing.length) return;
    for (const path of missing) {
      await mkdir(join(root, dirname(path)), { recursive: true });
      await writeFile(join(root, path), '#!/bin/sh\n', { mode: 0o755 });
    }
  }
}

export async function systemdExposure(root: string, unit: string): Promise<number> {
  const result = await execa('systemd-analyze', ['security', '--offline=true', `--root=${root}`, '--no-pager', unit], { reject: false, all: true });
  const match = /Overall exposure level for .*: ([\d.]+)/.exec(String(result.all));
  if (!match) throw new Error(`systemd-analyze security printed no exposure for ${unit}:\n${result.all}`);
  return Number(match[1]);
}

export async function filesUnder(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}
