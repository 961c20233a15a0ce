import { spawn } from 'node:child_process';
import { access, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { IniSetting } from '../plan/plan.ts';
import { type Owner, atomicWrite } from './files.ts';
import { applyIni } from './ini.ts';

export interface ServerSpec {
  binary: string;
  ini: string;
  cfgPath: string;
  logPath: string;
  env: Record<string, string>;
  initArgs: string[];
  settings: IniSetting[];
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Run a program as the relay user and return its output; fail with that output if it fails. */
function runAs(owner: Owner, file: string, args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      uid: owner.uid,
      gid: owner.gid,
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/nonexistent', LANG: 'C.UTF-8', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(output) : reject(new Error(`${file} ${args.join(' ')} exited with ${code}:\n${output.trim()}`))));
  });
}

/**
 * A relay's identity: `init` once (as the relay user, with its own configuration and state directories), then
 * the plan's INI settings, applied on every run (idempotent, atomic). An identity is complete when the INI, the
 * CA certificate and the fingerprint exist; it is never made again. A half-finished `init` (power cut) is
 * started over: init empties the directories itself, and refuses only if the INI exists.
 */
export async function ensureServer(spec: ServerSpec, onion: string, relay: Owner): Promise<{ created: boolean }> {
  const ini = join(spec.cfgPath, spec.ini);
  const complete = (await exists(ini)) && (await exists(join(spec.cfgPath, 'ca.crt'))) && (await exists(join(spec.cfgPath, 'fingerprint')));
  if (!complete) {
    await rm(ini, { force: true });
    await runAs(relay, spec.binary, [...spec.initArgs, '-n', onion], spec.env);
  }
  const text = await readFile(ini, 'utf8');
  const updated = applyIni(text, spec.settings);
  if (updated !== text) await atomicWrite(ini, updated, 0o600, relay);
  return { created: !complete };
}
