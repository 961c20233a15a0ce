import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { type Socket, createConnection } from 'node:net';
import { join } from 'node:path';
import { type ResultPromise, execa } from 'execa';
import { AUTHORIZED_CLIENTS, authorizedClientLine } from '../../builder/plan/layout.ts';
import { Netns, inNetns } from './netns.ts';

/**
 * A private Tor network for the tests (issue 15): three directory authorities made by tor-gencert and three more
 * relays, all in Tor's testing mode and all on one address of a network namespace the test makes. Onion services,
 * clients and the VM's Tor join it; nothing reaches the public Tor network or anything outside loopback and the
 * namespace's own subnet. The namespace's nftables table counts and rejects every packet to anywhere else, so a
 * test proves that as well as assumes it.
 *
 * Every tor runs in the namespace (`nsenter --net`, netns.ts inNetns says why), as root, with `__OwningControllerProcess` naming this test
 * process: a tor outlives neither stop() nor a test process killed outright (tor checks every few
 * seconds and exits), and execa kills the children of a test process that exits any other way.
 */

const ADDRESS = '10.66.0.1';
const SUBNET = '10.66.0.0/24';
/** A veth pair with both ends in the namespace stands in for a dummy interface (this kernel has no dummy driver). */
const LINK = ['tornet0', 'tornet1'] as const;
const TABLE = 'spi_tor_network';
/** The port a service the tests run in the namespace listens on, for clients to reach through the network's exit. */
export const SERVED_PORT = 8480;
const OUTSIDE = 'outside';

/**
 * Consensus timing as chutney's "rapid bootstrap" networks have it: a vote every 20 s, from the first one on
 * (testing mode's defaults would wait 150 s for the first consensus).
 */
const VOTING = { interval: 20, voteDelay: 4, distDelay: 4 };

type Role = 'authority' | 'relay' | 'exit';

interface NodeSpec {
  nick: string;
  role: Role;
  orPort: number;
  dirPort: number;
  home: string;
  fingerprint: string;
  /** Authorities only: the v3 identity of the certificate tor-gencert made. */
  v3ident?: string;
}

const NODES: Array<{ nick: string; role: Role }> = [
  { nick: 'auth1', role: 'authority' },
  { nick: 'auth2', role: 'authority' },
  { nick: 'auth3', role: 'authority' },
  { nick: 'relay1', role: 'relay' },
  { nick: 'relay2', role: 'relay' },
  { nick: 'exit1', role: 'exit' },
];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The last `lines` lines of a file, or why there are none. */
async function tail(path: string, lines = 25): Promise<string> {
  const text = await readFile(path, 'utf8').catch((error: Error) => `(no log: ${error.message})`);
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** One tor process in the namespace, with its own directory (torrc, log, control socket, DataDirectory `data`). */
class TorProcess {
  private ended = false;
  private constructor(
    readonly name: string,
    readonly home: string,
    private readonly child: ResultPromise<{ reject: false; all: true }>,
  ) {
    void child.then(() => (this.ended = true));
  }

  static async spawn(netns: string, name: string, home: string, torrc: string): Promise<TorProcess> {
    await writeFile(join(home, 'torrc'), torrc);
    // --defaults-torrc: nothing from this machine's own Tor configuration joins in.
    const [command, ...args] = inNetns(netns, ['tor', '--defaults-torrc', '/dev/null', '-f', join(home, 'torrc')]);
    const child = execa(command!, args, { reject: false, all: true });
    return new TorProcess(name, home, child);
  }

  get log(): string {
    return join(this.home, 'tor.log');
  }

  get control(): string {
    return join(this.home, 'control');
  }

  get exited(): boolean {
    return this.ended;
  }

  /** What went wrong, for an error message: the log's tail, and what tor printed before it had a log. */
  async report(lines = 25): Promise<string> {
    const early = this.ended ? `\n  (tor exited: ${(await this.child).all?.toString().trim().split('\n').slice(-5).join('\n  ')})` : '';
    return `--- ${this.name} (${this.log})${early}\n${await tail(this.log, lines)}`;
  }

  async stop(): Promise<void> {
    if (this.ended) return;
    this.child.kill('SIGTERM');
    const killed = await Promise.race([this.child.then(() => true), sleep(10_000).then(() => false)]);
    if (!killed) {
      this.child.kill('SIGKILL');
      await this.child;
    }
  }
}

/**
 * Tor's control protocol on a ControlSocket, as far as the tests need it: commands one at a time, and the
 * asynchronous events (650) handed to whoever listens.
 */
class Control {
  private buffer = '';
  private reply: string[] = [];
  private inData = false;
  private pending: Array<{ resolve: (lines: string[]) => void; reject: (error: Error) => void }> = [];
  private readonly listeners: Array<(event: string) => void> = [];

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.receive(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('the control connection closed')));
  }

  /** Connects once tor has made the socket (while `alive` says tor still runs), and authenticates. */
  static async open(path: string, alive: () => boolean, deadline: number): Promise<Control> {
    while (!(await access(path).then(() => true, () => false))) {
      if (!alive()) throw new Error(`tor exited before it made its control socket ${path}`);
      if (Date.now() > deadline) throw new Error(`tor made no control socket ${path} in time`);
      await sleep(100);
    }
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection({ path });
      s.once('connect', () => resolve(s)).once('error', reject);
    });
    const control = new Control(socket);
    // No cookie and no password configured: the socket's file permissions are the only guard, as Tor allows.
    await control.send('AUTHENTICATE');
    return control;
  }

  onEvent(listener: (event: string) => void): void {
    this.listeners.push(listener);
  }

  /** One command; resolves with its reply lines, rejects on a reply other than 250. */
  send(command: string): Promise<string[]> {
    return new Promise((resolve, reject) => {
      this.pending.push({
        resolve: (lines) => (lines.at(-1)?.startsWith('250 ') ? resolve(lines) : reject(new Error(`tor refused "${command}": ${lines.join(' / ')}`))),
        reject,
      });
      this.socket.write(`${command}\r\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    for (let at = this.buffer.indexOf('\r\n'); at !== -1; at = this.buffer.indexOf('\r\n')) {
      const line = this.buffer.slice(0, at);
      this.buffer = this.buffer.slice(at + 2);
      if (this.inData) {
        if (line === '.') this.inData = false;
        else this.reply.push(line);
      } else if (line.startsWith('650')) {
        for (const listener of this.listeners) listener(line.slice(4));
      } else {
        this.reply.push(line);
        if (/^\d{3}\+/.test(line)) this.inData = true;
        else if (/^\d{3} /.test(line)) this.pending.shift()?.resolve(this.reply.splice(0));
      }
    }
  }

  private fail(error: Error): void {
    for (const waiting of this.pending.splice(0)) waiting.reject(error);
  }
}

/** Waits for `check` to return a value, failing when `deadline` passes or one of `processes` exits meanwhile. */
async function until<T>(what: string | (() => string), deadline: number, processes: TorProcess[], check: () => Promise<T | undefined>): Promise<T> {
  let lastError: Error | undefined;
  for (;;) {
    // A check that fails (a control connection closed by a tor that died) is reported with the logs, below.
    const value = await check().catch((error: Error) => void (lastError = error));
    if (value !== undefined) return value;
    const dead = processes.filter((p) => p.exited);
    if (dead.length || Date.now() > deadline) {
      const reason = `${dead.length ? `${dead.map((p) => p.name).join(', ')} exited` : 'timed out'}${lastError ? ` (last: ${lastError.message})` : ''}`;
      const reports = await Promise.all(processes.map((p) => p.report()));
      throw new Error(`private Tor network: ${typeof what === 'string' ? what : what()}: ${reason}\n${reports.join('\n')}`);
    }
    await sleep(500);
  }
}

/** The relays a consensus lists, by nickname, with their flags. */
function consensusFlags(consensus: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  let nick: string | undefined;
  for (const line of consensus.split('\n')) {
    if (line.startsWith('r ')) nick = line.split(' ')[1];
    else if (line.startsWith('s ') && nick) out.set(nick, new Set(line.slice(2).split(' ')));
  }
  return out;
}

/** The flags each relay of this network must have before clients can rely on it. */
function flagsMissing(flags: Map<string, Set<string>>, nodes: NodeSpec[]): string[] {
  const missing: string[] = [];
  for (const node of nodes) {
    const want = ['Running', 'Valid', 'Guard', 'HSDir', ...(node.role === 'exit' ? ['Exit'] : [])];
    const has = flags.get(node.nick);
    const lacking = want.filter((flag) => !has?.has(flag));
    if (lacking.length) missing.push(`${node.nick}: ${has ? lacking.join(' ') : 'not listed'}`);
  }
  return missing;
}

export class TorNetwork {
  readonly address = ADDRESS;
  readonly clientTorrc: string;
  private seconds = Number.NaN;
  private readonly processes = new Set<TorProcess>();
  private stopped?: Promise<void>;

  private constructor(
    private readonly dir: string,
    private readonly ns: Netns,
    private readonly nodes: NodeSpec[],
  ) {
    this.clientTorrc = clientTorrc(nodes);
  }

  /** From start() to a client's bootstrap at 100%. */
  get bootstrapSeconds(): number {
    return this.seconds;
  }

  get netns(): string {
    return this.ns.name;
  }

  static async create(dir: string): Promise<TorNetwork> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const ns = await Netns.create('tor');
    try {
      await isolate(ns, dir);
      const nodes: NodeSpec[] = [];
      for (const [i, { nick, role }] of NODES.entries()) nodes.push(await makeKeys(ns, dir, nick, role, i));
      // Relays' DNS (an exit resolves for its clients) goes to loopback, not to this machine's resolvers.
      await writeFile(join(dir, 'resolv.conf'), 'nameserver 127.0.0.1\n');
      return new TorNetwork(dir, ns, nodes);
    } catch (error) {
      await ns.delete();
      throw error;
    }
  }

  async start(timeoutMs = 4 * 60_000): Promise<void> {
    const started = Date.now();
    const deadline = started + timeoutMs;
    const relays: TorProcess[] = [];
    for (const node of this.nodes) relays.push(await this.spawn(node.nick, node.home, relayTorrc(node, this.nodes, this.dir)));
    const consensus = join(this.nodes[0]!.home, 'data', 'cached-consensus');
    let missing: string[] = [];
    const what = () => `the consensus did not list every relay with the flags it needs (${consensus}; missing: ${missing.join(', ') || 'no consensus yet'})`;
    await until(what, deadline, relays, async () => {
      const text = await readFile(consensus, 'utf8').catch(() => undefined);
      if (text === undefined) return undefined;
      missing = flagsMissing(consensusFlags(text), this.nodes);
      return missing.length ? undefined : true;
    });
    const client = await this.client('bootstrap', {}, Math.max(deadline - Date.now(), 1000));
    await client.stop();
    this.seconds = (Date.now() - started) / 1000;
  }

  async client(name: string, options: { authDir?: string } = {}, timeoutMs = 2 * 60_000): Promise<{ socks: { path: string }; stop(): Promise<void> }> {
    const home = await this.home(name);
    const socks = join(home, 'socks');
    const torrc = [
      this.clientTorrc,
      ...ownFiles(home),
      `SocksPort unix:${socks} ExtendedErrors`,
      ...(options.authDir ? [`ClientOnionAuthDir ${options.authDir}`] : []),
      '',
    ].join('\n');
    const tor = await this.startReady(name, home, torrc, timeoutMs, (control, deadline, tor) =>
      until(`client ${name} did not bootstrap`, deadline, [tor], async () => {
        const reply = await control.send('GETINFO status/bootstrap-phase');
        return reply.some((line) => / PROGRESS=100 /.test(line)) ? true : undefined;
      }),
    );
    return { socks: { path: socks }, stop: () => this.end(tor) };
  }

  async onionService(
    name: string,
    ports: Array<{ virtualPort: number; localPort: number }>,
    options: { authorizedClients?: string[] } = {},
    timeoutMs = 2 * 60_000,
  ): Promise<{ hostname: string; stop(): Promise<void> }> {
    const home = await this.home(name);
    const hsDir = join(home, 'hs');
    await mkdir(hsDir, { mode: 0o700 });
    if (options.authorizedClients?.length) {
      await mkdir(join(hsDir, AUTHORIZED_CLIENTS), { mode: 0o700 });
      for (const [i, key] of options.authorizedClients.entries()) await writeFile(join(hsDir, AUTHORIZED_CLIENTS, `client${i + 1}.auth`), authorizedClientLine(key), { mode: 0o600 });
    }
    // The network is off until the control connection listens for HS_DESC, so no upload can happen unseen.
    const torrc = [
      this.clientTorrc,
      ...ownFiles(home),
      'SocksPort 0',
      'DisableNetwork 1',
      `HiddenServiceDir ${hsDir}`,
      ...ports.map((p) => `HiddenServicePort ${p.virtualPort} 127.0.0.1:${p.localPort}`),
      '',
    ].join('\n');
    const tor = await this.startReady(name, home, torrc, timeoutMs, async (control, deadline, tor) => {
      const uploads = { started: 0, done: 0, failed: 0 };
      control.onEvent((event) => {
        const kind = /^HS_DESC (\S+)/.exec(event)?.[1];
        if (kind === 'UPLOAD') uploads.started++;
        else if (kind === 'UPLOADED') uploads.done++;
        else if (kind === 'FAILED') uploads.failed++;
      });
      await control.send('SETEVENTS HS_DESC');
      await control.send('SETCONF DisableNetwork=0');
      // Every upload begun has ended, and one reached an HSDir: a client asking any HSDir now finds it.
      await until(`onion service ${name} uploaded no descriptor (${JSON.stringify(uploads)})`, deadline, [tor], async () =>
        uploads.done > 0 && uploads.done + uploads.failed >= uploads.started ? true : undefined,
      );
    });
    const hostname = await readFile(join(hsDir, 'hostname'), 'utf8').catch(async (error: Error) => {
      await this.end(tor);
      throw error;
    });
    return { hostname: hostname.trim(), stop: () => this.end(tor) };
  }

  /**
   * A tor started with `torrc`, once `ready` (given its control connection, closed afterwards) has resolved within
   * `timeoutMs`; a tor that does not get there is stopped before the error is thrown.
   */
  private async startReady(
    name: string,
    home: string,
    torrc: string,
    timeoutMs: number,
    ready: (control: Control, deadline: number, tor: TorProcess) => Promise<unknown>,
  ): Promise<TorProcess> {
    const tor = await this.spawn(name, home, torrc);
    try {
      const deadline = Date.now() + timeoutMs;
      const control = await Control.open(tor.control, () => !tor.exited, deadline);
      try {
        await ready(control, deadline, tor);
      } finally {
        control.close();
      }
      return tor;
    } catch (error) {
      await this.end(tor);
      throw error;
    }
  }

  /**
   * What a VM needs to join (test/helpers/vm.ts `torNetwork`): the namespace qemu runs in, the address, and every
   * port a Tor of this network dials there (each relay's ORPort and DirPort).
   */
  vmNetwork(): { netns: string; address: string; ports: number[] } {
    return { netns: this.netns, address: ADDRESS, ports: this.nodes.flatMap((n) => [n.orPort, n.dirPort]) };
  }

  async outsideContacts(): Promise<number> {
    const { stdout } = await this.ns.run(['nft', '--json', 'list', 'table', 'inet', TABLE]);
    let packets = 0;
    for (const item of JSON.parse(String(stdout)).nftables as Array<{ rule?: { comment?: string; expr: Array<{ counter?: { packets: number } }> } }>) {
      if (item.rule?.comment !== OUTSIDE) continue;
      packets += item.rule.expr.find((e) => e.counter)?.counter?.packets ?? 0;
    }
    return packets;
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      await Promise.all([...this.processes].map((p) => p.stop()));
      this.processes.clear();
      await this.ns.delete();
    })();
    return this.stopped;
  }

  private async home(name: string): Promise<string> {
    if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`a Tor of the private network needs a plain name (a-z, 0-9, -), not "${name}"`);
    const home = join(this.dir, name);
    // Tor refuses a DataDirectory, HiddenServiceDir or socket directory others can read.
    await mkdir(join(home, 'data'), { recursive: true, mode: 0o700 });
    return home;
  }

  private async spawn(name: string, home: string, torrc: string): Promise<TorProcess> {
    if (this.stopped) throw new Error('the private Tor network is stopped');
    const tor = await TorProcess.spawn(this.ns.name, name, home, torrc);
    this.processes.add(tor);
    return tor;
  }

  private async end(tor: TorProcess): Promise<void> {
    await tor.stop();
    this.processes.delete(tor);
  }
}

/**
 * The namespace's only link: 10.66.0.1/24 on one end of a veth pair whose other end has no address, with the
 * default routes through it, so a packet for anywhere else reaches the firewall (and is counted) rather than
 * failing for want of a route. No IPv6 address but ::1 (addrgenmode none: no link-local one either).
 */
async function isolate(ns: Netns, dir: string): Promise<void> {
  await ns.run(['ip', 'link', 'add', LINK[0], 'type', 'veth', 'peer', 'name', LINK[1]]);
  for (const link of LINK) {
    await ns.run(['ip', 'link', 'set', link, 'addrgenmode', 'none']);
    await ns.run(['ip', 'link', 'set', link, 'up']);
  }
  await ns.run(['ip', 'address', 'add', `${ADDRESS}/24`, 'dev', LINK[0]]);
  await ns.run(['ip', '-4', 'route', 'add', 'default', 'dev', LINK[0]]);
  await ns.run(['ip', '-6', 'route', 'add', 'default', 'dev', LINK[0]]);
  const outside = (hook: string) => [
    `  chain ${hook} {`,
    `    type filter hook ${hook} priority filter; policy accept;`,
    `    ip daddr != { 127.0.0.0/8, ${SUBNET} } counter reject comment "${OUTSIDE}"`,
    `    ip6 daddr != ::1 counter reject comment "${OUTSIDE}"`,
    '  }',
  ];
  const ruleset = [`table inet ${TABLE} {`, ...outside('output'), ...outside('forward'), '}', ''].join('\n');
  const file = join(dir, 'outside.nft');
  await writeFile(file, ruleset);
  await ns.run(['nft', '-f', file]);
}

/**
 * A node's keys, made before any tor runs so every torrc can name every authority: tor-gencert's authority
 * certificate for an authority, and the relay identity `tor --list-fingerprint` makes in the DataDirectory.
 */
async function makeKeys(ns: Netns, dir: string, nick: string, role: Role, i: number): Promise<NodeSpec> {
  const home = join(dir, nick);
  const data = join(home, 'data');
  const keys = join(data, 'keys');
  await mkdir(keys, { recursive: true, mode: 0o700 });
  const orPort = 5001 + i;
  const dirPort = 7001 + i;
  let v3ident: string | undefined;
  if (role === 'authority') {
    // An empty passphrase for the identity key, on stdin: the key stays on this scratch directory only.
    await execa('tor-gencert', ['--create-identity-key', '-m', '12', '-a', `${ADDRESS}:${dirPort}`, '-i', join(keys, 'authority_identity_key'), '-s', join(keys, 'authority_signing_key'), '-c', join(keys, 'authority_certificate'), '--passphrase-fd', '0'], { input: '\n', cwd: keys });
    v3ident = /^fingerprint ([0-9A-F]{40})$/m.exec(await readFile(join(keys, 'authority_certificate'), 'utf8'))?.[1];
    if (!v3ident) throw new Error(`tor-gencert wrote no fingerprint in ${join(keys, 'authority_certificate')}`);
  }
  const empty = join(home, 'empty.torrc');
  await writeFile(empty, '');
  // A placeholder authority: with none given, tor would fill in the public network's (it contacts none here).
  const listed = await ns.run(['tor', '--quiet', '--defaults-torrc', '/dev/null', '-f', empty, '--DisableNetwork', '1', '--list-fingerprint', '--ORPort', '1', '--DirAuthority', 'placeholder 127.0.0.1:1 ffffffffffffffffffffffffffffffffffffffff', '--DataDirectory', data]);
  const fingerprint = /([0-9A-F]{4}(?: ?[0-9A-F]{4}){9})\s*$/.exec(String(listed.stdout))?.[1]?.replaceAll(' ', '');
  if (!fingerprint) throw new Error(`tor --list-fingerprint printed no fingerprint for ${nick}:\n${listed.all}`);
  return { nick, role, orPort, dirPort, home, fingerprint, v3ident };
}

/** What every Tor of this network has: testing mode, this network's authorities, paths built from few relays. */
function clientTorrc(nodes: NodeSpec[]): string {
  return [
    '# The private test network (test/helpers/tor-network.ts): never the public Tor network.',
    'TestingTorNetwork 1',
    ...nodes
      .filter((n) => n.role === 'authority')
      .map((n) => `DirAuthority ${n.nick} orport=${n.orPort} no-v2 v3ident=${n.v3ident} ${ADDRESS}:${n.dirPort} ${n.fingerprint}`),
    // Six relays: a client that waited for the usual share of paths would wait for relays that do not exist.
    'PathsNeededToBuildCircuits 0.25',
  ].join('\n');
}

/** Files of a tor of this network: its DataDirectory, log and control socket under `home`, and its owner. */
function ownFiles(home: string): string[] {
  return [
    `DataDirectory ${join(home, 'data')}`,
    `Log notice file ${join(home, 'tor.log')}`,
    `ControlSocket ${join(home, 'control')}`,
    'SafeLogging 0',
    `__OwningControllerProcess ${process.pid}`,
  ];
}

function relayTorrc(node: NodeSpec, nodes: NodeSpec[], dir: string): string {
  const exit = nodes.find((n) => n.role === 'exit')!;
  const lines = [
    clientTorrc(nodes),
    ...ownFiles(node.home),
    `Nickname ${node.nick}`,
    `ContactInfo ${node.nick}@private-network.invalid`,
    'SocksPort 0',
    `Address ${ADDRESS}`,
    `ORPort ${ADDRESS}:${node.orPort}`,
    `DirPort ${ADDRESS}:${node.dirPort}`,
    // Upload the descriptor at once, and (on an authority) list relays as Running without testing them first.
    'AssumeReachable 1',
    'ShutdownWaitLength 0',
    `ServerDNSResolvConfFile ${join(dir, 'resolv.conf')}`,
    'ServerDNSDetectHijacking 0',
    // The exit reaches services the tests run on the namespace's address (the VM test's apt repository):
    // ExitPolicyRejectPrivate 0, or tor puts "reject private:*" (this subnet, its own address) first. Clients judge
    // exits by the policy's summary, which lists only ports accepted for every address: with the subnet alone the
    // exit looks like no exit at all, so SERVED_PORT is accepted everywhere too. Anything it would reach outside
    // the subnet the namespace's table rejects and counts (outsideContacts).
    ...(node.role === 'exit' ? ['ExitRelay 1', 'ExitPolicyRejectPrivate 0', `ExitPolicy accept ${SUBNET}:*`, `ExitPolicy accept *:${SERVED_PORT}`, 'ExitPolicy reject *:*'] : ['ExitRelay 0']),
  ];
  if (node.role === 'authority') {
    lines.push(
      'AuthoritativeDirectory 1',
      'V3AuthoritativeDirectory 1',
      `V3AuthVotingInterval ${VOTING.interval}`,
      `V3AuthVoteDelay ${VOTING.voteDelay}`,
      `V3AuthDistDelay ${VOTING.distDelay}`,
      `TestingV3AuthInitialVotingInterval ${VOTING.interval}`,
      `TestingV3AuthInitialVoteDelay ${VOTING.voteDelay}`,
      `TestingV3AuthInitialDistDelay ${VOTING.distDelay}`,
      // Flags a young, idle relay would earn only after hours or with measured bandwidth.
      'TestingDirAuthVoteGuard *',
      'TestingDirAuthVoteHSDir *',
      `TestingDirAuthVoteExit $${exit.fingerprint}`,
      'TestingMinExitFlagThreshold 0',
      'TestingMinFastFlagThreshold 0',
    );
  }
  return `${lines.join('\n')}\n`;
}
