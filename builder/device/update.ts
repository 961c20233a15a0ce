import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { RELAY_KINDS, STATE, UNITS, unitName } from '../plan/layout.ts';
import type { BuildPlan, RelayServer } from '../plan/plan.ts';
import { relaysOf } from '../plan/relays.ts';
import { parsePublicKey } from '../signing/minisign.ts';
import { type OpenedBundle, openUpdateBundle } from '../update/open-bundle.ts';
import { compareVersions, missingLibraries, parseReportedVersion, versionMatches } from '../update/simplexmq-version.ts';
import { iniTemplate } from './adopt-restored.ts';
import { fetchThroughTor } from './fetch-through-tor.ts';
import { type Owner, atomicWrite, syncDir } from './files.ts';
import { ownerOf } from './ids.ts';
import { migrateIni } from './ini-migrate.ts';
import { appendJsonLine } from './json-lines.ts';
import { binaryIsLinked, currentRelease, pruneReleases, releaseDir, switchRelease } from './relay-releases.ts';
import { runAs } from './servers.ts';
import { runTool } from './tool.ts';
import { torBootstrapPhase } from './tor-control.ts';
import { takeUpdateLock } from './update-lock.ts';
import { type Watched, localProbe, onionProbe, readServerRecords, unitNow, watchedServices } from './watchdog.ts';

/**
 * `simplex-pi update --from FILE|URL`: a new simplexmq release onto a running Pi, without reflashing, and never a
 * half-updated one. In order, and nothing on the card changes until step 4:
 *  1. the bundle (and its `.minisig`), from a file or fetched through Tor; its minisign signature checked with the
 *     image's update key (recipe update.public_key) before a byte of it is read, then its manifest, sizes, sha256s
 *     and ELF machine (update/open-bundle.ts);
 *  2. every relay healthy now, by the watchdog's own check (its port, and its onion through Tor when Tor is up):
 *     an update is judged by the relays' health after it, which says nothing if one was already failing;
 *  3. the release written beside the running one (device/relay-releases.ts), then each binary run: `-v` must report
 *     the bundle's version, and `ldd` must find every library;
 *  4. each relay's INI carried into the new release's format (device/ini-migrate.ts), the current-release link
 *     switched in one rename, then the relays restarted one at a time, each checked healthy before the next;
 *  5. if one is not: the link switched back, the INIs put back, and every relay restarted so far restarted again on
 *     the old release and checked. Said loudly, recorded in STATE.updateLog, and `status` shows it.
 */

export interface UpdateOptions {
  /** A bundle file (its signature beside it, `<file>.minisig`) or an http(s) URL (its signature at `<url>.minisig`). */
  from: string;
  /** Apply only a newer release; anything else is "nothing to do" (the scheduled check). */
  ifNewer: boolean;
  /** Accept an older release than the relays run (an old signed bundle is otherwise refused: it may be replayed). */
  downgrade: boolean;
}

export type Log = (line: string) => void;

export class UpdateRefused extends Error {}

/** A bundle is two binaries; anything this large is not one. */
const MAX_BUNDLE_BYTES = 512 * 1024 * 1024;
const FETCH_TIMEOUT_MS = 30 * 60_000;
/** How long a restarted relay has to answer (its port, then its onion): a Pi answers in seconds. */
const HEALTHY_WITHIN_MS = 5 * 60_000;
/** A stopping SMP relay saves its messages first: its unit allows minutes for that. */
const RESTART_TIMEOUT_MS = 17 * 60_000;

export interface UpdateRecord {
  at: string;
  from: string;
  to: string;
  source: string;
  outcome: 'updated' | 'rolled-back' | 'rollback-failed';
  error?: string;
  ini?: string[];
}

/** What to do with a bundle of `offered` on relays running `running`. */
export function decide(running: string, offered: string, options: Pick<UpdateOptions, 'ifNewer' | 'downgrade'>): { install: true } | { install: false; why: string; refused: boolean } {
  const order = compareVersions(offered, running);
  if (order === 0) return { install: false, why: `the relays already run simplexmq ${running}: nothing to do`, refused: false };
  if (order > 0) return { install: true };
  if (options.ifNewer) return { install: false, why: `the bundle holds simplexmq ${offered}, older than the ${running} the relays run: nothing to do`, refused: false };
  if (options.downgrade) return { install: true };
  return {
    install: false,
    refused: true,
    why:
      `the bundle holds simplexmq ${offered}, older than the ${running} the relays run: refused, because an old signed bundle can be ` +
      'replayed to bring back a fixed flaw. If you mean to go back, run it again with --downgrade. Nothing was changed',
  };
}

function isUrl(from: string): boolean {
  return /^https?:\/\//.test(from);
}

/** The bundle and its signature, from a file or through Tor. */
async function readBundle(from: string, plan: BuildPlan, log: Log): Promise<{ bytes: Buffer; signature: Buffer }> {
  if (isUrl(from)) {
    log(`update: fetching ${from} and its signature through Tor`);
    const options = { socks: { host: '127.0.0.1', port: plan.tor.socksPort }, maxBytes: MAX_BUNDLE_BYTES, timeoutMs: FETCH_TIMEOUT_MS };
    const bytes = await fetchThroughTor(from, options);
    const signature = await fetchThroughTor(`${from}.minisig`, { ...options, maxBytes: 64 * 1024 });
    return { bytes, signature };
  }
  const read = (path: string, what: string) =>
    readFile(path).catch((error: NodeJS.ErrnoException) => {
      throw new UpdateRefused(`update: cannot read ${what} ${path}: ${error.code === 'ENOENT' ? 'no such file' : error.message}${what === 'its signature' ? ' (the .minisig is published next to each bundle: copy both)' : ''}; nothing was changed`);
    });
  return { bytes: await read(from, 'the bundle'), signature: await read(`${from}.minisig`, 'its signature') };
}

/** The relays to update and watch: the relay services of the watchdog (not SSH), each with its plan entry. */
function relayServices(plan: BuildPlan, watched: readonly Watched[]): Array<{ relay: RelayServer; service: Watched }> {
  return relaysOf(plan).map((relay) => {
    const service = watched.find((w) => w.name === relay.name);
    if (!service) throw new UpdateRefused(`update: first boot recorded no address for ${relay.name}; nothing was changed`);
    return { relay, service };
  });
}

/**
 * The watchdog's check, waited for: healthy once the relay answers on its port with its identity and, with Tor
 * connected, through Tor at its onion. A relay whose process exits (systemd restarting it, or given up) fails at once.
 */
export async function waitHealthy(service: Watched, torConnected: boolean, socksPort: number, withinMs = HEALTHY_WITHIN_MS): Promise<{ ok: true; detail: string } | { ok: false; error: string }> {
  const deadline = Date.now() + withinMs;
  let last = 'not checked yet';
  while (Date.now() < deadline) {
    const unit = await unitNow(service.unit).catch(() => undefined);
    if (unit?.active === 'failed') return { ok: false, error: `${unitName(service.unit)} failed (${unit.result})` };
    if (unit?.sub === 'auto-restart') return { ok: false, error: `${unitName(service.unit)} exited, and systemd is restarting it` };
    if (unit?.active === 'active') {
      const local = await localProbe(service);
      if (local.ok && !torConnected) return { ok: true, detail: `answers on its port ${service.localPort}: ${local.detail} (Tor is not connected: its onion was not checked)` };
      if (local.ok) {
        const onion = await onionProbe(service, socksPort);
        if (onion.ok) return { ok: true, detail: `reached through Tor: ${onion.detail}` };
        last = `answers on its port, but not through Tor: ${onion.error}`;
      } else {
        last = `does not answer on its port ${service.localPort}: ${local.error}`;
      }
    } else {
      last = `${unitName(service.unit)} is ${unit?.active ?? 'unknown'} (${unit?.sub ?? 'unknown'})`;
    }
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
  return { ok: false, error: `not healthy within ${Math.round(withinMs / 1000)} s: ${last}` };
}

/** The new release beside the running one: written under a temporary name, flushed, then renamed into place. */
async function stageRelease(bundle: OpenedBundle): Promise<string> {
  const dir = releaseDir(bundle.manifest.simplexmq);
  const partial = `${dir}.partial`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true, mode: 0o755 });
  for (const [name, content] of bundle.binaries) {
    const handle = await open(join(partial, name), 'wx', 0o755);
    try {
      await handle.writeFile(content);
      await handle.chmod(0o755);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
  await syncDir(partial);
  await rm(dir, { recursive: true, force: true });
  await rename(partial, dir);
  await syncDir(join(dir, '..'));
  return dir;
}

/** Each new binary run on this Pi, as the relay user: the version it reports, and every library found. */
async function checkStaged(dir: string, bundle: OpenedBundle, owner: Owner): Promise<void> {
  for (const name of bundle.binaries.keys()) {
    const path = join(dir, name);
    const output = await runAs(owner, path, ['-v'], {}, 2 * 60_000).catch((error: Error) => {
      throw new UpdateRefused(`update: ${name} of simplexmq ${bundle.manifest.simplexmq} does not run on this Pi (${error.message}); nothing was changed`);
    });
    const reported = parseReportedVersion(output);
    if (!reported || !versionMatches(reported, bundle.manifest.simplexmq)) {
      throw new UpdateRefused(`update: ${name} reports ${reported ? `version ${reported}` : 'no version'}, but the bundle says simplexmq ${bundle.manifest.simplexmq}; nothing was changed`);
    }
    const ldd = await runTool('ldd', [path], { timeoutMs: 60_000 }).catch((error: Error & { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
    const missing = missingLibraries(ldd.stdout);
    if (missing.length) throw new UpdateRefused(`update: ${name} of simplexmq ${bundle.manifest.simplexmq} needs libraries this Pi does not have: ${missing.join(', ')}; nothing was changed`);
  }
}

interface IniChange {
  relay: RelayServer;
  path: string;
  old: string;
  text: string;
  said: string[];
}

/** Each relay's INI in the new release's format (nothing written yet): what its `init` writes, with every old setting kept. */
async function migratedInis(relays: ReadonlyArray<{ relay: RelayServer; service: Watched }>, dir: string, owner: Owner): Promise<IniChange[]> {
  const changes: IniChange[] = [];
  for (const { relay, service } of relays) {
    const path = join(relay.cfgPath, relay.iniFile);
    const old = await readFile(path, 'utf8');
    const binary = join(dir, RELAY_KINDS[relay.kind].binary);
    const migrated = migrateIni(old, await iniTemplate(relay, service.onion, owner, binary));
    if (migrated.text === old) continue;
    changes.push({ relay, path, old, text: migrated.text, said: [...migrated.added.map((a) => `${relay.name}: added ${a}`), ...migrated.dropped.map((d) => `${relay.name}: dropped ${d}`)] });
  }
  return changes;
}

async function restart(unit: string): Promise<void> {
  await runTool('systemctl', ['reset-failed', unit], { timeoutMs: 30_000 }).catch(() => undefined);
  await runTool('systemctl', ['restart', unit], { timeoutMs: RESTART_TIMEOUT_MS });
}

/** Update the relays from a bundle; returns what the log records (or undefined when there was nothing to do). */
export async function update(plan: BuildPlan, options: UpdateOptions, log: Log): Promise<UpdateRecord | undefined> {
  if (!plan.update.publicKey) {
    throw new UpdateRefused(
      'update: this image carries no update key: it was built with update.public_key: project before the project published its key. ' +
        'Rebuild with the project\'s key (README: verify a download) or your own in update.public_key, and reflash; nothing was changed',
    );
  }
  const key = parsePublicKey(plan.update.publicKey, 'the image\'s update key (recipe update.public_key)');
  for (const relay of relaysOf(plan)) {
    if (!(await binaryIsLinked(RELAY_KINDS[relay.kind].binary))) throw new UpdateRefused(`update: ${relay.binary} is not the link to the current release this simplex-pi installs: the card was changed by hand or built by an older simplex-pi; nothing was changed`);
  }
  const running = (await currentRelease()) ?? plan.simplexmq.version;

  const { bytes, signature } = await readBundle(options.from, plan, log);
  const bundle = await openUpdateBundle(bytes, signature, key, options.from);
  log(`update: ${options.from}: signature good (${bundle.trustedComment}); simplexmq ${bundle.manifest.simplexmq}, every binary's sha256 and machine checked`);
  const decision = decide(running, bundle.manifest.simplexmq, options);
  if (!decision.install) {
    if (decision.refused) throw new UpdateRefused(`update: ${decision.why}`);
    log(`update: ${decision.why}`);
    return undefined;
  }

  const release = await takeUpdateLock();
  try {
    const records = await readServerRecords();
    if (!records) throw new UpdateRefused('update: first boot has not finished (no addresses yet): there are no relays to update; nothing was changed');
    const relays = relayServices(plan, watchedServices(plan, records));
    const torConnected = (await torBootstrapPhase().catch(() => ({ progress: -1 }))).progress === 100;
    log(`update: checking every relay before anything changes${torConnected ? ' (on its port and through Tor)' : ' (on its port: Tor is not connected)'}`);
    for (const { service } of relays) {
      const health = await waitHealthy(service, torConnected, plan.tor.socksPort, 60_000);
      if (!health.ok) {
        throw new UpdateRefused(
          `update: ${service.name} is not healthy now (${health.error}). An update is judged by every relay being healthy after it, which proves nothing ` +
            `while one already fails: fix ${service.name} first (\`simplex-pi status\`); nothing was changed`,
        );
      }
    }
    const owner = ownerOf(plan.relayUser);
    const dir = await stageRelease(bundle);
    try {
      await checkStaged(dir, bundle, owner);
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
    const inis = await migratedInis(relays, dir, owner).catch(async (error: Error) => {
      await rm(dir, { recursive: true, force: true });
      throw new UpdateRefused(`update: the INI of simplexmq ${bundle.manifest.simplexmq} could not be made (${error.message}); nothing was changed`);
    });
    const iniSaid = inis.flatMap((c) => c.said);
    return await applyRelease(plan, { running, bundle, relays, inis, torConnected, source: options.from, iniSaid }, log);
  } finally {
    await release();
  }
}

interface Apply {
  running: string;
  bundle: OpenedBundle;
  relays: ReadonlyArray<{ relay: RelayServer; service: Watched }>;
  inis: readonly IniChange[];
  torConnected: boolean;
  source: string;
  iniSaid: string[];
}

async function applyRelease(plan: BuildPlan, job: Apply, log: Log): Promise<UpdateRecord> {
  const { running, bundle, relays, inis, torConnected } = job;
  const to = bundle.manifest.simplexmq;
  const owner = ownerOf(plan.relayUser);
  const record = (outcome: UpdateRecord['outcome'], error?: string): UpdateRecord => ({
    at: new Date().toISOString(),
    from: running,
    to,
    source: job.source,
    outcome,
    ...(error ? { error } : {}),
    ...(job.iniSaid.length ? { ini: job.iniSaid } : {}),
  });

  log(`update: switching the relays from simplexmq ${running} to ${to}${job.iniSaid.length ? `; INI: ${job.iniSaid.join('; ')}` : ''}`);
  await switchRelease(to);
  for (const change of inis) await atomicWrite(change.path, change.text, 0o600, owner);

  const restarted: Array<{ relay: RelayServer; service: Watched }> = [];
  let failure: string | undefined;
  for (const entry of relays) {
    restarted.push(entry);
    log(`update: restarting ${entry.relay.name} on simplexmq ${to}`);
    const health = await restart(entry.service.unit).then(
      () => waitHealthy(entry.service, torConnected, plan.tor.socksPort),
      (error: Error) => ({ ok: false as const, error: error.message }),
    );
    if (!health.ok) {
      failure = `${entry.relay.name} is not healthy on simplexmq ${to}: ${health.error}`;
      break;
    }
    log(`update: ${entry.relay.name} healthy on ${to}: ${health.detail}`);
  }

  if (!failure) {
    const removed = await pruneReleases([to, running]);
    const done = record('updated');
    await appendJsonLine(STATE.updateLog, done);
    log(`update: every relay runs simplexmq ${to}, with the same addresses. ${running} stays on the card${removed.length ? ` (removed: ${removed.join(', ')})` : ''}`);
    return done;
  }

  log(`update: ${failure}: ROLLING BACK to simplexmq ${running}`);
  await switchRelease(running);
  for (const change of inis) await atomicWrite(change.path, change.old, 0o600, owner);
  const still: string[] = [];
  for (const entry of restarted) {
    const health = await restart(entry.service.unit).then(
      () => waitHealthy(entry.service, torConnected, plan.tor.socksPort),
      (error: Error) => ({ ok: false as const, error: error.message }),
    );
    if (health.ok) log(`update: ${entry.relay.name} healthy on ${running} again`);
    else still.push(`${entry.relay.name}: ${health.error}`);
  }
  await rm(releaseDir(to), { recursive: true, force: true });
  const outcome = still.length ? record('rollback-failed', `${failure}; after the rollback: ${still.join('; ')}`) : record('rolled-back', failure);
  await appendJsonLine(STATE.updateLog, outcome);
  throw new UpdateRefused(
    still.length
      ? `update: ${failure}. Rolled back to simplexmq ${running}, but not every relay is healthy again: ${still.join('; ')}. See \`simplex-pi status\` and \`journalctl -u ${unitName(UNITS.watchdog)}\``
      : `update: ${failure}. Rolled back: every relay runs simplexmq ${running} again, healthy, with its old INI`,
  );
}
