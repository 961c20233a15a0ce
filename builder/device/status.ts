import { readFile } from 'node:fs/promises';
import { STATE, STATE_DIR, TOR_CONTROL_COOKIE, TOR_CONTROL_SOCKET, TOR_USER, UNITS, unitName } from '../plan/layout.ts';
import type { BuildPlan } from '../plan/plan.ts';
import { COMMAND_NAME } from './commands.ts';
import { describeExport, exportArmed, lastExport } from './export-log.ts';
import { lastBackup } from './backup.ts';
import { listeningNow } from './listening.ts';
import { restoredFrom } from './restored.ts';
import { runningHostname } from './host.ts';
import { checkXftpQuota } from './storage.ts';
import { runTool } from './tool.ts';
import { torBootstrapPhase } from './tor-control.ts';
import { type ExportRecord } from './export-log.ts';
import { type BackupRecord } from './backup.ts';
import { type RestoredRecord } from './restored.ts';
import { describeEvent, readWatchdogState, recentWatchdogEvents } from './watchdog.ts';
import { type DiskSpace, diskSpace, temperature, uptimeSeconds } from './system-facts.ts';
import { type MetricsSummary, readRelayMetrics, summariseMetrics } from './relay-metrics.ts';
import { relaysOf } from '../plan/relays.ts';
import { formatBytes } from '../format-bytes.ts';
import type { WatchdogEvent, WatchdogState } from './watchdog-policy.ts';
import type { UpdateRecord } from './update.ts';
import { lastJsonLine } from './json-lines.ts';
import { currentRelease } from './relay-releases.ts';

/** How many of the watchdog's last events `status` shows (all are in its log and the journal). */
const RECENT_EVENTS = 8;

/**
 * Whether reading failed for want of root: most of what status reports is root's to read (STATE_DIR, Tor's
 * cookie, the relay's files). Said as such, never as "not finished" or "is tor running?", which would send a
 * person after a problem that is not there.
 */
export function denied(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EACCES' || code === 'EPERM';
}

/** What a person without root is told to run instead. */
export const WITH_SUDO = `run \`sudo ${COMMAND_NAME} status\``;

/** How far Tor has bootstrapped, in words. */
export async function torBootstrap(socket = TOR_CONTROL_SOCKET, cookieFile = TOR_CONTROL_COOKIE): Promise<string> {
  return describeTor(await torBootstrapPhase(socket, cookieFile).catch(unreadable));
}

async function unitState(unit: string): Promise<string> {
  // Bounded like every command the device program runs: a systemd that does not answer makes the state unknown.
  // `is-active` exits non-zero for every state but active, and still prints it.
  const result = await runTool('systemctl', ['is-active', unit], { timeoutMs: 10_000 }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
  return result.stdout.trim() || 'unknown';
}

/** What a person sees in `status` and on a stick, and what `status --json` prints: nothing secret in it. */
export interface Health {
  name: string;
  host: string;
  recipeHostname: string;
  at: string;
  firstBoot: { finished: boolean | null; at?: string; error?: string };
  services: Array<{ unit: string; state: string; port?: number; listening?: boolean }>;
  /** What the watchdog last saw and did (device/watchdog.ts); `error` where it cannot be read. */
  watchdog:
    | { intervalSeconds: number; lastRound: string | null; tor: WatchdogState['tor'] | null; services: WatchdogState['services']; recent: WatchdogEvent[] }
    | { intervalSeconds: number; error: string };
  storage: { ok: boolean; message: string } | null;
  /** The card's root filesystem: what the relays may still write. */
  disk: DiskSpace | { error: string };
  /** °C, where the kernel reports one (not in a VM). */
  temperatureCelsius: number | null;
  uptimeSeconds: number | null;
  /** Each relay's own counts, from its metrics file (none until its first interval is over). Not on a stick. */
  metrics: Record<string, (MetricsSummary & { at: string }) | { error: string }>;
  tor: { progress: number; summary: string } | { error: string };
  lastExport: ExportRecord | null | { error: string };
  lastBackup: BackupRecord | null | { error: string };
  restored: RestoredRecord | null;
  exportArmed: boolean | null;
  /** The simplexmq release the relays run (the card's current release, device/relay-releases.ts) and the last `update`. */
  simplexmq: { running: string; lastUpdate: UpdateRecord | null | { error: string } };
}

const unreadable = (error: unknown) => ({ error: denied(error) ? `permission denied; ${WITH_SUDO}` : (error as Error).message });

export async function collectHealth(plan: BuildPlan): Promise<Health> {
  const done = await readFile(STATE.firstbootDone, 'utf8').then(
    (text) => ({ finished: true, at: text.trim() }),
    (error: unknown) => (denied(error) ? { finished: null, error: `permission denied (only root may read ${STATE_DIR}); ${WITH_SUDO}` } : { finished: false }),
  );
  const listening = await listeningNow();
  const services = [];
  for (const { unit, port } of plan.reportedUnits) services.push({ unit, state: await unitState(unit), ...(port ? { port, listening: listening.has(port) } : {}) });
  const watchdog = await Promise.all([readWatchdogState(), recentWatchdogEvents(RECENT_EVENTS)]).then(
    ([state, recent]) => ({ intervalSeconds: plan.watchdog.intervalSeconds, lastRound: state?.lastRound ?? null, tor: state?.tor ?? null, services: state?.services ?? {}, recent }),
    (error: unknown) => ({ intervalSeconds: plan.watchdog.intervalSeconds, ...unreadable(error) }),
  );
  const storage = plan.xftp
    ? await checkXftpQuota(plan.xftp.quota, plan.xftp.filesPath).catch((error: Error) => ({
        ok: false,
        message: denied(error) ? `cannot check the XFTP quota: permission denied; ${WITH_SUDO}` : `cannot check the XFTP quota: ${error.message}`,
      }))
    : null;
  const host = runningHostname(plan);
  const metrics: Health['metrics'] = {};
  for (const relay of relaysOf(plan)) {
    const read = await readRelayMetrics(relay.kind, relay.logPath).catch(unreadable);
    if (read && 'error' in read) metrics[relay.name] = read;
    else if (read) metrics[relay.name] = { at: read.at, ...summariseMetrics(relay.kind, read) };
  }
  return {
    name: plan.name,
    host,
    recipeHostname: plan.hostname,
    at: new Date().toISOString(),
    firstBoot: done,
    services,
    watchdog,
    storage,
    disk: await diskSpace('/').catch(unreadable),
    temperatureCelsius: (await temperature().catch(() => undefined)) ?? null,
    uptimeSeconds: await uptimeSeconds().catch(() => null),
    metrics,
    tor: await torBootstrapPhase().catch(unreadable),
    lastExport: await lastExport().then((r) => r ?? null, unreadable),
    lastBackup: await lastBackup().then((r) => r ?? null, unreadable),
    restored: (await restoredFrom().catch(() => undefined)) ?? null,
    exportArmed: await exportArmed().catch(() => null),
    simplexmq: { running: (await currentRelease().catch(() => undefined)) ?? plan.simplexmq.version, lastUpdate: await lastJsonLine<UpdateRecord>(STATE.updateLog).then((r) => r ?? null, unreadable) },
  };
}

/** The release the relays run, and how the last update ended. */
function simplexmqLine(simplexmq: Health['simplexmq']): string {
  const last = simplexmq.lastUpdate;
  const said =
    last === null
      ? ''
      : 'error' in last
        ? `; last update unknown (${last.error})`
        : last.outcome === 'updated'
          ? `; updated from ${last.from} at ${last.at}`
          : `; the update to ${last.to} at ${last.at} was ROLLED BACK${last.outcome === 'rollback-failed' ? ', and NOT every relay came back' : ''}: ${last.error}`;
  return `Relays: simplexmq ${simplexmq.running}${said}`;
}

const since = (iso: string) => `${Math.round((Date.now() - Date.parse(iso)) / 60_000)} min ago`;

/**
 * The watchdog's lines. On a stick (`forStick`) without the errors, which name the onion addresses: a stick that
 * gets only the health report holds no address.
 */
function watchdogLines(watchdog: Health['watchdog'], forStick: boolean): string[] {
  const head = `Reached through Tor (the watchdog, every ${watchdog.intervalSeconds} s):`;
  if ('error' in watchdog) return [head, `  unknown: ${watchdog.error}`];
  if (!watchdog.lastRound) return [head, '  not checked yet (its first round is one interval after boot)'];
  const lines = [`Reached through Tor (the watchdog, every ${watchdog.intervalSeconds} s; last round ${watchdog.lastRound}):`];
  for (const [name, watch] of Object.entries(watchdog.services)) {
    const error = forStick || !watch.lastError ? '' : `: ${watch.lastError}`;
    const step = watch.lastStep ? `; last step ${watch.lastStep.step} at ${watch.lastStep.at}` : '';
    const text =
      watch.state === 'ok'
        ? `ok   ${name.padEnd(8)} reached ${watch.lastOk}${watch.note ? ` (then: ${watch.note})` : ''}`
        : watch.state === 'failing'
          ? `!!   ${name.padEnd(8)} FAILING since ${watch.since}${error}${step}${watch.nextStepAt ? `; next step after ${watch.nextStepAt}` : ''}`
          : watch.state === 'given-up'
            ? `!!   ${name.padEnd(8)} GIVEN UP: failed since ${watch.since}${error}${step}; no more restarts until ${watch.nextStepAt}. Look at \`journalctl -u ${unitName(UNITS.watchdog)}\` and the service's own journal`
            : `..   ${name.padEnd(8)} not checked yet${watch.note ? `: ${watch.note}` : ''}`;
    lines.push(`  ${text}`);
  }
  // The history, in status only: its errors name the onions.
  if (!forStick && watchdog.recent.length) lines.push('  What it saw and did last:', ...watchdog.recent.map((e) => `    ${e.at}  ${describeEvent(e)}`));
  if (watchdog.tor?.connected === false && watchdog.tor.notConnectedSince) lines.push(`  Tor has not been connected since ${watchdog.tor.notConnectedSince} (${since(watchdog.tor.notConnectedSince)}); onions are checked once it is`);
  return lines;
}

/** The state of the Pi without a secret in it, in words: first boot, the services, the watchdog, storage, Tor, the last export and backup. */
function healthLines(health: Health, forStick: boolean): string[] {
  // Raspberry Pi Imager may have given the Pi another host name than the recipe's; the stick's folder uses this one.
  const lines: string[] = [`simplex-pi "${health.name}" on ${health.host}${health.host === health.recipeHostname ? '' : ` (the recipe named it ${health.recipeHostname})`}`, ''];
  const { firstBoot } = health;
  if (firstBoot.finished === null) lines.push(`First boot: unknown: ${firstBoot.error}`);
  else lines.push(firstBoot.finished ? `First boot: finished ${firstBoot.at}` : `First boot: NOT FINISHED. See \`journalctl -u ${unitName(UNITS.firstboot)}\` for what it is doing or what went wrong.`);
  lines.push('', 'Services:');
  for (const { unit, state, port, listening } of health.services) {
    const ok = state === 'active' ? 'ok ' : '!! ';
    lines.push(`  ${ok} ${unitName(unit).padEnd(20)} ${state}${port ? (listening ? `, listening on ${port}` : `, NOT listening on ${port}`) : ''}`);
  }
  lines.push('', ...watchdogLines(health.watchdog, forStick));
  if (health.storage) lines.push('', `Storage: ${health.storage.ok ? 'ok ' : '!! '} ${health.storage.message}`);
  lines.push(...systemLines(health));
  if (!forStick && Object.keys(health.metrics).length) {
    lines.push('', 'Relay counts (each relay writes them every few minutes):');
    for (const [name, m] of Object.entries(health.metrics)) lines.push(`  ${name.padEnd(8)} ${'error' in m ? `unknown: ${m.error}` : `${m.line} (as of ${m.at})`}`);
  }
  lines.push('', simplexmqLine(health.simplexmq));
  lines.push(`Tor: ${describeTor(health.tor)}`);
  // On a stick, only when: which stick and whether in the clear would tell whoever holds this one where to look.
  const exported = health.lastExport;
  lines.push(`Secrets last exported to a stick: ${exported === null ? 'never' : 'error' in exported ? `unknown (${exported.error})` : forStick ? exported.at : describeExport(exported)}`);
  const backup = health.lastBackup;
  lines.push(
    `Last backup: ${
      backup === null
        ? 'never: a dead card would cost every address (`sudo simplex-pi backup`)'
        : 'error' in backup
          ? `unknown (${backup.error})`
          : forStick
            ? backup.at
            : `${backup.at} (${backup.bytes} bytes, encrypted with ${backup.encryption === 'recipient' ? 'the recipient key' : 'a passphrase'}, to ${backup.to})`
    }`,
  );
  const restored = health.restored;
  if (restored) lines.push(`Restored from backup ${restored.id}, made on ${restored.host} at ${restored.createdAt}. The card it came from must stay off for good: two Pis with the same onion addresses fight over them.`);
  if (!forStick) {
    const armed = health.exportArmed === null ? 'unknown (run with sudo)' : health.exportArmed ? 'ARMED: the next FAT USB stick with the label gets every address and key. Plug in your own, or run `sudo simplex-pi export`.' : 'done';
    lines.push(`Automatic export after first boot: ${armed}`);
  }
  lines.push('');
  return lines;
}

/** The card, the CPU's temperature and the uptime: what tells a Pi in a cupboard is short of room or too hot. */
function systemLines(health: Health): string[] {
  const { disk } = health;
  const lines = [
    '',
    'error' in disk
      ? `Card: unknown (${disk.error})`
      : `Card: ${disk.freeBytes < 0.05 * disk.totalBytes ? '!! ' : 'ok '} ${formatBytes(disk.freeBytes)} free of ${formatBytes(disk.totalBytes)}`,
  ];
  if (health.temperatureCelsius !== null) lines.push(`Temperature: ${health.temperatureCelsius >= 80 ? '!! ' : 'ok '} ${health.temperatureCelsius.toFixed(1)} °C${health.temperatureCelsius >= 80 ? ' (the Pi slows down from 80 °C: give it air or a heatsink)' : ''}`);
  if (health.uptimeSeconds !== null) lines.push(`Up for: ${describeUptime(health.uptimeSeconds)}`);
  return lines;
}

function describeUptime(seconds: number): string {
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  return days ? `${days} d ${hours} h` : hours ? `${hours} h ${minutes} min` : `${minutes} min`;
}

function describeTor(tor: Health['tor']): string {
  if ('error' in tor) {
    if (/^permission denied/.test(tor.error)) return `unknown: permission denied (only root and the ${TOR_USER} group may ask Tor); ${WITH_SUDO}`;
    return `unknown: cannot ask Tor (${tor.error}); is tor running? \`systemctl status ${unitName(UNITS.tor)}\``;
  }
  return tor.progress === 100 ? 'connected to the Tor network (100%)' : `connecting: ${tor.progress}% (${tor.summary})`;
}

/** The health report a plugged-in stick gets: no address, no key, no password. */
export async function healthReport(plan: BuildPlan): Promise<string> {
  return `${[...healthLines(await collectHealth(plan), true), `Written ${new Date().toISOString()}`].join('\n')}\n`;
}

/** `simplex-pi status --json`: the same, for scripts and monitoring (no address, no secret). */
export async function statusJson(plan: BuildPlan): Promise<string> {
  return `${JSON.stringify(await collectHealth(plan), null, 2)}\n`;
}

/** `simplex-pi status`: what a person needs to see whether the relays work, without knowing systemd or Tor. */
export async function status(plan: BuildPlan): Promise<string> {
  const lines = healthLines(await collectHealth(plan), false);
  const addresses = await readFile(STATE.addresses, 'utf8').catch((error: NodeJS.ErrnoException) =>
    denied(error) ? `Permission denied: they hold the relays' passwords, only root may read them; ${WITH_SUDO}.\n` : 'No addresses yet: first boot has not finished.\n',
  );
  lines.push('Addresses (paste or scan them into the SimpleX apps of your group):', ...addresses.trimEnd().split('\n').map((l) => `  ${l.replace('\t', '  ')}`));
  return `${lines.join('\n')}\n`;
}
