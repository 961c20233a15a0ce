import { describe, expect, it } from 'vitest';
import { GIVE_UP_SECONDS, LADDERS, type Observation, TOR_PUBLISH_SECONDS, TOR_STUCK_SECONDS, type WatchdogState, emptyState, planRound, planTor, waitAfterStep } from '../../builder/device/watchdog-policy.ts';
import { type Watched, addressFingerprint, stepsToRun } from '../../builder/device/watchdog.ts';

/**
 * The onion watchdog's decisions, with a clock in hand: one step at a time, each after a longer wait, then giving
 * up for a day; never a restart loop, whatever fails for however long.
 */

const INTERVAL = 600;
const T0 = Date.parse('2026-12-05T10:00:00Z');
const failed = (fault: 'service' | 'onion' = 'onion'): Observation => ({ service: 'smp1', outcome: 'failed', fault, error: 'boom' });
const ok: Observation = { service: 'smp1', outcome: 'ok', detail: 'fine' };

/** Runs a round every `INTERVAL` seconds (plus `lag`, how long each round takes) for `rounds` rounds, with `see(i)` observed. */
function simulate(rounds: number, see: (i: number) => Observation, lag = 20) {
  let state: WatchdogState = emptyState();
  const taken: Array<{ at: number; step: string }> = [];
  const events: string[] = [];
  for (let i = 0, t = T0; i < rounds; i++, t += (INTERVAL + lag) * 1000) {
    const round = planRound(state, [see(i)], new Date(t), INTERVAL);
    state = round.state;
    for (const s of round.steps) taken.push({ at: t, step: s.step });
    for (const e of round.events) events.push(`${(t - T0) / 1000}:${e.event}${'step' in e ? `:${e.step}` : ''}`);
  }
  return { state, taken, events };
}

describe('the watchdog policy', () => {
  it('meets an onion that stays unreachable with reload Tor, restart Tor, restart the relay, each after a longer wait, then gives up', () => {
    const { taken, events, state } = simulate(12, () => failed('onion'));
    expect(taken.map((t) => t.step)).toEqual([...LADDERS.onion]);
    const gaps = taken.slice(1).map((t, i) => (t.at - taken[i]!.at) / 1000 / (INTERVAL + 20));
    expect(gaps).toEqual([1, 2]);
    expect(events.filter((e) => e.endsWith('given-up'))).toHaveLength(1);
    expect(state.services.smp1!.state).toBe('given-up');
    // Given up at the round after the last step's wait (four intervals), for a day.
    expect(Date.parse(state.services.smp1!.nextStepAt!) - Date.parse(state.lastRound!)).toBeLessThanOrEqual(GIVE_UP_SECONDS * 1000);
  });

  it('never restarts in a loop: two days of a relay that cannot start cost two restarts a day at most', () => {
    const rounds = Math.ceil((48 * 3600) / (INTERVAL + 20));
    const { taken } = simulate(rounds, () => failed('service'));
    expect(taken.every((t) => t.step === 'restart-service')).toBe(true);
    expect(taken.length).toBeLessThanOrEqual(2 * LADDERS.service.length);
    expect(taken.length).toBeGreaterThanOrEqual(LADDERS.service.length);
    for (let i = 1; i < taken.length; i++) expect(taken[i]!.at - taken[i - 1]!.at).toBeGreaterThanOrEqual(INTERVAL * 1000);
  });

  it('after a day, tries the steps again from the first', () => {
    const rounds = Math.ceil((GIVE_UP_SECONDS + 8 * INTERVAL) / (INTERVAL + 20)) + 2;
    const { taken } = simulate(rounds, () => failed('onion'));
    expect(taken.map((t) => t.step).slice(0, 4)).toEqual([...LADDERS.onion, 'reload-tor']);
  });

  it('a recovery ends the outage, says how long it was and what brought it back, and the next failure starts from the first step', () => {
    const { events, state } = simulate(5, (i) => (i === 0 || i === 3 ? failed('onion') : ok));
    expect(events).toEqual(['0:failing', '0:step:reload-tor', '620:recovered', '1860:failing', '1860:step:reload-tor', '2480:recovered']);
    expect(state.services.smp1).toMatchObject({ state: 'ok', steps: 0, since: null, lastError: null });
    const recovered = planRound(simulate(1, () => failed()).state, [ok], new Date(T0 + 93_000), INTERVAL).events[0];
    expect(recovered).toMatchObject({ event: 'recovered', downSeconds: 93, lastStep: 'reload-tor' });
  });

  it('a round that could not check (Tor not connected, the relay starting) neither takes a step nor ends the outage', () => {
    const skipped: Observation = { service: 'smp1', outcome: 'skipped', reason: 'Tor is not connected' };
    const { taken, state } = simulate(10, (i) => (i === 0 ? failed() : skipped));
    expect(taken).toHaveLength(1);
    expect(state.services.smp1).toMatchObject({ state: 'failing', note: 'Tor is not connected' });
  });

  it('when the fault moves from the onion to the relay, that fault\'s steps start from the first', () => {
    const { taken } = simulate(3, (i) => (i === 0 ? failed('onion') : failed('service')));
    expect(taken.map((t) => t.step)).toEqual(['reload-tor', 'restart-service', 'restart-service']);
  });

  it('restarts a Tor that has not connected for half an hour, then only after twice as long each time', () => {
    let tor = emptyState().tor;
    const restarts: number[] = [];
    for (let s = 0; s <= 6 * 3600; s += 60) {
      const round = planTor(tor, false, new Date(T0 + s * 1000));
      tor = round.tor;
      if (round.restart) restarts.push(s);
    }
    expect(restarts).toEqual([TOR_STUCK_SECONDS, TOR_STUCK_SECONDS * 2, TOR_STUCK_SECONDS * 4, TOR_STUCK_SECONDS * 8].reduce<number[]>((acc, wait) => [...acc, (acc.at(-1) ?? 0) + wait], []).filter((s) => s <= 6 * 3600));
    expect(planTor(tor, true, new Date(T0)).tor).toMatchObject({ connected: true, notConnectedSince: null, restarts: 0 });
  });
});

describe('the watchdog round', () => {
  const services: Watched[] = [
    { name: 'smp1', kind: 'smp', unit: 'simplex-smp@1.service', localPort: 5224, onion: 'a.onion', virtualPort: 5223 },
    { name: 'smp2', kind: 'smp', unit: 'simplex-smp@2.service', localPort: 5225, onion: 'b.onion', virtualPort: 5223 },
  ];

  it('reloads or restarts Tor once however many services asked, and restarts each failed unit after clearing its failed state', () => {
    expect(stepsToRun([{ service: 'smp1', step: 'reload-tor' }, { service: 'smp2', step: 'reload-tor' }], services, false).map((s) => s.argv.join(' '))).toEqual(['reload tor@default.service']);
    expect(stepsToRun([{ service: 'smp1', step: 'reload-tor' }, { service: 'smp2', step: 'restart-tor' }], services, false).map((s) => s.argv.join(' '))).toEqual(['restart tor@default.service']);
    expect(stepsToRun([{ service: 'smp2', step: 'restart-service' }], services, true).map((s) => s.argv.join(' '))).toEqual([
      'restart tor@default.service',
      'reset-failed simplex-smp@2.service',
      'restart simplex-smp@2.service',
    ]);
  });

  it('reads the fingerprint out of an address, with or without a password', () => {
    expect(addressFingerprint('smp://S_EvsfoFSrMZI-cTjAiv3x5VIMj_NHeWtcIsYXxn6qw=:pw@x.onion:5223')).toBe('S_EvsfoFSrMZI-cTjAiv3x5VIMj_NHeWtcIsYXxn6qw=');
    expect(addressFingerprint('xftp://S_EvsfoFSrMZI-cTjAiv3x5VIMj_NHeWtcIsYXxn6qw=@x.onion:443')).toBe('S_EvsfoFSrMZI-cTjAiv3x5VIMj_NHeWtcIsYXxn6qw=');
  });
});

describe('the wait between steps', () => {
  it('gives Tor time to publish again after a step on Tor, however short the interval', () => {
    expect(waitAfterStep(1, 60, 'reload-tor')).toBe(TOR_PUBLISH_SECONDS);
    expect(waitAfterStep(1, 60, 'restart-service')).toBe(30);
    expect(waitAfterStep(3, 600, 'restart-tor')).toBe(2100);
  });
});
