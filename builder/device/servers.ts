import { spawn } from 'node:child_process';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BINARY_DIR } from '../plan/layout.ts';
import type { RelayServer } from '../plan/plan.ts';
import { fingerprintOf, newServerPassword } from './address.ts';
import { type Owner, atomicWrite, syncTree } from './files.ts';
import { applyIni, readIni } from './ini.ts';
import { redactPasswords } from './redact.ts';

/** What making a relay's identity needs of its plan entry. */
export type ServerSpec = Pick<RelayServer, 'binary' | 'iniFile' | 'cfgPath' | 'logPath' | 'env' | 'initArgs' | 'ini'>;

async function nonEmpty(path: string): Promise<boolean> {
  return stat(path).then(
    (info) => info.isFile() && info.size > 0,
    () => false,
  );
}

/**
 * Complete means the relay can start with it: an INI, a CA certificate that parses and the fingerprint file that
 * belongs to it, the TLS key and certificate. Files that exist but are empty (written by init, lost to a power
 * cut before they reached the card) do not count. ca.key is not required: an operator may have moved it offline.
 */
async function identityComplete(spec: ServerSpec): Promise<boolean> {
  const file = (name: string) => join(spec.cfgPath, name);
  for (const name of [spec.iniFile, 'ca.crt', 'fingerprint', 'server.key', 'server.crt']) if (!(await nonEmpty(file(name)))) return false;
  try {
    return fingerprintOf(await readFile(file('ca.crt'), 'utf8')) === (await readFile(file('fingerprint'), 'utf8')).trim();
  } catch {
    return false;
  }
}

/**
 * How long one relay's `init` may take: seconds on a Pi (GHC's start and a few openssl commands), minutes under
 * emulation. Past this it is stopped: first boot fails with a message naming it, and continues at the next boot.
 * The first-boot unit's TimeoutStartSec= bounds the whole run.
 */
export const INIT_TIMEOUT_MS = 5 * 60 * 1000;

/**
 * Run a program as the relay user and return its output; fail with that output if it fails, or if it has not
 * finished within `timeoutMs`: then it and whatever it started (openssl) are killed. It runs in a process group of
 * its own so that the kill reaches them all (the first-boot unit keeps CAP_KILL for it: they are the relay
 * user's processes, not root's). The error leaves out the password `init` prints in the server's address: it ends
 * up in the first-boot unit's journal.
 */
export function runAs(owner: Owner, file: string, args: string[], env: Record<string, string>, timeoutMs = INIT_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    const command = `${file} ${args.join(' ')}`;
    const child = spawn(file, args, {
      uid: owner.uid,
      gid: owner.gid,
      env: { PATH: `${BINARY_DIR}:/usr/bin:/bin`, HOME: '/nonexistent', LANG: 'C.UTF-8', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    let settled = false;
    const settle = (error: Error | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(output);
    };
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone; or not allowed, and then systemd kills what is left when first boot ends.
      }
      const seconds = Math.round(timeoutMs / 1000);
      settle(new Error(`${command} did not finish within ${seconds} s and was stopped. Output so far:\n${output.trim() || '(none)'}`));
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', (error) => settle(error));
    child.on('close', (code, signal) => settle(code === 0 ? undefined : new Error(`${command} ${code === null ? `was killed by ${signal}` : `exited with ${code}`}:\n${redactPasswords(output.trim())}`)));
  });
}

/**
 * A relay's identity: `init` once (as the relay user, with its own configuration and state directories), then
 * the plan's INI settings, applied on every run (idempotent, atomic). A complete identity (see identityComplete)
 * is never made again. A half-finished `init` (power cut) is started over: init empties the directories itself,
 * and refuses only if the INI exists. What init wrote is flushed to the card before the identity counts as made:
 * no address is ever built from an identity a power cut could still take back.
 */
export async function ensureServer(spec: ServerSpec, onion: string, relay: Owner): Promise<{ created: boolean }> {
  const ini = join(spec.cfgPath, spec.iniFile);
  const complete = await identityComplete(spec);
  if (!complete) {
    await rm(ini, { force: true });
    await runAs(relay, spec.binary, [...spec.initArgs, '-n', onion], spec.env);
    await syncTree(spec.cfgPath);
    // The log directory holds no identity; init may not have made it.
    await syncTree(spec.logPath).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }
  const text = await readFile(ini, 'utf8');
  const updated = applyIni(text, spec.ini);
  if (updated !== text) await atomicWrite(ini, updated, 0o600, relay);
  return { created: !complete };
}

/**
 * The relay's upload or queue-creation password ([AUTH] create_password): kept if the INI has one, else a new
 * one written atomically before any address is built from it, so a resumed first boot keeps the first one.
 * For the XFTP relay, whose init has no password option; smp-server init makes its own.
 */
export async function ensurePassword(spec: Pick<ServerSpec, 'cfgPath' | 'iniFile'>, relay: Owner): Promise<{ created: boolean }> {
  const ini = join(spec.cfgPath, spec.iniFile);
  const text = await readFile(ini, 'utf8');
  if (readIni(text, 'AUTH', 'create_password')) return { created: false };
  await atomicWrite(ini, applyIni(text, [{ section: 'AUTH', key: 'create_password', value: newServerPassword() }]), 0o600, relay);
  return { created: true };
}
