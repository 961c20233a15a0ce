import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { RELAY_KINDS, STATE } from '../plan/layout.ts';
import type { BuildPlan, RelayServer } from '../plan/plan.ts';
import { type Owner, atomicWrite, ensureDir } from './files.ts';
import { migrateIni } from './ini-migrate.ts';
import type { RestoredRecord } from './restored.ts';
import { runAs } from './servers.ts';

export type Log = (line: string) => void;

/**
 * What a release's `init` (`binary`: the relay's own, or an update's) writes for the relay, made in a scratch
 * directory inside the relay's state directory (the relay user's, so init runs as that user like the real one) and
 * removed again: its keys are thrown away, only the INI's format is wanted.
 */
export async function iniTemplate(relay: RelayServer, onion: string, owner: Owner, binary = relay.binary): Promise<string> {
  const scratch = join(relay.logPath, '.ini-template');
  const kind = RELAY_KINDS[relay.kind];
  await rm(scratch, { recursive: true, force: true });
  await ensureDir(scratch, 0o700, owner);
  try {
    const env = { ...relay.env, [kind.cfgEnv]: join(scratch, 'config'), [kind.logEnv]: join(scratch, 'state') };
    await runAs(owner, binary, [...relay.initArgs, '-n', onion], env);
    const template = await readFile(join(scratch, 'config', relay.iniFile), 'utf8');
    // init wrote its directories into the file (the web page's paths): this relay's own, not the scratch ones.
    return template.replaceAll(join(scratch, 'config'), relay.cfgPath).replaceAll(join(scratch, 'state'), relay.logPath);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * A restored relay's INI, written by the simplexmq release of the backup, carried into this image's release's
 * format (ini-migrate.ts). Only when the releases differ; first boot applies the recipe's settings afterwards.
 */
export async function migrateRestoredIni(relay: RelayServer, onion: string, owner: Owner, restored: RestoredRecord, plan: BuildPlan, log: Log): Promise<void> {
  if (restored.adoptedFor === plan.simplexmq.version || restored.simplexmq === plan.simplexmq.version) return;
  const path = join(relay.cfgPath, relay.iniFile);
  const old = await readFile(path, 'utf8');
  const migrated = migrateIni(old, await iniTemplate(relay, onion, owner));
  if (migrated.text !== old) await atomicWrite(path, migrated.text, 0o600, owner);
  const changes = [...migrated.added.map((a) => `added ${a}`), ...migrated.dropped.map((d) => `dropped ${d} (unknown to ${plan.simplexmq.version})`)];
  log(`${relay.name}: INI migrated from simplexmq ${restored.simplexmq} to ${plan.simplexmq.version}${changes.length ? `: ${changes.join('; ')}` : ' (no setting changed)'}`);
}

/** Said at the first boot of a restored card, in the journal and on the console: the classic mistake is two cards. */
export function restoredWarning(restored: RestoredRecord): string {
  return (
    `WARNING: this card was restored from backup ${restored.id} (made on ${restored.host} at ${restored.createdAt}): it now serves that Pi's onion addresses. ` +
    'The card the backup came from, and any other card restored from it, must never run again: two Pis publishing the same onion services ' +
    'fight over them, and messages and connections get lost.'
  );
}

/** The restored identities are adopted: later boots neither migrate again nor warn again (status still tells). */
export async function markAdopted(restored: RestoredRecord, plan: BuildPlan): Promise<void> {
  await atomicWrite(STATE.restored, `${JSON.stringify({ ...restored, adoptedFor: plan.simplexmq.version }, null, 2)}\n`, 0o600);
}
