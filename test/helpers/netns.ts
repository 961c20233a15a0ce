import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ResultPromise, execa } from 'execa';
import { RESOLVED_USER, TIMESYNC_USER, TOR_USER } from '../../builder/plan/layout.ts';
import { scratch } from './env.ts';

/**
 * Network namespaces for firewall tests: the rendered ruleset loaded by the real nft into a namespace of its own,
 * and real programs sending from it as the image's users. Nothing a test sends can leave the machine: the
 * namespaces are joined only to each other.
 */

/** Every account the firewall may name (image/firewall-users.ts): the ones a test image has or lacks. */
export const FIREWALL_ACCOUNTS = [TOR_USER, TIMESYNC_USER, RESOLVED_USER];

/**
 * An /etc/passwd standing in for an image's, as far as the firewall is concerned: this machine's accounts, less
 * the firewall's accounts the image is not to have, plus those it is to have and this machine lacks (with unused
 * uids). nft reads it when it loads a ruleset (`asImage`); `uids` says who is who, for `setpriv`.
 */
export async function imagePasswd(users: readonly string[]): Promise<{ path: string; uids: Map<string, number> }> {
  const host = (await readFile('/etc/passwd', 'utf8')).split('\n').filter(Boolean);
  const lines = host.filter((line) => {
    const name = line.split(':')[0]!;
    return !FIREWALL_ACCOUNTS.includes(name) || users.includes(name);
  });
  const taken = new Set(host.map((line) => Number(line.split(':')[2])));
  let next = 900;
  for (const user of users) {
    if (lines.some((line) => line.startsWith(`${user}:`))) continue;
    while (taken.has(next)) next++;
    taken.add(next);
    lines.push(`${user}:x:${next}:${next}:stand-in for the image's account:/nonexistent:/usr/sbin/nologin`);
  }
  const path = join(await scratch('passwd'), 'passwd');
  await writeFile(path, `${lines.join('\n')}\n`);
  return { path, uids: new Map(lines.map((line) => [line.split(':')[0]!, Number(line.split(':')[2])])) };
}

/** `argv`, run with `passwd` in place of /etc/passwd (in a mount namespace of its own: this machine's is untouched). */
export function asImage(passwd: string, argv: readonly string[]): string[] {
  return ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount --bind "$0" /etc/passwd && exec "$@"', passwd, ...argv];
}

/**
 * `argv` in the network namespace `name` (made by `ip netns add`) and in nothing else of its own. Not `ip netns
 * exec`: that also gives the command a copy of this machine's mounts, and a long-lived copy (a tor of the suite's
 * network, for a whole test file) keeps alive whatever another test file's build had mounted at that moment: its
 * image's loop device then never goes (builder/image/loop.ts waitForLoopsReleased), and that build fails.
 */
export function inNetns(name: string, argv: readonly string[]): string[] {
  return ['nsenter', `--net=/run/netns/${name}`, '--', ...argv];
}

/** Namespaces an earlier test process made and could not delete (it was killed): named after a process now gone. */
async function removeOrphans(): Promise<void> {
  const { stdout } = await execa('ip', ['netns', 'list']);
  for (const name of String(stdout).split('\n').map((line) => line.split(' ')[0]!)) {
    const pid = /^spi-[a-z]+-(\d+)$/.exec(name)?.[1];
    if (!pid || Number(pid) === process.pid) continue;
    try {
      process.kill(Number(pid), 0);
    } catch {
      await execa('ip', ['netns', 'delete', name], { reject: false });
    }
  }
}

export class Netns {
  private constructor(readonly name: string) {}

  static async create(label: string): Promise<Netns> {
    await removeOrphans();
    const ns = new Netns(`spi-${label}-${process.pid}`);
    await execa('ip', ['netns', 'add', ns.name]);
    await ns.run(['ip', 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** `argv` in this namespace; with `uid`, as that user (and its group of the same number), with no other groups. */
  run(argv: readonly string[], options: { uid?: number; reject?: boolean } = {}) {
    const [command, ...args] = inNetns(this.name, this.as(argv, options.uid));
    return execa(command!, args, { reject: options.reject ?? true, all: true });
  }

  spawn(argv: readonly string[], options: { uid?: number } = {}): ResultPromise<{ all: true; reject: false; buffer: false }> {
    const [command, ...args] = inNetns(this.name, this.as(argv, options.uid));
    return execa(command!, args, { all: true, reject: false, buffer: false });
  }

  private as(argv: readonly string[], uid?: number): string[] {
    return uid === undefined ? [...argv] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', ...argv];
  }

  async delete(): Promise<void> {
    await execa('ip', ['netns', 'delete', this.name], { reject: false });
  }
}

/** Two namespaces joined by a veth pair (`va` in the first, `vb` in the second), each address added as given. */
export async function link(a: Netns, b: Netns, addresses: { a: string[]; b: string[] }): Promise<void> {
  await execa('ip', ['link', 'add', 'va', 'netns', a.name, 'type', 'veth', 'peer', 'name', 'vb', 'netns', b.name]);
  for (const [ns, dev, list] of [[a, 'va', addresses.a], [b, 'vb', addresses.b]] as const) {
    // nodad: an IPv6 address is usable at once, rather than after duplicate address detection.
    for (const address of list) await ns.run(['ip', 'address', 'add', address, 'dev', dev, ...(address.includes(':') ? ['nodad'] : [])]);
    await ns.run(['ip', 'link', 'set', dev, 'up']);
  }
}

/**
 * What a program does on the network, run with Node in a namespace: `tcp HOST PORT [SOURCE]` connects and prints
 * `connected`, the error code (ECONNREFUSED: the firewall's reject, or no listener) or `timeout`; `udp HOST PORT
 * [SOURCE_PORT]` sends one datagram and prints `sent` or the error code (EPERM: the firewall refused it; EACCES:
 * the source port is privileged).
 */
const PROBE = `
const net = require('node:net'), dgram = require('node:dgram');
const [kind, host, port, source] = process.argv.slice(1);
const done = (what) => { console.log(what); process.exit(0); };
if (kind === 'tcp') {
  const s = net.connect({ host, port: Number(port), ...(source ? { localAddress: source } : {}) });
  setTimeout(() => done('timeout'), 1500);
  s.on('connect', () => done('connected'));
  s.on('error', (e) => done(e.code));
} else {
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  s.on('error', (e) => done(e.code));
  const send = () => s.send('probe', Number(port), host, (e) => done(e ? e.code : 'sent'));
  if (source) s.bind(Number(source), send); else send();
}
`;

export async function probe(ns: Netns, args: string[], uid?: number): Promise<string> {
  return String((await ns.run([process.execPath, '-e', PROBE, ...args], { uid })).stdout).trim();
}

/**
 * Listens in a namespace on TCP and UDP `ports` of every address, IPv4 and IPv6, and keeps what arrived: the
 * other side of a probe, so a test sees a packet get through rather than only not being refused.
 */
const LISTENER = `
const net = require('node:net'), dgram = require('node:dgram');
const ports = process.argv.slice(1).map(Number);
let pending = ports.length * 2;
const ready = () => { if (--pending === 0) console.log('ready'); };
for (const port of ports) {
  net.createServer((c) => { console.log(JSON.stringify({ proto: 'tcp', port, from: c.remoteAddress })); c.destroy(); }).listen({ port, host: '::' }, ready);
  const u = dgram.createSocket({ type: 'udp6', ipv6Only: false });
  u.on('message', (m, r) => console.log(JSON.stringify({ proto: 'udp', port, from: r.address })));
  u.bind({ port, address: '::' }, ready);
}
`;

export class Listener {
  readonly arrived: Array<{ proto: string; port: number; from: string }> = [];
  private constructor(private readonly child: ReturnType<Netns['spawn']>) {}

  static async start(ns: Netns, ports: number[]): Promise<Listener> {
    const child = ns.spawn([process.execPath, '-e', LISTENER, ...ports.map(String)]);
    const listener = new Listener(child);
    await new Promise<void>((resolve, reject) => {
      let buffer = '';
      child.all.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        let at: number;
        while ((at = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, at);
          buffer = buffer.slice(at + 1);
          if (line === 'ready') resolve();
          else if (line.startsWith('{')) listener.arrived.push(JSON.parse(line));
        }
      });
      child.then((r) => reject(new Error(`the listener ended: ${r.all ?? ''}`)), reject);
    });
    return listener;
  }

  /** What arrived on `proto`/`port`, after a moment for it to be read. */
  async got(proto: string, port: number): Promise<string[]> {
    await new Promise((resolve) => setTimeout(resolve, 200));
    return this.arrived.filter((a) => a.proto === proto && a.port === port).map((a) => a.from.replace(/^::ffff:/, ''));
  }

  async stop(): Promise<void> {
    this.child.kill('SIGTERM');
    await this.child;
  }
}

/** The packets each rule of `chain` has counted, by the rule's comment (every rule that matters has one). */
export async function counters(ns: Netns, table: string, chain: string): Promise<Map<string, number>> {
  const { stdout } = await ns.run(['nft', '--json', 'list', 'chain', 'inet', table, chain]);
  const out = new Map<string, number>();
  for (const item of JSON.parse(String(stdout)).nftables as Array<{ rule?: { comment?: string; expr: Array<{ counter?: { packets: number } }> } }>) {
    const rule = item.rule;
    const counter = rule?.expr.find((e) => e.counter)?.counter;
    if (rule?.comment && counter) out.set(rule.comment, counter.packets);
  }
  return out;
}
