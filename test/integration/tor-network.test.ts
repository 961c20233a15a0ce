import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base32 } from '../../builder/device/onion.ts';
import { fetchThroughTor } from '../../builder/device/fetch-through-tor.ts';
import { probeService, socksConnect } from '../../builder/device/relay-probe.ts';
import { AptRepo, type Suite, makeDeb } from '../helpers/apt-repo.ts';
import { authPrivateLine } from '../../builder/plan/layout.ts';
import { REPO, freePort, isRoot, scratch } from '../helpers/env.ts';
import { type RunningRelay, StandinRelay } from '../helpers/standin-relay.ts';
import { SERVED_PORT, TorNetwork } from '../helpers/tor-network.ts';

/**
 * The private Tor network the VM tests join (issue 15): real tors in testing mode, with authorities made by
 * tor-gencert, in a namespace that rejects and counts every packet to anywhere but loopback and its own subnet.
 * What it must show before anything builds on it: onion services published on it are reached from the host, through
 * a client's SOCKS socket, by the same probe the watchdog uses; the probe's failures mean what they say; client
 * authorization is enforced; and no tor ever tried to reach the world.
 */

const onPath = (program: string) => (process.env.PATH ?? '').split(delimiter).some((dir) => existsSync(join(dir, program)));

const TEST_SUITE: Suite = { name: 'test', origin: 'simplex-pi-test', label: 'simplex-pi-test', suite: 'test', codename: 'test', description: 'TEST FIXTURE' };

/** The port an SMP relay's onion service offers (the address carries no port, so apps use this one). */
const SMP_PORT = 5223;

/** An x25519 client authorization key pair in Tor's base32 (as builder/device/client-auth.ts makes them). */
function clientKey(): { publicKey: string; privateKey: string } {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  const raw = (key: typeof publicKey, field: 'x' | 'd') => Buffer.from(key.export({ format: 'jwk' })[field]!, 'base64url');
  return { publicKey: base32(raw(publicKey, 'x')).toUpperCase(), privateKey: base32(raw(privateKey, 'd')).toUpperCase() };
}

describe.runIf(isRoot && onPath('tor') && onPath('tor-gencert'))('a private Tor network in a network namespace', () => {
  let net: TorNetwork;
  let relay: StandinRelay;
  let running: RunningRelay | undefined;
  let relayPort: number;
  let fingerprint: string;
  let onion: string;
  let client: { socks: { path: string }; stop(): Promise<void> };

  const startRelay = async () => {
    running = await relay.start({ netns: net.netns });
  };
  const stopRelay = async () => {
    running?.process.kill('SIGTERM');
    await running?.process;
    running = undefined;
  };

  beforeAll(async () => {
    net = await TorNetwork.create(await scratch('tor-network'));
    await net.start();
    console.log(`private Tor network: 6 relays in consensus and a client bootstrapped in ${net.bootstrapSeconds.toFixed(1)} s`);
  }, 5 * 60_000);

  afterAll(async () => {
    await stopRelay();
    await net?.stop();
  });

  it('bootstraps: every relay in the consensus with its flags, and a client at 100%', () => {
    expect(net.bootstrapSeconds).toBeGreaterThan(0);
    expect(net.clientTorrc).toMatch(/^TestingTorNetwork 1$/m);
    expect(net.clientTorrc.match(/^DirAuthority .* v3ident=[0-9A-F]{40} 10\.66\.0\.1:\d+ [0-9A-F]{40}$/gm)).toHaveLength(3);
    // What a VM is given: every relay's ORPort and DirPort at the one address.
    expect(net.vmNetwork()).toMatchObject({ netns: net.netns, address: '10.66.0.1', ports: expect.arrayContaining([5001, 7001, 5006, 7006]) });
  });

  it('reaches a stand-in SMP relay behind an onion service from the host, through the client\'s SOCKS socket', { timeout: 3 * 60_000 }, async () => {
    relayPort = await freePort();
    const service = await net.onionService('smp', [{ virtualPort: SMP_PORT, localPort: relayPort }]);
    onion = service.hostname;
    expect(onion).toMatch(/^[a-z2-7]{56}\.onion$/);

    relay = await StandinRelay.create(await scratch('tor-network-relay'));
    const init = await relay.run('init', '-y', '--disable-web', '-n', onion);
    expect(init.exitCode, init.all).toBe(0);
    fingerprint = /^Fingerprint: (\S+)$/m.exec(String(init.stdout))?.[1] ?? '';
    expect(fingerprint, init.all).not.toBe('');
    await writeFile(relay.iniPath, (await readFile(relay.iniPath, 'utf8')).replace(/^port = .*$/m, `port = ${relayPort}`));
    await startRelay();

    client = await net.client('probe');
    const target = { kind: 'smp' as const, host: onion, port: SMP_PORT, fingerprint };
    const reached = await probeService(target, client.socks);
    expect(reached, JSON.stringify(reached)).toMatchObject({ ok: true });
    console.log(`private Tor network: onion service probed in ${reached.ms} ms (${reached.ok ? reached.detail : ''})`);

    // Controls: the probe fails, at the stage that names the cause, when the identity or the relay is not there.
    const wrong = await probeService({ ...target, fingerprint: Buffer.alloc(32, 7).toString('base64url') }, client.socks);
    expect(wrong, JSON.stringify(wrong)).toMatchObject({ ok: false, stage: 'identity' });

    // The onion service's tor cannot connect to the relay's port; the client's tor answers SOCKS 1 (general
    // failure) rather than 5 (refused): the service's reason does not reach the client of an onion service.
    await stopRelay();
    const stopped = await probeService(target, client.socks);
    expect(stopped, JSON.stringify(stopped)).toMatchObject({ ok: false, stage: 'socks' });
    expect(stopped.ok ? '' : stopped.error).toMatch(/general failure/);
    console.log(`private Tor network: with the relay stopped: ${stopped.ok ? '' : stopped.error}`);

    await startRelay();
    const again = await probeService(target, client.socks);
    expect(again, JSON.stringify(again)).toMatchObject({ ok: true });
  });

  it('admits to an onion service with client authorization only a client holding an authorized key', { timeout: 3 * 60_000 }, async () => {
    expect(running, 'the relay of the test before').toBeDefined();
    const key = clientKey();
    const service = await net.onionService('smp-auth', [{ virtualPort: SMP_PORT, localPort: relayPort }], { authorizedClients: [key.publicKey] });
    const target = { kind: 'smp' as const, host: service.hostname, port: SMP_PORT, fingerprint };

    const refused = await probeService(target, client.socks);
    expect(refused, JSON.stringify(refused)).toMatchObject({ ok: false, stage: 'socks' });
    expect(refused.ok ? '' : refused.error).toMatch(/needs client authorization/);

    const authDir = join(await scratch('tor-network-auth'), 'onion-auth');
    await mkdir(authDir, { mode: 0o700 });
    await writeFile(join(authDir, 'smp-auth.auth_private'), authPrivateLine(service.hostname, key.privateKey), { mode: 0o600 });
    const authorized = await net.client('authorized', { authDir });
    try {
      const admitted = await probeService(target, authorized.socks);
      expect(admitted, JSON.stringify(admitted)).toMatchObject({ ok: true });
    } finally {
      await authorized.stop();
    }

    // Control: a key the service does not list is refused too (the right key above was not merely any key).
    const otherDir = join(await scratch('tor-network-auth'), 'onion-auth');
    await mkdir(otherDir, { mode: 0o700 });
    await writeFile(join(otherDir, 'smp-auth.auth_private'), authPrivateLine(service.hostname, clientKey().privateKey), { mode: 0o600 });
    const stranger = await net.client('stranger', { authDir: otherDir });
    try {
      const denied = await probeService(target, stranger.socks, 30_000);
      expect(denied, JSON.stringify(denied)).toMatchObject({ ok: false, stage: 'socks' });
      console.log(`private Tor network: with a key the service does not list: ${denied.ok ? '' : denied.error}`);
    } finally {
      await stranger.stop();
    }
  });

  it('carries a server that speaks first (SSH\'s banner) through SOCKS whole: the probe reads the banner, and the ProxyCommand the VM test gives ssh is a clean stream both ways', { timeout: 3 * 60_000 }, async () => {
    // In the namespace: sends an SSH identification line at once (often in the packet that carries Tor's reply),
    // then echoes every line back.
    const port = await freePort();
    const server = execa('nsenter', [`--net=/run/netns/${net.netns}`, '--', process.execPath, '-e', `
      require('node:net').createServer((c) => { c.write('SSH-2.0-OpenSSH_9.2p1 test\\r\\n'); c.pipe(c); }).listen(${port}, '127.0.0.1', () => console.log('ready'));
    `], { reject: false, all: true });
    try {
      await new Promise<void>((resolve) => server.all!.on('data', (d: Buffer) => /ready/.test(d.toString()) && resolve()));
      const service = await net.onionService('ssh-like', [{ virtualPort: 22, localPort: port }]);
      const banner = await probeService({ kind: 'ssh', host: service.hostname, port: 22 }, client.socks);
      expect(banner, JSON.stringify(banner)).toMatchObject({ ok: true, detail: 'SSH-2.0-OpenSSH_9.2p1 test' });
      // As ssh runs it: stdin stays open; what it reads first is the banner, and what it writes comes back.
      const pipe = execa(process.execPath, ['--import', 'tsx', join(REPO, 'test/helpers/socks-pipe.ts'), client.socks.path, service.hostname, '22'], { reject: false, buffer: false });
      let received = '';
      pipe.stdout!.on('data', (d: Buffer) => (received += d.toString()));
      for (let i = 0; i < 300 && !received.includes('\r\n'); i++) await new Promise((resolve) => setTimeout(resolve, 100));
      pipe.stdin!.write('ping\n');
      for (let i = 0; i < 300 && !received.includes('ping'); i++) await new Promise((resolve) => setTimeout(resolve, 100));
      pipe.kill('SIGTERM');
      await pipe;
      expect(received.split('\r\n')[0]).toBe('SSH-2.0-OpenSSH_9.2p1 test');
      expect(received).toContain('ping\n');
    } finally {
      server.kill('SIGTERM');
      await server;
    }
  });

  it('fetches a file over HTTP through Tor, as `simplex-pi update --from URL` does from an onion mirror: redirects followed, errors named, a size limit kept', { timeout: 4 * 60_000 }, async () => {
    // A web server on the namespace's loopback, published only as an onion service of the network.
    const body = randomBytes(300_000);
    const file = join(await scratch('fetch'), 'bundle.tar');
    await writeFile(file, body);
    const port = await freePort();
    const server = execa('nsenter', [`--net=/run/netns/${net.netns}`, '--', process.execPath, '-e', `
      const bytes = require('node:fs').readFileSync(${JSON.stringify(file)});
      require('node:http').createServer((req, res) => {
        if (req.url === '/latest') { res.writeHead(302, { location: '/releases/bundle.tar' }); res.end(); }
        else if (req.url === '/releases/bundle.tar') { res.writeHead(200, { 'content-length': bytes.length }); res.end(bytes); }
        else { res.writeHead(404); res.end('not here'); }
      }).listen(${port}, '127.0.0.1', () => console.log('ready'));
    `], { reject: false, all: true });
    await new Promise<void>((resolve) => server.all!.on('data', (d: Buffer) => /ready/.test(d.toString()) && resolve()));
    const mirror = await net.onionService('mirror', [{ virtualPort: 80, localPort: port }]);
    const fetcher = await net.client('fetch');
    try {
      const options = { socks: fetcher.socks, maxBytes: 1024 * 1024, timeoutMs: 120_000 };
      const fetched = await fetchThroughTor(`http://${mirror.hostname}/latest`, options);
      expect(fetched.equals(body)).toBe(true);
      await expect(fetchThroughTor(`http://${mirror.hostname}/missing`, options)).rejects.toThrow(/answered HTTP 404/);
      await expect(fetchThroughTor(`http://${mirror.hostname}/latest`, { ...options, maxBytes: 100_000 })).rejects.toThrow(/larger than 100000 bytes/);
      // An onion nobody publishes fails at Tor, named: there is no other way out.
      await expect(fetchThroughTor(`http://${'a'.repeat(52)}aaad.onion/bundle.tar`, { ...options, timeoutMs: 60_000 })).rejects.toThrow(/cannot reach .* through Tor/);
    } finally {
      await fetcher.stop();
      await mirror.stop();
      server.kill('SIGTERM');
      await server;
    }
  });

  it("carries a client's stream through the exit to a server on the network's own address (how the VM test's apt repository is reached), and to nothing else", { timeout: 3 * 60_000 }, async () => {
    const repo = await AptRepo.create(join(await scratch('apt-repo'), 'repo'));
    await repo.publish(TEST_SUITE, [await makeDeb(repo.dir, 'simplex-pi-test-pkg', '1.0')]);
    const port = SERVED_PORT;
    await repo.serve(net.netns, net.address, port);
    const apt = await net.client('apt');
    try {
      const get = async (host: string, to = port) => {
        const socket = await socksConnect(apt.socks, host, to);
        return new Promise<string>((resolve) => {
          let reply = '';
          socket.on('data', (d: Buffer) => (reply += d.toString()));
          socket.on('close', () => resolve(reply));
          socket.write(`GET /dists/${TEST_SUITE.name}/Release HTTP/1.0\r\nHost: ${host}\r\n\r\n`);
        });
      };
      const reply = await get(net.address);
      expect(reply).toMatch(/^HTTP\/1\.1 200/);
      expect(reply).toContain('Label: simplex-pi-test');
      expect(repo.requests).toContain(`GET /dists/${TEST_SUITE.name}/Release`);
      // Another port no exit's policy admits outside the subnet: the client refuses it itself.
      await expect(get('192.0.2.1', 443)).rejects.toThrow();
    } finally {
      await Promise.all([repo.stop(), apt.stop()]);
    }
  });

  // Last: the control makes the counter rise.
  it('contacted nothing outside loopback and its own subnet; the counter that says so counts', async () => {
    expect(await net.outsideContacts()).toBe(0);

    const script = `
      const net = require('node:net');
      const s = net.connect({ host: process.argv[1], port: 443 });
      s.on('connect', () => { console.log('connected'); process.exit(0); });
      s.on('error', (e) => { console.log(e.code); process.exit(0); });
      setTimeout(() => { console.log('timeout'); process.exit(0); }, 3000);
    `;
    for (const host of ['192.0.2.1', '2001:db8::1']) {
      const { stdout } = await execa('nsenter', [`--net=/run/netns/${net.netns}`, '--', process.execPath, '-e', script, host]);
      expect(String(stdout).trim(), host).toBe('ECONNREFUSED');
    }
    expect(await net.outsideContacts()).toBeGreaterThanOrEqual(2);
  });
});
