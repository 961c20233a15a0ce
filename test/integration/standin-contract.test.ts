import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { applyIni } from '../../builder/device/ini.ts';
import { type RelayMetrics, readRelayMetrics, summariseMetrics } from '../../builder/device/relay-metrics.ts';
import { type IniSetting, RELAY_METRICS_INTERVAL_SECONDS, resolvePlan } from '../../builder/plan/plan.ts';
import { parseRecipe } from '../../builder/recipe/load.ts';
import { scratch } from '../helpers/env.ts';
import { StandinRelay, countOn, freePort, relaySession } from '../helpers/standin-relay.ts';

/**
 * The stand-in keeps the real servers' contract wherever a test depends on it (simplexmq v6.5.2; the stand-in's
 * comments cite the source): optparse's refusal of unknown options, the bare `-v` line, TLS as the real relay
 * speaks it, and undelivered messages saved on SIGINT only, read back at start, fatal when the file is damaged.
 * Run with the host's Node exactly as the ELF runs it in the image (`node -e <script> -- ARGS`).
 */

describe('the simplexmq stand-in keeps the real CLI and server contract', () => {
  let dir: string;
  let relay: StandinRelay;
  let port: number;
  const run = (...args: string[]) => relay.run(...args);
  const startRelay = (...args: string[]) => relay.start(...args);
  const session = relaySession;
  const messages = () => relay.messagesFile;

  beforeAll(async () => {
    dir = await scratch('standin-contract');
    relay = await StandinRelay.create(dir);
    port = await freePort();
  });

  it('prints the version line alone for -v, as optparse infoOption does', async () => {
    const result = await run('-v');
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe('SMP server v6.5.2.0 / 0000000');
  });

  it('refuses options the real command does not have, and a flag-or-value option given its value with a space', async () => {
    const unknown = await run('init', '-y', '--disable-web', '--frobnicate');
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toContain("Invalid option `--frobnicate'");
    const spaced = await run('init', '-y', '--socks-proxy', '127.0.0.1:9050');
    expect(spaced.exitCode).toBe(1);
    expect(spaced.stderr).toContain("Invalid argument `127.0.0.1:9050'");
    const missing = await run('init', '-y', '-n');
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain('The option `-n` expects an argument.');
  });

  it('initialises with the flags the project passes, and speaks TLS 1.3 with ALPN smp/1 and the chain server.crt, ca.crt', async () => {
    const init = await run('init', '-y', '--disable-web', '--socks-proxy=127.0.0.1:9050', '-n', 'example.onion');
    expect(init.exitCode, init.all).toBe(0);
    const ini = join(relay.cfgPath, 'smp-server.ini');
    await writeFile(ini, (await readFile(ini, 'utf8')).replace(/^port = .*$/m, `port = ${port}`));
    // As the units start it: GHC's runtime options are not the program's.
    const running = await startRelay('+RTS', '-N', '-RTS');
    try {
      const { socket } = await session(port);
      expect(socket.alpnProtocol).toBe('smp/1');
      expect(socket.getProtocol()).toBe('TLSv1.3');
      expect(socket.getCipher().standardName).toBe('TLS_CHACHA20_POLY1305_SHA256');
      const leaf = socket.getPeerCertificate(true);
      const ca = leaf.issuerCertificate;
      expect(ca && ca !== leaf).toBeTruthy();
      // The address's fingerprint is the sha256 of the CA certificate the relay presents.
      const fingerprint = (await readFile(join(relay.cfgPath, 'fingerprint'), 'utf8')).trim();
      expect(createHash('sha256').update(ca.raw).digest('base64url')).toBe(fingerprint.replace(/=+$/, ''));
      socket.destroy();
    } finally {
      running.process.kill('SIGKILL');
      await running.process;
    }
  });

  it('saves undelivered messages on SIGINT and restores them at the next start (then keeps the file as .bak)', async () => {
    const running = await startRelay();
    const { socket, ask } = await session(port);
    for (const text of ['one', 'two', 'three']) expect(await ask(`SEND q1 ${text}`)).toMatch(/^OK /);
    socket.destroy();
    running.process.kill('SIGINT');
    const stopped = await running.process;
    expect(stopped.exitCode).toBe(0);
    expect(running.output()).toContain('Received SIGINT, stopping server...');
    expect((await readFile(messages(), 'utf8')).split('\n')).toHaveLength(4);

    const again = await startRelay();
    expect(again.output()).toContain('messages stored: 3');
    expect(await countOn(port, 'q1')).toBe(3);
    await expect(readFile(`${messages()}.bak`, 'utf8')).resolves.toContain('v3 q1 ');
    // SIGTERM: no handler, as in the real server (GHC installs none), so nothing is saved.
    again.process.kill('SIGTERM');
    const killed = await again.process;
    expect(killed.signal).toBe('SIGTERM');
    await expect(readFile(messages(), 'utf8')).rejects.toThrow(/ENOENT/);
  });

  it('refuses to start on a torn last record unless --skip-warnings, and always on a damaged earlier one', async () => {
    const good = (i: number) => `v3 q2 id${i} 1700000000 ${Buffer.from(`m${i}`).toString('base64')}\n`;
    await writeFile(messages(), `${good(1)}${good(2)}v3 q2 id3 17000`);
    const torn = await run('start');
    expect(torn.exitCode).toBe(1);
    expect(torn.stdout).toContain('start with --skip-warnings option to ignore this error');
    await expect(readFile(messages(), 'utf8')).resolves.toContain('id3'); // no rename: every retry fails the same way

    const skipping = await startRelay('--skip-warnings');
    expect(await countOn(port, 'q2')).toBe(2);
    skipping.process.kill('SIGKILL');
    await skipping.process;

    await writeFile(messages(), `${good(1)}garbage\n${good(2)}`);
    const damaged = await run('start', '--skip-warnings');
    expect(damaged.exitCode).toBe(1);
    expect(damaged.stdout).toContain('error restoring messages');
  });
});

describe("the stand-in reads its INI with simplexmq's parser (ini-0.4.1), not with ours", () => {
  // The stand-in's parser is a port of the `ini` package simplexmq pins, so these pin where that parser differs
  // from a line-by-line reader such as builder/device/ini.ts: the ways an INI can be read other than as written.
  let relay: StandinRelay;
  beforeAll(async () => {
    relay = await StandinRelay.create(await scratch('standin-ini'));
    const init = await relay.run('init', '-y', '--disable-web', '-n', 'example.onion');
    expect(init.exitCode, init.all).toBe(0);
  });
  const read = async (text: string) => {
    await writeFile(relay.iniPath, text);
    return relay.parsedIni();
  };

  it('takes either separator, strips spaces, drops one character after a colon, and keeps inline "comments" as values', async () => {
    expect(await read('[S]\na=1\nb: 2\n  c  =  3  \nd:45\ne = 5 # not a comment\n  # f = 6\n; g = 7\n')).toEqual({
      S: { a: '1', b: '2', c: '3', d: '5', e: '5 # not a comment' },
    });
  });

  it('reads the first copy of a key, and only the last copy of a section', async () => {
    expect(await read('[TRANSPORT]\nport = 1\nport = 2\n')).toEqual({ TRANSPORT: { port: '1' } });
    expect(await read('[TRANSPORT]\nport = 1\nwebsockets = off\n[PROXY]\nsocks_mode = always\n[TRANSPORT]\nhost = h\n')).toEqual({ TRANSPORT: { host: 'h' }, PROXY: { socks_mode: 'always' } });
  });

  it('joins a line without a separator to the next key, and silently stops at what it cannot parse', async () => {
    expect(await read('[TRANSPORT]\nwebsockets\nport = 1\n')).toEqual({ TRANSPORT: { 'websockets\nport': '1' } });
    expect(await read('[TRANSPORT]\nport = 1\nhost[0] = h\n[PROXY]\nsocks_mode = always\n')).toEqual({ TRANSPORT: { port: '1' } });
    // And the real server then refuses to start for want of a key it needs.
    await writeFile(relay.iniPath, '[TRANSPORT]\nwebsockets\nport = 1\n');
    const start = await relay.run('start');
    expect(start.exitCode).not.toBe(0);
    expect(start.all).toContain('no key port in section TRANSPORT');
  });

  it("reads every setting the device applies to init's INI as the plan set it (SMP and XFTP)", async () => {
    const plan = resolvePlan(parseRecipe('name: t\nsmp: { instances: 2, message_expiry_days: 7 }\n', 'r'));
    const cases: Array<[StandinRelay, IniSetting[], string[]]> = [
      [relay, plan.smp.instances[1]!.ini, ['init', '-y', '--disable-web', '-n', 'example.onion']],
      [await StandinRelay.create(await scratch('standin-ini-xftp'), 'xftp'), plan.xftp!.ini, ['init', '-p', '/srv/files', '-q', '1gb', '-n', 'example.onion']],
    ];
    for (const [server, settings, init] of cases) {
      await rm(server.iniPath, { force: true });
      const initialised = await server.run(...init);
      expect(initialised.exitCode, initialised.all).toBe(0);
      const initText = await readFile(server.iniPath, 'utf8');
      // Control: init's own INI reads back whole, so a lost setting below is the device's doing.
      const before = await server.parsedIni();
      expect(Object.keys(before)).toEqual(expect.arrayContaining(['STORE_LOG', 'AUTH', 'TRANSPORT', 'INACTIVE_CLIENTS']));
      await writeFile(server.iniPath, applyIni(initText, settings));
      const read = await server.parsedIni();
      for (const { section, key, value } of settings) expect(read[section]?.[key], `${server.kind} [${section}] ${key}`).toBe(value);
      // Nothing init wrote was lost on the way (a duplicated section would drop the earlier copy's keys).
      for (const [section, keys] of Object.entries(before)) {
        for (const key of Object.keys(keys)) expect(read[section], `${server.kind} [${section}] ${key}`).toHaveProperty([key]);
      }
    }
  });
});

describe('the stand-in writes the Prometheus metrics file as the real relays do, and readRelayMetrics reads it', () => {
  // Real (simplexmq v6.5.2 Server.hs / FileTransfer/Server.hs savePrometheusMetrics): with [STORE_LOG]
  // prometheus_interval set, the file is written one interval after the start, then every interval. 2 s here.
  const INTERVAL_SECONDS = 2;
  const metricsWhen = async (relay: StandinRelay, ready: (m: RelayMetrics) => boolean): Promise<RelayMetrics> => {
    const deadline = Date.now() + 4 * INTERVAL_SECONDS * 1000;
    for (;;) {
      const metrics = await readRelayMetrics(relay.kind, relay.logPath);
      if (metrics && ready(metrics)) return metrics;
      if (Date.now() > deadline) throw new Error(`no such metrics in ${relay.logPath} within ${4 * INTERVAL_SECONDS} s: ${JSON.stringify(metrics)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  /** init, then the plan's settings as the device applies them, with this test's port and a short interval. */
  const initialised = async (relay: StandinRelay, init: string[], settings: IniSetting[], port: number) => {
    const result = await relay.run(...init);
    expect(result.exitCode, result.all).toBe(0);
    const initText = await readFile(relay.iniPath, 'utf8');
    const commented = initText.split('\n').indexOf('# prometheus_interval = 60');
    expect(commented, 'init writes the key commented out (6.5.2 Init.hs, FileTransfer/Server/Main.hs)').toBeGreaterThan(-1);
    const applied = applyIni(initText, settings);
    // The device sets the key on init's commented line: the file keeps init's lines, that one now set.
    expect(applied.split('\n')[commented]).toBe(`prometheus_interval = ${RELAY_METRICS_INTERVAL_SECONDS}`);
    expect(applied.split('\n')).toHaveLength(initText.split('\n').length);
    await writeFile(relay.iniPath, applied);
    expect((await relay.parsedIni()).STORE_LOG).toHaveProperty('prometheus_interval', String(RELAY_METRICS_INTERVAL_SECONDS));
    await writeFile(relay.iniPath, applyIni(applied, [{ section: 'TRANSPORT', key: 'port', value: String(port) }, { section: 'STORE_LOG', key: 'prometheus_interval', value: String(INTERVAL_SECONDS) }]));
  };
  const plan = resolvePlan(parseRecipe('name: t\n', 'r'));

  it('SMP: after the first interval, then at each, with the counts of what was sent; after a restart, as the real counters (log_stats off)', async () => {
    const relay = await StandinRelay.create(await scratch('standin-metrics'));
    const port = await freePort();
    await initialised(relay, ['init', '-y', '--disable-web', '-n', 'example.onion'], plan.smp.instances[0]!.ini, port);
    const running = await relay.start();
    try {
      expect(running.output()).toContain(`Prometheus metrics saved every ${INTERVAL_SECONDS} seconds to ${join(relay.logPath, 'smp-server-metrics.txt')}`);
      expect(await readRelayMetrics('smp', relay.logPath), 'none before the first interval is over').toBeUndefined();
      const { socket, ask } = await relaySession(port);
      for (const [queue, text] of [['q1', 'one'], ['q1', 'two'], ['q1', 'three'], ['q2', 'four'], ['q2', 'five']]) expect(await ask(`SEND ${queue} ${text}`)).toMatch(/^OK /);
      socket.destroy();
      const first = await metricsWhen(relay, (m) => m.values.simplex_smp_messages_sent === 5);
      expect(first.values).toMatchObject({
        simplex_smp_queues_created: 2,
        simplex_smp_queues_total1: 2,
        simplex_smp_queues_total2: 2,
        simplex_smp_messages_sent: 5,
        simplex_smp_messages_received: 0,
        simplex_smp_messages_total: 5,
        'simplex_smp_info{version="6.5.2.0",rts_options="set SMP_RTS_OPTIONS"}': 1,
      });
      expect(summariseMetrics('smp', first).line).toMatch(/^2 queues, 5 messages waiting, 5 sent and 0 received since \d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
      // The real layout: header, HELP and TYPE, the sample with its millisecond timestamp, the field's comment.
      const text = await readFile(join(relay.logPath, 'smp-server-metrics.txt'), 'utf8');
      expect(text).toMatch(/^# Recorded at: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\n# Stats from: \S+Z\n\n# Queues\n# ------\n\n/);
      expect(text).toMatch(/\n# HELP simplex_smp_messages_total Total number of messages stored\.\n# TYPE simplex_smp_messages_total gauge\nsimplex_smp_messages_total 5 \d{13}\n# msgCount\n\n/);
      // Rewritten at the interval.
      const second = await metricsWhen(relay, (m) => m.at !== first.at);
      const gap = (Date.parse(second.at) - Date.parse(first.at)) / 1000;
      expect(gap).toBeGreaterThan(INTERVAL_SECONDS * 0.5);
      expect(gap).toBeLessThan(INTERVAL_SECONDS * 2);
    } finally {
      running.process.kill('SIGINT');
      await running.process;
    }
    // The real counters start again at 0 without saved stats: the 5 restored messages are in the store (total2,
    // COUNT) but not in simplex_smp_messages_total or total1 until the relay's own expiry check resets them.
    const restartedAt = Date.now();
    const again = await relay.start();
    try {
      expect(again.output()).toContain('messages stored: 5');
      // Nothing removes the last run's file: until the first interval is over it is there, older than the start.
      expect(Date.parse((await readRelayMetrics('smp', relay.logPath))!.at)).toBeLessThan(restartedAt);
      const restarted = await metricsWhen(relay, (m) => Date.parse(m.at) > restartedAt);
      expect(restarted.values).toMatchObject({ simplex_smp_queues_total1: 0, simplex_smp_messages_total: 0, simplex_smp_messages_sent: 0 });
      expect(summariseMetrics('smp', restarted).numbers.queues).toBe(2);
    } finally {
      again.process.kill('SIGKILL');
      await again.process;
    }
  });

  it('XFTP: file chunks created and uploaded, counted as the real relay counts them', async () => {
    const relay = await StandinRelay.create(await scratch('standin-metrics-xftp'), 'xftp');
    const port = await freePort();
    const files = join(await scratch('standin-metrics-files'), 'files');
    await mkdir(files);
    await initialised(relay, ['init', '-p', files, '-q', '1gb', '-n', 'example.onion'], plan.xftp!.ini, port);
    const running = await relay.start();
    try {
      const { socket, ask } = await relaySession(port, 'xftp/1');
      const uploaded = (await ask('FNEW -')).split(' ')[1]!;
      expect(await ask('FNEW -')).toMatch(/^OK /); // created, never uploaded
      expect(await ask(`FPUT ${uploaded} 65536`)).toBe('OK');
      expect(await ask(`FPUT ${uploaded} 65536`)).toBe('OK'); // already uploaded: not counted again
      expect(await ask('FPUT nosuchfile 65536')).toBe('ERR AUTH');
      socket.destroy();
      const metrics = await metricsWhen(relay, (m) => m.values.simplex_xftp_files_created === 2);
      expect(metrics.values).toMatchObject({ simplex_xftp_files_created: 2, simplex_xftp_files_uploaded: 1, simplex_xftp_files_count_total: 1, simplex_xftp_files_size: 65536 });
      expect(summariseMetrics('xftp', metrics).line).toMatch(/^1 file chunk uploaded and net \+1 \(\+64\.0 KiB\) stored since /);
    } finally {
      running.process.kill('SIGKILL');
      await running.process;
    }
  });
});
