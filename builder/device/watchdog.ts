import { readFile } from 'node:fs/promises';
import { exists } from '../exists.ts';
import { STATE, UNITS, unitName } from '../plan/layout.ts';
import type { BuildPlan } from '../plan/plan.ts';
import { relaysOf } from '../plan/relays.ts';
import { atomicWrite } from './files.ts';
import { appendJsonLine, lastJsonLines } from './json-lines.ts';
import { type ProbeKind, type ProbeResult, probeService } from './relay-probe.ts';
import type { ServerRecord } from './server-list.ts';
import { runTool } from './tool.ts';
import { torBootstrapPhase } from './tor-control.ts';
import { uptimeSeconds } from './system-facts.ts';
import { updateUnderWay } from './update-lock.ts';
import { type Observation, type PlannedStep, type Step, type WatchdogEvent, type WatchdogState, emptyState, planRound, planTor } from './watchdog-policy.ts';

/**
 * The onion watchdog: one round each time its timer fires (UNITS.watchdogTimer, every watchdog.interval_seconds).
 * Each service is reached as its users reach it: through the Pi's own Tor to its own onion address, then the
 * relay's TLS handshake with the identity in its address, or SSH's banner (device/relay-probe.ts); the local port
 * the same way, to tell a relay that does not answer from an onion that is not reachable. What to do about it is
 * watchdog-policy.ts's; this file observes, acts and records (STATE.watchdog, STATE.watchdogLog, the journal).
 *
 * The Pi reaches its own onion services with its own client-authorization key (first boot gives it one for every
 * service, device/client-auth.ts).
 */

/** A watched service: a relay, or SSH over Tor. */
export interface Watched {
  name: string;
  kind: ProbeKind;
  unit: string;
  localPort: number;
  onion: string;
  virtualPort: number;
  fingerprint?: string;
}

/** Onion connections fail now and then on a healthy service (a circuit through a slow relay): a few tries a round. */
const ONION_TRIES = 3;
const ONION_TIMEOUT_MS = 90_000;
const LOCAL_TIMEOUT_MS = 20_000;
/** A stopping SMP relay saves its messages first (its unit allows minutes): restarting waits as long. */
const RESTART_TIMEOUT_MS = 17 * 60_000;

/** The fingerprint in an `smp://` or `xftp://` address (before the password and the host). */
export function addressFingerprint(address: string): string | undefined {
  return /^(?:smp|xftp):\/\/([A-Za-z0-9_-]+=*)[:@]/.exec(address)?.[1];
}

/** What to watch: every relay and SSH over Tor, with the onion and fingerprint first boot recorded. */
export function watchedServices(plan: BuildPlan, records: readonly ServerRecord[]): Watched[] {
  const out: Watched[] = [];
  for (const relay of relaysOf(plan)) {
    const record = records.find((r) => r.name === relay.name);
    if (!record) continue;
    out.push({ name: relay.name, kind: relay.kind, unit: relay.unit, localPort: relay.localPort, onion: record.onion, virtualPort: relay.onion.virtualPort, fingerprint: addressFingerprint(record.address) });
  }
  const ssh = records.find((r) => r.kind === 'ssh');
  if (plan.ssh.onion && ssh) out.push({ name: ssh.name, kind: 'ssh', unit: UNITS.ssh, localPort: plan.ssh.port, onion: ssh.onion, virtualPort: plan.ssh.onion.virtualPort });
  return out;
}

/** A relay just started may not listen yet, and a Tor just started has not published its onions yet: failures then are not faults. */
const SETTLE_SECONDS = { service: 120, tor: 180 };

export interface UnitNow {
  active: string;
  sub: string;
  result: string;
  /** Seconds since the unit last became active (Infinity when unknown). */
  upSeconds: number;
}

export async function unitNow(unit: string): Promise<UnitNow> {
  const { stdout } = await runTool('systemctl', ['show', '--property=ActiveState,SubState,Result,ActiveEnterTimestampMonotonic', unit], { timeoutMs: 20_000 });
  const value = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(stdout)?.[1] ?? 'unknown';
  const enteredMicros = Number(value('ActiveEnterTimestampMonotonic'));
  const uptime = await uptimeSeconds();
  const upSeconds = enteredMicros > 0 && Number.isFinite(uptime) ? uptime - enteredMicros / 1e6 : Number.POSITIVE_INFINITY;
  return { active: value('ActiveState'), sub: value('SubState'), result: value('Result'), upSeconds };
}

/** The service through the Pi's own Tor at its own onion, as its users reach it (a few tries: circuits fail now and then). */
export async function onionProbe(service: Watched, socksPort: number): Promise<ProbeResult> {
  let result: ProbeResult | undefined;
  for (let i = 0; i < ONION_TRIES && !result?.ok; i++) {
    result = await probeService({ kind: service.kind, host: service.onion, port: service.virtualPort, fingerprint: service.fingerprint }, { host: '127.0.0.1', port: socksPort }, ONION_TIMEOUT_MS);
  }
  return result!;
}

/** The service on its own port on the Pi: the relay's TLS handshake and the identity in its address, or SSH's banner. */
export function localProbe(service: Watched): Promise<ProbeResult> {
  return probeService({ kind: service.kind, host: '127.0.0.1', port: service.localPort, fingerprint: service.fingerprint }, null, LOCAL_TIMEOUT_MS);
}

/** One service, observed: its unit, its local port, then (with Tor connected) its onion. */
export async function observe(service: Watched, tor: { connected: boolean; upSeconds: number }, socksPort: number): Promise<Observation> {
  const name = service.name;
  const unit = await unitNow(service.unit).catch(() => ({ active: 'unknown', sub: 'unknown', result: 'unknown', upSeconds: Number.POSITIVE_INFINITY }));
  if (unit.active === 'failed') return { service: name, outcome: 'failed', fault: 'service', error: `${unitName(service.unit)} has failed (${unit.result})` };
  if (unit.active === 'inactive') return { service: name, outcome: 'skipped', reason: `${unitName(service.unit)} is stopped, not by the watchdog: left alone` };
  if (unit.active !== 'active') return { service: name, outcome: 'skipped', reason: `${unitName(service.unit)} is ${unit.active} (${unit.sub})` };
  const local = await localProbe(service);
  if (!local.ok && unit.upSeconds < SETTLE_SECONDS.service) return { service: name, outcome: 'skipped', reason: `started ${Math.round(unit.upSeconds)} s ago and not answering yet` };
  if (!local.ok) return { service: name, outcome: 'failed', fault: 'service', error: `does not answer on its own port ${service.localPort}: ${local.error}` };
  if (!tor.connected) return { service: name, outcome: 'skipped', reason: 'answers on its own port; its onion is checked once Tor is connected' };
  const onion = await onionProbe(service, socksPort);
  if (!onion.ok && tor.upSeconds < SETTLE_SECONDS.tor) return { service: name, outcome: 'skipped', reason: `answers on its own port; Tor started ${Math.round(tor.upSeconds)} s ago and is still publishing its onion (${onion.error})` };
  if (!onion.ok) return { service: name, outcome: 'failed', fault: 'onion', error: `answers on its own port, but not through Tor at ${service.onion}:${service.virtualPort}: ${onion.error}` };
  return { service: name, outcome: 'ok', detail: `reached through Tor in ${(onion.ms / 1000).toFixed(1)} s: ${onion.detail}` };
}

const STEP_WORDS: Record<Step, string> = {
  'reload-tor': 'reload Tor (it publishes every onion service again)',
  'restart-tor': 'restart Tor',
  'restart-service': 'restart the service',
};

/** The steps of one round, each once: Tor is reloaded or restarted once however many services asked. */
export function stepsToRun(steps: readonly PlannedStep[], services: readonly Watched[], restartTor: boolean): Array<{ argv: string[]; what: string }> {
  const out: Array<{ argv: string[]; what: string }> = [];
  if (restartTor || steps.some((s) => s.step === 'restart-tor')) out.push({ argv: ['restart', UNITS.tor], what: 'restart Tor' });
  else if (steps.some((s) => s.step === 'reload-tor')) out.push({ argv: ['reload', UNITS.tor], what: 'reload Tor' });
  for (const unit of new Set(steps.filter((s) => s.step === 'restart-service').map((s) => services.find((w) => w.name === s.service)!.unit))) {
    out.push({ argv: ['reset-failed', unit], what: `clear ${unitName(unit)}'s failed state` });
    out.push({ argv: ['restart', unit], what: `restart ${unitName(unit)}` });
  }
  return out;
}

export function describeEvent(event: WatchdogEvent): string {
  switch (event.event) {
    case 'failing':
      return `${event.service} FAILS: ${event.error}`;
    case 'step':
      return `${event.service}: step ${event.attempt}: ${STEP_WORDS[event.step]} (${event.error})`;
    case 'recovered':
      return `${event.service} recovered after ${event.downSeconds} s${event.lastStep ? ` (last step: ${STEP_WORDS[event.lastStep]})` : ''}`;
    case 'given-up':
      return `${event.service} still fails after every step: GIVEN UP, no more restarts until ${event.retryAt} (${event.error}); see \`simplex-pi status\` and its unit's journal`;
  }
}

export async function readWatchdogState(path = STATE.watchdog): Promise<WatchdogState | undefined> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  return text === undefined ? undefined : (JSON.parse(text) as WatchdogState);
}

/** The watchdog's last `count` events, oldest first (its log keeps every one). */
export function recentWatchdogEvents(count: number): Promise<WatchdogEvent[]> {
  return lastJsonLines<WatchdogEvent>(STATE.watchdogLog, count);
}

/** The servers first boot recorded (onions, addresses); undefined before it has. Root only. */
export function readServerRecords(): Promise<ServerRecord[] | undefined> {
  return readFile(STATE.servers, 'utf8').then((text) => (JSON.parse(text) as { servers: ServerRecord[] }).servers, () => undefined);
}

/** One round of the watchdog. */
export async function watchdogRound(plan: BuildPlan, log: (line: string) => void, now = () => new Date()): Promise<void> {
  const records = await readServerRecords();
  if (!records || !(await exists(STATE.firstbootDone))) {
    log('watchdog: first boot has not finished: nothing to watch yet');
    return;
  }
  const updating = await updateUnderWay();
  if (updating) {
    // The update restarts the relays one at a time and checks each itself; steps of the watchdog's own in between
    // would be taken against a relay that is only restarting, and could meet the update's rollback.
    log(`watchdog: a relay update is under way (process ${updating}): this round is left to it`);
    return;
  }
  const services = watchedServices(plan, records);
  const previous = (await readWatchdogState().catch(() => undefined)) ?? emptyState();
  const phase = await torBootstrapPhase().catch((error: Error) => ({ progress: -1, summary: error.message }));
  const torConnected = phase.progress === 100;
  const torUnit = await unitNow(UNITS.tor).catch(() => ({ upSeconds: Number.POSITIVE_INFINITY }));
  const observations = await Promise.all(services.map((service) => observe(service, { connected: torConnected, upSeconds: torUnit.upSeconds }, plan.tor.socksPort)));
  const at = now();
  const { state, steps, events } = planRound(previous, observations, at, plan.watchdog.intervalSeconds);
  const tor = planTor(previous.tor, torConnected, at);
  state.tor = tor.tor;
  if (!torConnected) log(`watchdog: Tor is not connected (${phase.progress < 0 ? phase.summary : `${phase.progress}%: ${phase.summary}`}) since ${tor.tor.notConnectedSince}: onions not checked${tor.restart ? '; restarting Tor' : ''}`);
  for (const event of events) {
    log(`watchdog: ${describeEvent(event)}`);
    await appendJsonLine(STATE.watchdogLog, event);
  }
  // The state first: a step that hangs or kills this round (restarting Tor) must not be taken again next round.
  await atomicWrite(STATE.watchdog, `${JSON.stringify(state, null, 2)}\n`, 0o600);
  for (const { argv, what } of stepsToRun(steps, services, tor.restart)) {
    const result = await runTool('systemctl', argv, { timeoutMs: RESTART_TIMEOUT_MS }).then(
      () => 'done',
      (error: Error) => `failed: ${error.message}`,
    );
    log(`watchdog: ${what}: ${result}`);
  }
  const counts = { ok: 0, failing: 0, 'given-up': 0, unchecked: 0 };
  for (const watch of Object.values(state.services)) counts[watch.state]++;
  log(`watchdog: ${counts.ok} of ${services.length} reached through Tor${counts.failing ? `, ${counts.failing} FAILING` : ''}${counts['given-up'] ? `, ${counts['given-up']} GIVEN UP` : ''}${counts.unchecked ? `, ${counts.unchecked} not checked yet` : ''}`);
}
