/**
 * What the onion watchdog does about what it saw: pure, so every path through it (and that none of them loops) is
 * tested with a clock in hand (test/unit/watchdog-policy.test.ts). device/watchdog.ts observes and acts.
 *
 * Each failure of a service is met by one step at a time, never two at once, each after a longer wait than the
 * last (an onion service takes minutes to be published again): the first at once, the next after one interval,
 * then two, then four. When the steps are used up the watchdog gives up on that service, says so, and tries the
 * steps again only a day later: a relay that cannot start is reported, not restarted forever. systemd's own
 * restarts of a crashed relay are bounded in its unit (StartLimitBurst), so neither restarts in a loop.
 */

/**
 * Where a failure lies: the relay does not answer on its own port (`service`), or it does and its onion does not
 * (`onion`: Tor's publication, its circuits, its state).
 */
export type Fault = 'service' | 'onion';

/**
 * `reload-tor`: SIGHUP, Tor reads its configuration again and publishes every onion service anew (what brings
 * back a service withdrawn or a descriptor lost). `restart-tor`: a Tor that is stuck. `restart-service`: the
 * relay's (or SSH's) unit, reset if it had failed.
 */
export type Step = 'reload-tor' | 'restart-tor' | 'restart-service';

export const LADDERS: Record<Fault, readonly Step[]> = {
  onion: ['reload-tor', 'restart-tor', 'restart-service'],
  service: ['restart-service', 'restart-service'],
};

/** After the last step failed too: how long the watchdog leaves a service alone before it tries again. */
export const GIVE_UP_SECONDS = 24 * 3600;

/** Tor not connected to the network for this long (the Pi's network down, or Tor stuck) is when it is restarted. */
export const TOR_STUCK_SECONDS = 30 * 60;

export type Observation =
  | { service: string; outcome: 'ok'; detail: string }
  | { service: string; outcome: 'failed'; fault: Fault; error: string }
  /** Not checked this round, and why (Tor not connected, the unit stopped by someone, the relay starting). */
  | { service: string; outcome: 'skipped'; reason: string };

export interface ServiceWatch {
  state: 'ok' | 'failing' | 'given-up' | 'unchecked';
  lastCheck: string | null;
  lastOk: string | null;
  /** When the current outage began. */
  since: string | null;
  fault: Fault | null;
  lastError: string | null;
  /** Steps taken in this outage. */
  steps: number;
  /** No step before this time (the wait that grows with each step, or the day after giving up). */
  nextStepAt: string | null;
  lastStep: { at: string; step: Step } | null;
  /** Why the last round did not check it. */
  note: string | null;
}

export interface TorWatch {
  connected: boolean | null;
  /** When Tor was first seen not connected, in the current stretch. */
  notConnectedSince: string | null;
  lastRestart: string | null;
  /** Restarts for want of a connection in this stretch: each waits twice as long as the one before. */
  restarts: number;
}

export interface WatchdogState {
  version: 1;
  lastRound: string | null;
  tor: TorWatch;
  services: Record<string, ServiceWatch>;
}

export type WatchdogEvent =
  | { at: string; service: string; event: 'failing'; fault: Fault; error: string }
  | { at: string; service: string; event: 'step'; step: Step; fault: Fault; attempt: number; error: string }
  | { at: string; service: string; event: 'recovered'; downSeconds: number; lastStep: Step | null }
  | { at: string; service: string; event: 'given-up'; fault: Fault; error: string; retryAt: string };

export interface PlannedStep {
  service: string;
  step: Step;
}

export function emptyState(): WatchdogState {
  return { version: 1, lastRound: null, tor: { connected: null, notConnectedSince: null, lastRestart: null, restarts: 0 }, services: {} };
}

function unchecked(): ServiceWatch {
  return { state: 'unchecked', lastCheck: null, lastOk: null, since: null, fault: null, lastError: null, steps: 0, nextStepAt: null, lastStep: null, note: null };
}

const seconds = (from: string, to: Date) => Math.round((to.getTime() - Date.parse(from)) / 1000);
const later = (now: Date, s: number) => new Date(now.getTime() + s * 1000).toISOString();

/**
 * After Tor was reloaded or restarted, the least time before the next step: Tor builds new introduction points and
 * uploads the descriptors again, which takes a minute or two on the Tor network; judging it sooner would restart a
 * Tor that was about to succeed.
 */
export const TOR_PUBLISH_SECONDS = 300;

/**
 * The wait after step `n` (1-based) before the next one: 1, 2, 4 … intervals, less half an interval, so the round
 * that comes one interval later (the timer runs each round an interval after the last ended) is not missed by a
 * second; after a step on Tor, at least TOR_PUBLISH_SECONDS.
 */
export function waitAfterStep(n: number, intervalSeconds: number, step: Step): number {
  const wait = intervalSeconds * 2 ** (n - 1) - intervalSeconds / 2;
  return step === 'restart-service' ? wait : Math.max(wait, TOR_PUBLISH_SECONDS);
}

/** One round: the new state, the steps to take now (at most one per service), and what to log. */
export function planRound(
  previous: WatchdogState,
  observations: readonly Observation[],
  now: Date,
  intervalSeconds: number,
): { state: WatchdogState; steps: PlannedStep[]; events: WatchdogEvent[] } {
  const at = now.toISOString();
  const services: Record<string, ServiceWatch> = {};
  const steps: PlannedStep[] = [];
  const events: WatchdogEvent[] = [];
  for (const observation of observations) {
    const before = previous.services[observation.service] ?? unchecked();
    const watch: ServiceWatch = { ...before, lastCheck: at, note: null };
    services[observation.service] = watch;
    if (observation.outcome === 'skipped') {
      watch.note = observation.reason;
      continue;
    }
    if (observation.outcome === 'ok') {
      if (before.state === 'failing' || before.state === 'given-up') {
        events.push({ at, service: observation.service, event: 'recovered', downSeconds: before.since ? seconds(before.since, now) : 0, lastStep: before.lastStep?.step ?? null });
      }
      Object.assign(watch, { state: 'ok', lastOk: at, since: null, fault: null, lastError: null, steps: 0, nextStepAt: null });
      continue;
    }
    const { fault, error } = observation;
    watch.lastError = error;
    if (before.state !== 'failing' && before.state !== 'given-up') {
      Object.assign(watch, { state: 'failing', since: at, fault, steps: 0, nextStepAt: null });
      events.push({ at, service: observation.service, event: 'failing', fault, error });
    } else if (before.fault !== fault) {
      // The fault moved (the onion failed, then the relay itself): that fault's steps, from the first.
      Object.assign(watch, { state: 'failing', fault, steps: 0, nextStepAt: null });
      events.push({ at, service: observation.service, event: 'failing', fault, error });
    }
    if (watch.nextStepAt && now.getTime() < Date.parse(watch.nextStepAt)) continue;
    const ladder = LADDERS[fault];
    if (watch.state === 'given-up') {
      // A day has passed: the steps again, from the first.
      Object.assign(watch, { state: 'failing', steps: 0 });
    }
    if (watch.steps < ladder.length) {
      const step = ladder[watch.steps]!;
      watch.steps += 1;
      watch.lastStep = { at, step };
      watch.nextStepAt = later(now, waitAfterStep(watch.steps, intervalSeconds, step));
      steps.push({ service: observation.service, step });
      events.push({ at, service: observation.service, event: 'step', step, fault, attempt: watch.steps, error });
    } else {
      const retryAt = later(now, GIVE_UP_SECONDS);
      Object.assign(watch, { state: 'given-up', nextStepAt: retryAt, steps: 0 });
      events.push({ at, service: observation.service, event: 'given-up', fault, error, retryAt });
    }
  }
  // Every service of the plan is observed each round (skipped is an observation): one it no longer has is forgotten.
  return { state: { ...previous, lastRound: at, services }, steps, events };
}

/**
 * Tor itself: not connected for TOR_STUCK_SECONDS, it is restarted; then again only after twice as long each
 * time (a Pi whose network is down for a week restarts Tor a handful of times, not every round).
 */
export function planTor(previous: TorWatch, connected: boolean, now: Date): { tor: TorWatch; restart: boolean } {
  const at = now.toISOString();
  if (connected) return { tor: { connected: true, notConnectedSince: null, lastRestart: previous.lastRestart, restarts: 0 }, restart: false };
  const since = previous.notConnectedSince ?? at;
  const tor: TorWatch = { connected: false, notConnectedSince: since, lastRestart: previous.lastRestart, restarts: previous.restarts };
  const waited = previous.restarts === 0 ? seconds(since, now) : previous.lastRestart ? seconds(previous.lastRestart, now) : 0;
  const due = TOR_STUCK_SECONDS * 2 ** previous.restarts;
  if (waited < due) return { tor, restart: false };
  return { tor: { ...tor, lastRestart: at, restarts: previous.restarts + 1 }, restart: true };
}
