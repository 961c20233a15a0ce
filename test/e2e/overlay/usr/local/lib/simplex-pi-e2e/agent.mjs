// TEST OVERLAY ONLY (test/e2e): never part of a shipped recipe.
// The boot test's eyes inside the VM. It waits until the system is up (first boot finished, Tor and every relay
// active, every relay port listening), says so on the console and on the virtio-serial port
// /dev/virtio-ports/simplex-pi-e2e, then answers the host's requests on that port, one JSON line each:
//   report   -> what the test asserts on (units, listening ports, onion hostnames Tor wrote, key hashes, journals)
//   net      -> the network interfaces' addresses only (cheap: no program started)
//   journal  -> what smp1's unit logged this boot (the stand-in logs each connection it accepts)
//   system   -> the base's own first-boot work: root partition and filesystem size against the disk, machine-id,
//               the resize unit, cloud-init's result, users and their keys, host name, kernel command line,
//               whether systemd settled (is-system-running, pending jobs)
//   control <action> -> the firewall test takes its layers down one at a time, to show each one alone keeps a
//               connection from reaching the relay (and that one gets through with both down):
//               nft-flush | nft-restore (nftables) and unit-ip-open | unit-ip-close (IPAddressDeny= of smp1's unit)
//   messages send <n> <queue> <count> | messages count <n> <queue> -> leave messages on SMP relay n (the
//               stand-in's own line protocol inside its TLS session), or count those it holds
//   relay restart <n> | relay sigterm <n> -> restart relay n's unit and wait until it listens again; sigterm first
//               puts systemd's default stop signal back for it (a runtime drop-in: the control of the stop test)
//   relay slow-save <n> <ms> -> the stand-in pauses <ms> after each 8 KiB it saves (runtime drop-in), the
//               kernel writes dirty pages back within a second, and relay n restarts to take it
//   relay stop <n> -> ask systemd to stop relay n and answer at once, once it has started saving
//   relay try-restart <n> -> restart relay n's unit, whatever comes of it: its state, whether it listens, its journal
//   relay wait-active <n> -> wait up to 60 s for relay n to be active and listening again
//   export   -> the owner's explicit `simplex-pi export` (root), with its output and exit status
//   export-encrypted <age recipient> -> what the export unit runs (`simplex-pi export --auto`) for a recipe with
//               export.encrypt_to set to that recipient: the shipped plan with that one field, through the
//               program's SIMPLEX_PI_PLAN (the device's own code, Node and sticks; only the plan's place differs)
//   journal-secrets -> which of the Pi's secrets (relay passwords, client private keys) stand in the journal:
//               `journalctl -o export` of every boot kept, and the raw bytes of every journal file; a control
//               line logged first shows both readings would find one
//   probe <tcp|udp> <address> <port> <user> -> as that user, open a TCP connection (or send a UDP datagram) and
//               say what happened (connected, sent, timeout or the error code), with the output chain's nftables
//               counters before and after, by rule comment: which rule the packet met
//   backup <age recipient> -> the owner's `sudo simplex-pi backup --recipient <r>` to the labelled stick, with its
//               output (stdout and stderr) and exit status
//   status-json -> `simplex-pi status --json`, as the Pi prints it
//   watchdog -> the watchdog's event log (one JSON object a line) and its unit's journal of this boot
//   fault withdraw <onion service name> -> Tor stops serving that onion service: SETCONF over its control socket
//               with every HiddenService line of the running configuration but that service's, as a lost
//               publication looks to the service's users (its introduction points gone). The torrc files are
//               untouched, so a reload of Tor brings it back.
//   fault hang <n> -> SIGSTOP to SMP relay n's main process: its unit stays active and its port open, but it
//               answers nothing (what a port check calls alive)
//   fault break <n> -> SMP relay n's fingerprint file no longer matches its certificate, so every start refuses
//               it, and the relay is restarted: a relay that can never start again. Its unit's StartLimitBurst is
//               kept; only the 10 s systemd waits between restarts becomes 1 s (a runtime drop-in), so each of the
//               watchdog's restarts meets the start limit in seconds rather than a minute
//   update <flags> <bundle base64> <signature base64> -> the bundle and its .minisig written to /var/tmp, then the
//               owner's `sudo simplex-pi update --from <file> <flags>` (flags: comma-separated, or `-` for none): its
//               output and exit status, and the relays as `relay-versions` reports them afterwards
//   relay-versions -> per relay unit: its state, its current run's InvocationID and the version line that run printed
//               at its start (the relay's own word for which release runs), and the card's current-release link
//   --- security updates (issue 16) ---
//   apt-state <package>... -> the image's apt sources (every file, as the Pi has them), the release's codename, and
//               the installed version of each package (dpkg-query)
//   apt-source <base64 JSON {sources, key}> -> add the test's apt repository: its deb822 sources file and its key
//   apt-install <package>... -> apt-get update, then apt-get install of those packages, as root
//   apt-unattended <package>... -> Debian's daily apt jobs as their timers start them (apt-daily.service, then
//               apt-daily-upgrade.service: lists, then unattended-upgrade), with apt's "last run" stamps removed
//               first as if a day had passed; while they run, two counting rules (no verdict, removed afterwards) sit
//               first in the firewall's output chain: apt's user (_apt) to Tor's SOCKS port, and _apt anywhere but
//               loopback. Answers the output chain's counters before and after, those two counts, the units'
//               journal and unattended-upgrades' log, each relay unit's start time before and after, and the
//               packages' versions
//   --- end of security updates ---
//   poweroff -> a clean shutdown
// Reads what the shipped system wrote; changes nothing but the power state and, when asked, those two layers,
// the messages on a relay, a relay's stop signal (until the next boot), the faults above and, for the security
// update test, an apt source and the packages it installs.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, read, readFileSync, readdirSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { connect } from 'node:tls';
import { createConnection } from 'node:net';

const PORT = '/dev/virtio-ports/simplex-pi-e2e';
const plan = JSON.parse(readFileSync('/etc/simplex-pi/plan.json', 'utf8'));
const relayUnits = [...plan.smp.instances.map((i) => i.unit), ...(plan.xftp ? [plan.xftp.unit] : [])];
const relayPorts = [...plan.smp.instances.map((i) => i.localPort), ...(plan.xftp ? [plan.xftp.localPort] : [])];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const say = (line) => console.log(`simplex-pi-e2e: ${line}`);

function sh(command, args) {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    return `${error.stdout ?? ''}${error.stderr ?? ''}`;
  }
}

function unit(name) {
  const props = {};
  const out = sh('systemctl', ['show', name, '-p', 'ActiveState,SubState,Result,ConditionResult,ExecMainStartTimestampMonotonic,ExecMainExitTimestampMonotonic,NRestarts']);
  for (const line of out.split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) props[line.slice(0, at)] = line.slice(at + 1);
  }
  return props;
}

/** Listening TCP sockets from /proc: "address:port" (IPv4 and IPv6). */
function listening() {
  const found = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] !== '0A') continue;
      const [hexAddr, hexPort] = cols[1].split(':');
      const address = hexAddr.length === 8 ? hexAddr.match(/../g).reverse().map((b) => parseInt(b, 16)).join('.') : hexAddr === '0'.repeat(32) ? '::' : hexAddr;
      found.push(`${address}:${parseInt(hexPort, 16)}`);
    }
  }
  return found;
}

function sha256(path) {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch {
    return null;
  }
}

function readText(path) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Every key a first boot makes, by path: Tor's onion keys and each relay's identity. */
function keyHashes() {
  const paths = [];
  for (const service of plan.tor.services) paths.push(`${service.dir}/hs_ed25519_secret_key`, `${service.dir}/hs_ed25519_public_key`);
  for (const dir of [...plan.smp.instances.map((i) => i.cfgPath), ...(plan.xftp ? [plan.xftp.cfgPath] : [])]) {
    paths.push(`${dir}/ca.key`, `${dir}/ca.crt`, `${dir}/server.key`, `${dir}/server.crt`, `${dir}/fingerprint`);
  }
  for (const key of ['rsa', 'ecdsa', 'ed25519']) paths.push(`/etc/ssh/ssh_host_${key}_key`);
  return Object.fromEntries(paths.map((p) => [p, sha256(p)]));
}

/** Every secret first boot made, as the Pi holds them: each relay's password, every client-authorization private key. */
function secrets() {
  const servers = JSON.parse(readText('/var/lib/simplex-pi/servers.json') ?? '{"servers":[]}').servers;
  const passwords = servers.map((s) => /^[a-z]+:\/\/[^:@/]+:([^@]+)@/.exec(s.address)?.[1]).filter(Boolean);
  const keys = JSON.parse(readText('/var/lib/simplex-pi/client-auth.json') ?? '[]').map((k) => k.privateKey);
  for (const file of ['client-auth-admin.json', 'client-auth-self.json']) {
    const key = readText(`/var/lib/simplex-pi/${file}`);
    if (key) keys.push(JSON.parse(key).privateKey);
  }
  return [...passwords, ...keys];
}

function journalFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? journalFiles(`${dir}/${e.name}`) : /\.journal~?$/.test(e.name) ? [`${dir}/${e.name}`] : []));
}

function journalSecrets() {
  const marker = `e2e-control-${randomBytes(12).toString('hex')}`;
  execFileSync('systemd-cat', ['-t', 'simplex-pi-e2e'], { input: `control line ${marker}\n` });
  sh('journalctl', ['--flush']);
  sh('journalctl', ['--sync']);
  const exported = execFileSync('journalctl', ['-o', 'export', '--no-pager'], { maxBuffer: 512 * 1024 * 1024 });
  const files = [...journalFiles('/var/log/journal'), ...journalFiles('/run/log/journal')];
  const contents = files.map((f) => readFileSync(f));
  const all = [marker, ...secrets()];
  return {
    ok: true,
    marker,
    secretCount: all.length - 1,
    persistent: journalFiles('/var/log/journal').length > 0,
    boots: sh('journalctl', ['--list-boots', '--no-pager']).trim().split('\n').length,
    files: files.length,
    exportBytes: exported.length,
    inExport: all.filter((secret) => exported.includes(secret)),
    inFiles: all.filter((secret) => contents.some((buffer) => buffer.includes(secret))),
  };
}

function encryptedExport(recipient) {
  const path = '/run/simplex-pi-e2e-plan.json';
  writeFileSync(path, JSON.stringify({ ...plan, export: { ...plan.export, encryptTo: recipient } }));
  return explicitExport(['export', '--auto'], { ...process.env, SIMPLEX_PI_PLAN: path });
}

/** The packet counters of the firewall's output chain, by each rule's comment (the final reject's too). */
function outputCounters() {
  const counters = {};
  try {
    const ruleset = JSON.parse(execFileSync('nft', ['-j', 'list', 'chain', 'inet', 'simplex_pi', 'output'], { encoding: 'utf8' }));
    for (const item of ruleset.nftables) {
      const rule = item.rule;
      if (!rule) continue;
      const counter = rule.expr.find((e) => e.counter)?.counter;
      if (counter) counters[rule.comment ?? `handle ${rule.handle}`] = counter.packets;
    }
  } catch {
    // No ruleset loaded: no counters.
  }
  return counters;
}

const PROBE = `
const [proto, host, port] = process.argv.slice(1);
const done = (result) => { console.log(result); process.exit(0); };
if (proto === 'tcp') {
  const socket = require('node:net').connect({ host, port: Number(port) });
  socket.setTimeout(4000, () => done('timeout'));
  socket.on('connect', () => done('connected'));
  socket.on('error', (error) => done(error.code));
} else {
  const socket = require('node:dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4');
  socket.on('error', (error) => done(error.code));
  socket.send(Buffer.from('simplex-pi-e2e probe'), Number(port), host, (error) => (error ? done(error.code) : setTimeout(() => done('sent'), 1000)));
}`;

/**
 * qemu's restricted network hands out no gateway (libslirp offers none with restrict=on): the Pi has no default
 * route. The probes' documentation prefix is routed onto the link for the test, so a packet reaches nftables'
 * output chain and, if it passes, goes into qemu's network, which delivers nothing.
 */
function routeProbePrefix(host) {
  if (!/^192\.0\.2\./.test(host)) return;
  const link = Object.entries(networkInterfaces()).find(([, list]) => list.some((a) => a.family === 'IPv4' && !a.internal))?.[0];
  if (link) sh('ip', ['route', 'replace', '192.0.2.0/24', 'dev', link]);
}

function probe([proto, host, port, user]) {
  routeProbePrefix(host);
  const before = outputCounters();
  const node = process.execPath;
  const account = readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':')).find((f) => f[0] === user);
  if (!account) return { ok: false, output: `no user ${user} on this image` };
  const command = ['setpriv', [`--reuid=${account[2]}`, `--regid=${account[3]}`, '--clear-groups', node, '-e', PROBE, proto, host, port]];
  const outcome = sh(command[0], command[1]).trim();
  const after = outputCounters();
  const met = Object.keys(after).filter((rule) => after[rule] !== before[rule]);
  return { ok: true, outcome, met, counters: after };
}

function explicitExport(args = ['export'], env = process.env) {
  try {
    const output = execFileSync('/usr/local/bin/simplex-pi', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env });
    return { ok: true, output };
  } catch (error) {
    return { ok: false, output: `${error.stdout ?? ''}${error.stderr ?? ''}`, status: error.status };
  }
}

function backup(recipient) {
  const result = spawnSync('/usr/local/bin/simplex-pi', ['backup', '--recipient', recipient], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}`, status: result.status };
}

/** Cheap checks first: every `systemctl` spawn is slow in an emulated VM and would delay what it measures. */
function interfaces() {
  return Object.fromEntries(Object.entries(networkInterfaces()).map(([name, list]) => [name, list.map((a) => a.address)]));
}

function ready() {
  if (!existsSync('/var/lib/simplex-pi/firstboot.done')) return false;
  const open = listening().map((l) => Number(l.split(':').pop()));
  if (!relayPorts.every((p) => open.includes(p))) return false;
  const states = sh('systemctl', ['is-active', 'tor@default.service', ...relayUnits]).trim().split('\n');
  return states.length === relayUnits.length + 1 && states.every((s) => s === 'active');
}

function report() {
  const units = {};
  for (const name of ['simplex-pi-firstboot.service', 'simplex-pi-export.service', 'tor.service', 'tor@default.service', 'nftables.service', 'ssh.service', ...relayUnits]) {
    units[name] = unit(name);
  }
  const onions = {};
  for (const service of plan.tor.services) {
    const hostname = `${service.dir}/hostname`;
    onions[service.name] = { hostname: readText(hostname)?.trim() ?? null, mtime: existsSync(hostname) ? statSync(hostname).mtimeMs : null };
  }
  // What each relay's own mount namespace shows of the relays' directories (its sandbox hides the others').
  const relayView = {};
  for (const name of relayUnits) {
    const pid = sh('systemctl', ['show', name, '-p', 'MainPID', '--value']).trim();
    relayView[name] = {
      comm: readText(`/proc/${pid}/comm`)?.trim() ?? null,
      etcOpt: sh('nsenter', ['-t', pid, '-m', '--', 'ls', '-1', '/etc/opt']).trim().split('\n'),
      varOpt: sh('nsenter', ['-t', pid, '-m', '--', 'ls', '-1', '/var/opt']).trim().split('\n'),
    };
  }
  const relayJournal = {};
  for (const name of relayUnits) relayJournal[name] = sh('journalctl', ['-b', '-u', name, '-o', 'cat', '--no-pager']);
  return {
    bootId: readText('/proc/sys/kernel/random/boot_id')?.trim(),
    uptimeSeconds: Number(readText('/proc/uptime')?.split(' ')[0]),
    units,
    listening: listening(),
    onions,
    keys: keyHashes(),
    addresses: readText('/var/lib/simplex-pi/addresses.txt'),
    servers: JSON.parse(readText('/var/lib/simplex-pi/servers.json') ?? 'null'),
    firstbootDone: existsSync('/var/lib/simplex-pi/firstboot.done'),
    firstbootJournal: sh('journalctl', ['-b', '-u', 'simplex-pi-firstboot.service', '-o', 'cat', '--no-pager']),
    exportJournal: sh('journalctl', ['-b', '-u', 'simplex-pi-export.service', '-o', 'cat', '--no-pager']),
    secrets: secrets(),
    relayJournal,
    relayView,
    status: sh('/usr/local/bin/simplex-pi', ['status']),
    interfaces: interfaces(),
    nftTables: sh('nft', ['list', 'tables']),
    tmpfiles: readdirSync('/var/lib/simplex-pi'),
  };
}

function blockSectors(name) {
  return Number(readText(`/sys/class/block/${name}/size`) ?? 'NaN');
}

/** Ask systemd whether boot finished, waiting up to `seconds` for it to settle (a stuck job never does). */
function settle(seconds) {
  let state = '';
  for (let i = 0; i < seconds; i++) {
    state = sh('systemctl', ['is-system-running']).trim();
    if (state !== 'starting' && state !== 'initializing') break;
    execFileSync('sleep', ['1']);
  }
  return state;
}

function system() {
  const rootSource = sh('findmnt', ['-n', '-o', 'SOURCE', '/']).trim();
  const part = rootSource.replace(/^\/dev\//, '');
  const disk = readdirSync('/sys/block').find((d) => existsSync(`/sys/block/${d}/${part}`));
  const df = sh('df', ['--block-size=1', '--output=size,avail', '/']).trim().split('\n').pop().trim().split(/\s+/).map(Number);
  const users = readFileSync('/etc/passwd', 'utf8').split('\n').filter(Boolean).map((l) => l.split(':')).filter((f) => Number(f[2]) >= 1000 && f[0] !== 'nobody');
  const shadow = Object.fromEntries(readFileSync('/etc/shadow', 'utf8').split('\n').filter(Boolean).map((l) => l.split(':')).map((f) => [f[0], f[1]]));
  return {
    systemState: settle(180),
    jobs: sh('systemctl', ['list-jobs', '--no-legend']).trim(),
    failedUnits: sh('systemctl', ['list-units', '--failed', '--no-legend', '--plain']).trim(),
    rootSource,
    diskSectors: disk ? blockSectors(disk) : null,
    rootStart: Number(readText(`/sys/class/block/${part}/start`) ?? 'NaN'),
    rootSectors: blockSectors(part),
    fsBytes: df[0],
    fsAvailBytes: df[1],
    machineId: readText('/etc/machine-id')?.trim() ?? null,
    cmdline: readText('/proc/cmdline')?.trim(),
    cardCmdline: readText('/boot/firmware/cmdline.txt')?.trim() ?? null,
    fstab: readText('/etc/fstab'),
    hostname: sh('hostname', []).trim(),
    resizeUnit: { ...unit('rpi-resize.service'), enabled: sh('systemctl', ['is-enabled', 'rpi-resize.service']).trim() },
    growfsRoot: unit('systemd-growfs-root.service'),
    growfsJournal: sh('journalctl', ['-b', '-u', 'systemd-growfs-root.service', '-u', 'rpi-resize.service', '-u', 'simplex-pi-growroot.service', '-o', 'cat', '--no-pager']),
    cloudInit: existsSync('/usr/bin/cloud-init') ? sh('cloud-init', ['status', '--long']) : null,
    cloudInitUnits: Object.fromEntries(['cloud-init-main.service', 'cloud-init-network.service', 'cloud-config.service', 'cloud-final.service'].map((n) => [n, unit(n)])),
    users: users.map((f) => ({ name: f[0], uid: Number(f[2]), home: f[5], shell: f[6], passwordHash: shadow[f[0]] ?? null, authorizedKeys: readText(`${f[5]}/.ssh/authorized_keys`) })),
    gettyTty1: sh('systemctl', ['is-enabled', 'getty@tty1.service']).trim(),
    userconfig: existsSync('/usr/lib/systemd/system/userconfig.service') ? { ...unit('userconfig.service'), enabled: sh('systemctl', ['is-enabled', 'userconfig.service']).trim() } : null,
    firstboot: unit('simplex-pi-firstboot.service'),
    firstbootAfter: sh('systemctl', ['show', 'simplex-pi-firstboot.service', '-p', 'After']).trim(),
  };
}

const CONTROLS = {
  'nft-flush': ['nft', ['flush', 'ruleset']],
  'nft-restore': ['systemctl', ['restart', 'nftables.service']],
  'unit-ip-open': ['systemctl', ['set-property', '--runtime', plan.smp.instances[0].unit, 'IPAddressDeny=']],
  'unit-ip-close': ['systemctl', ['set-property', '--runtime', plan.smp.instances[0].unit, 'IPAddressDeny=any']],
};

function control(action) {
  const command = CONTROLS[action];
  if (!command) return { ok: false, output: `unknown control ${action}` };
  try {
    execFileSync(command[0], command[1], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    return { ok: false, output: `${error.stdout ?? ''}${error.stderr ?? ''}` };
  }
  const deny = sh('systemctl', ['show', plan.smp.instances[0].unit, '-p', 'IPAddressDeny']).trim();
  return { ok: true, nftTables: sh('nft', ['list', 'tables']), ipAddressDeny: deny };
}

/** One TLS session with SMP relay n, as a client opens one; sends each line and collects each answer. */
function relayExchange(n, lines) {
  const { localPort } = plan.smp.instances[n - 1];
  return new Promise((resolve) => {
    const answers = [];
    let pending = '';
    const socket = connect({ host: '127.0.0.1', port: localPort, ALPNProtocols: ['smp/1'], rejectUnauthorized: false });
    const timer = setTimeout(() => (socket.destroy(), resolve({ ok: false, output: `no answer from port ${localPort}`, answers })), 30_000);
    socket.on('secureConnect', () => socket.write(lines.map((l) => `${l}\n`).join('')));
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      pending += chunk;
      for (let at = pending.indexOf('\n'); at !== -1; at = pending.indexOf('\n')) {
        answers.push(pending.slice(0, at));
        pending = pending.slice(at + 1);
      }
      if (answers.length === lines.length) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ ok: true, answers });
      }
    });
    socket.on('error', (error) => (clearTimeout(timer), resolve({ ok: false, output: String(error), answers })));
  });
}

async function messages(args) {
  const [verb, n, queue, count] = args;
  const padding = 'x'.repeat(Number(args[4] ?? 0));
  if (verb === 'send') return relayExchange(Number(n), Array.from({ length: Number(count) }, (_, i) => `SEND ${queue} e2e message ${i + 1} ${padding}`));
  if (verb === 'count') {
    const result = await relayExchange(Number(n), [`COUNT ${queue}`]);
    return { ...result, count: result.ok ? Number(result.answers[0]) : null };
  }
  return { ok: false, output: `unknown messages request ${verb}` };
}

function runtimeDropIn(instance, name, text) {
  const dropIn = `/run/systemd/system/${instance.unit}.d`;
  mkdirSync(dropIn, { recursive: true });
  writeFileSync(`${dropIn}/${name}.conf`, `[Service]\n${text}\n`);
  sh('systemctl', ['daemon-reload']);
}

async function relay(args) {
  const [verb, n, ms] = args;
  const instance = plan.smp.instances[Number(n) - 1];
  if (!instance || !['restart', 'sigterm', 'slow-save', 'stop', 'try-restart', 'wait-active'].includes(verb)) return { ok: false, output: `unknown relay request ${args.join(' ')}` };
  if (verb === 'stop') {
    sh('systemctl', ['stop', '--no-block', instance.unit]);
    for (let i = 0; i < 120; i++) {
      if (sh('journalctl', ['-b', '-u', instance.unit, '-o', 'cat', '--no-pager']).includes('saving messages to file')) return { ok: true };
      await sleep(500);
    }
    return { ok: false, output: `${instance.unit} did not start saving` };
  }
  const isListening = () => listening().some((l) => l.endsWith(`:${instance.localPort}`));
  const journal = () => sh('journalctl', ['-b', '-u', instance.unit, '-o', 'cat', '--no-pager']);
  if (verb === 'try-restart') {
    const output = sh('systemctl', ['restart', instance.unit]);
    await sleep(3000);
    return { ok: true, output, state: unit(instance.unit), listening: isListening(), journal: journal() };
  }
  if (verb === 'wait-active') {
    for (let i = 0; i < 60; i++) {
      if (unit(instance.unit).ActiveState === 'active' && isListening()) return { ok: true, seconds: i };
      await sleep(1000);
    }
    return { ok: false, output: `${instance.unit} is ${unit(instance.unit).ActiveState}: ${journal().slice(-2000)}` };
  }
  if (verb === 'sigterm') runtimeDropIn(instance, 'e2e-sigterm', 'KillSignal=SIGTERM');
  if (verb === 'slow-save') {
    runtimeDropIn(instance, 'e2e-slow-save', `Environment=SIMPLEX_STANDIN_SAVE_DELAY_MS=${Number(ms)}`);
    // Dirty pages reach the card within a second or two instead of 30 s, so a cut finds part of the file written.
    writeFileSync('/proc/sys/vm/dirty_expire_centisecs', '100');
    writeFileSync('/proc/sys/vm/dirty_writeback_centisecs', '100');
  }
  const restarted = sh('systemctl', ['restart', instance.unit]);
  for (let i = 0; i < 120; i++) {
    if (unit(instance.unit).ActiveState === 'active' && listening().some((l) => l.endsWith(`:${instance.localPort}`))) {
      return { ok: true, killSignal: sh('systemctl', ['show', instance.unit, '-p', 'KillSignal']).trim(), journal: sh('journalctl', ['-b', '-u', instance.unit, '-o', 'cat', '--no-pager']) };
    }
    await sleep(1000);
  }
  return { ok: false, output: `${instance.unit} did not listen again: ${restarted}` };
}

/** Commands to Tor over its control socket (cookie authentication), and its whole reply. */
function torControl(commands) {
  const cookie = readFileSync('/run/tor/control.authcookie').toString('hex');
  return new Promise((resolve, reject) => {
    const socket = createConnection('/run/tor/control');
    let reply = '';
    socket.on('data', (chunk) => (reply += chunk.toString()));
    socket.on('error', reject);
    socket.on('close', () => resolve(reply));
    socket.write(`AUTHENTICATE ${cookie}\r\n${commands.map((c) => `${c}\r\n`).join('')}QUIT\r\n`);
  });
}

/** The HiddenService lines of the Pi's torrc, one group per service (in order), by the service's directory. */
function onionServiceGroups() {
  const groups = [];
  for (const line of readFileSync('/etc/tor/torrc.d/50-simplex-pi.conf', 'utf8').split('\n')) {
    const [key, ...rest] = line.trim().split(/\s+/);
    if (!key?.startsWith('HiddenService')) continue;
    if (key === 'HiddenServiceDir') groups.push({ dir: rest.join(' '), lines: [] });
    groups.at(-1).lines.push([key, rest.join(' ')]);
  }
  return groups;
}

async function fault([kind, target]) {
  if (kind === 'withdraw') {
    const service = plan.tor.services.find((s) => s.name === target);
    if (!service) return { ok: false, output: `no onion service ${target}` };
    const kept = onionServiceGroups().filter((g) => g.dir !== service.dir).flatMap((g) => g.lines);
    const reply = await torControl([`SETCONF ${kept.map(([k, v]) => `${k}="${v.replaceAll('"', '\\"')}"`).join(' ')}`]);
    // One 250 OK for AUTHENTICATE, one for SETCONF.
    return { ok: reply.split('\r\n').filter((l) => l === '250 OK').length === 2, output: reply };
  }
  const instance = plan.smp.instances[Number(target) - 1];
  if (!instance) return { ok: false, output: `no SMP relay ${target}` };
  if (kind === 'hang') {
    const pid = sh('systemctl', ['show', '-p', 'MainPID', '--value', instance.unit]).trim();
    if (!/^[1-9]\d*$/.test(pid)) return { ok: false, output: `${instance.unit} has no main process (${pid})` };
    process.kill(Number(pid), 'SIGSTOP');
    return { ok: true, output: `stopped ${pid}` };
  }
  if (kind === 'break') {
    writeFileSync(`${instance.cfgPath}/fingerprint`, 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n');
    runtimeDropIn(instance, 'e2e-fast-restart', 'RestartSec=1');
    return { ok: true, output: sh('systemctl', ['restart', '--no-block', instance.unit]) };
  }
  return { ok: false, output: `unknown fault ${kind}` };
}

function watchdogLog() {
  const log = readText('/var/lib/simplex-pi/watchdog.log') ?? '';
  return {
    events: log.split('\n').filter(Boolean).map((l) => JSON.parse(l)),
    journal: sh('journalctl', ['-b', '-u', 'simplex-pi-watchdog.service', '-o', 'short-iso-precise', '--no-pager']),
    units: Object.fromEntries(relayUnits.map((u) => [u, unit(u)])),
  };
}

// --- security updates (issue 16) ---
const APT_TEST_SOURCES = '/etc/apt/sources.list.d/simplex-pi-e2e.sources';
const APT_TEST_KEY = '/etc/apt/keyrings/simplex-pi-e2e.asc';

function dpkgVersions(packages) {
  return Object.fromEntries(packages.map((p) => [p, sh('dpkg-query', ['-W', '-f', '${Version}', p]).trim() || null]));
}

function aptSourceFiles() {
  const files = {};
  if (existsSync('/etc/apt/sources.list')) files['/etc/apt/sources.list'] = readFileSync('/etc/apt/sources.list', 'utf8');
  for (const name of readdirSync('/etc/apt/sources.list.d')) files[`/etc/apt/sources.list.d/${name}`] = readFileSync(`/etc/apt/sources.list.d/${name}`, 'utf8');
  return files;
}

function aptState(packages) {
  return { ok: true, sources: aptSourceFiles(), codename: sh('lsb_release', ['-c', '-s']).trim(), versions: dpkgVersions(packages) };
}

function aptSource(encoded) {
  const { sources, key } = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8'));
  mkdirSync('/etc/apt/keyrings', { recursive: true });
  writeFileSync(APT_TEST_KEY, key);
  writeFileSync(APT_TEST_SOURCES, sources);
  return { ok: true };
}

function run(command, args) {
  const result = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return { status: result.status, output: `$ ${command} ${args.join(' ')}\n${result.stdout}${result.stderr}` };
}

function aptInstall(packages) {
  const update = run('apt-get', ['update']);
  const install = run('apt-get', ['install', '--yes', ...packages]);
  return { ok: install.status === 0, output: `${update.output}\n${install.output}`, versions: dpkgVersions(packages) };
}

/** The packets each e2e counting rule matched, by comment. */
function e2eCounters() {
  const all = outputCounters();
  return Object.fromEntries(Object.entries(all).filter(([comment]) => comment.startsWith('e2e ')));
}

function aptUnattended(packages) {
  const relayStarts = () => Object.fromEntries(relayUnits.map((u) => [u, unit(u)]));
  const before = { counters: outputCounters(), relays: relayStarts() };
  const rules = [
    ['meta', 'skuid', '_apt', 'oif', 'lo', 'tcp', 'dport', '9050', 'counter', 'comment', '"e2e apt to Tor"'],
    ['meta', 'skuid', '_apt', 'oif', '!=', 'lo', 'counter', 'comment', '"e2e apt not loopback"'],
  ];
  for (const rule of rules) execFileSync('nft', ['insert', 'rule', 'inet', 'simplex_pi', 'output', ...rule]);
  for (const stamp of readdirSync('/var/lib/apt/periodic')) sh('rm', ['-f', `/var/lib/apt/periodic/${stamp}`]);
  const since = sh('date', ['+%Y-%m-%d %H:%M:%S']).trim();
  const update = run('systemctl', ['start', 'apt-daily.service']);
  const upgrade = run('systemctl', ['start', 'apt-daily-upgrade.service']);
  const counted = e2eCounters();
  for (const comment of Object.keys(counted)) {
    const ruleset = JSON.parse(execFileSync('nft', ['-j', '-a', 'list', 'chain', 'inet', 'simplex_pi', 'output'], { encoding: 'utf8' }));
    const handle = ruleset.nftables.find((item) => item.rule?.comment === comment)?.rule.handle;
    if (handle !== undefined) execFileSync('nft', ['delete', 'rule', 'inet', 'simplex_pi', 'output', 'handle', String(handle)]);
  }
  return {
    ok: update.status === 0 && upgrade.status === 0,
    output: `${update.output}\n${upgrade.output}`,
    counters: { before: before.counters, after: outputCounters() },
    apt: counted,
    journal: sh('journalctl', ['--since', since, '-u', 'apt-daily.service', '-u', 'apt-daily-upgrade.service', '-o', 'cat', '--no-pager']),
    log: readText('/var/log/unattended-upgrades/unattended-upgrades.log') ?? '',
    dpkgLog: readText('/var/log/unattended-upgrades/unattended-upgrades-dpkg.log') ?? '',
    relays: { before: before.relays, after: relayStarts() },
    versions: dpkgVersions(packages),
  };
}
// --- end of security updates ---

async function waitReady() {
  for (let i = 0; ; i++) {
    if (ready()) return { event: 'ready' };
    if (i % 5 === 4 && unit('simplex-pi-firstboot.service').ActiveState === 'failed') return { event: 'firstboot-failed' };
    if (i % 60 === 59) say(`waiting: ${sh('systemctl', ['is-active', 'simplex-pi-firstboot.service', 'tor@default.service', ...relayUnits]).replace(/\n/g, ' ')} listening=${listening().join(',')}`);
    await sleep(1000);
  }
}

async function openPort() {
  for (;;) {
    if (existsSync(PORT)) return openSync(PORT, 'r+');
    await sleep(200);
  }
}

// --- relay updates (issue 16) ---
function relayVersions() {
  const relays = {};
  for (const name of relayUnits) {
    const invocation = sh('systemctl', ['show', '-p', 'InvocationID', '--value', name]).trim();
    const lines = invocation ? sh('journalctl', [`_SYSTEMD_INVOCATION_ID=${invocation}`, '-o', 'cat', '--no-pager']).split('\n') : [];
    relays[name] = { ...unit(name), invocation, version: lines.find((l) => / v\d+\.\d+\.\d+/.test(l)) ?? null };
  }
  let current = null;
  try {
    current = execFileSync('readlink', ['/usr/local/lib/simplex-pi/simplexmq/current'], { encoding: 'utf8' }).trim();
  } catch {}
  return { relays, current };
}

async function runUpdate([flags, bundle, signature]) {
  const dir = '/var/tmp/e2e-update';
  mkdirSync(dir, { recursive: true });
  const file = `${dir}/bundle-${Date.now()}.tar`;
  writeFileSync(file, Buffer.from(bundle, 'base64'));
  writeFileSync(`${file}.minisig`, Buffer.from(signature, 'base64'));
  const args = ['update', '--from', file, ...(flags === '-' ? [] : flags.split(',').map((f) => `--${f}`))];
  const started = Date.now();
  const result = await new Promise((resolve) => {
    const child = spawn('/usr/local/bin/simplex-pi', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('close', (code) => resolve({ exitCode: code, output }));
  });
  return { ok: true, ...result, seconds: (Date.now() - started) / 1000, ...relayVersions() };
}
// --- end of relay updates ---

function send(fd, message) {
  writeSync(fd, `${JSON.stringify(message)}\n`);
}

async function serve(fd) {
  let buffered = '';
  const chunk = Buffer.alloc(4096);
  for (;;) {
    const n = await new Promise((resolve) => read(fd, chunk, 0, chunk.length, null, (error, bytes) => resolve(error ? 0 : bytes)));
    // No host on the other end reads as end of file: wait for it.
    if (n === 0) {
      await sleep(200);
      continue;
    }
    buffered += chunk.subarray(0, n).toString('utf8');
    let newline;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const request = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (request === 'report') send(fd, { event: 'report', report: report() });
      else if (request === 'net') send(fd, { event: 'net', report: { interfaces: interfaces() } });
      else if (request === 'journal') send(fd, { event: 'journal', report: { journal: sh('journalctl', ['-b', '-u', plan.smp.instances[0].unit, '-o', 'cat', '--no-pager']) } });
      else if (request === 'system') send(fd, { event: 'system', report: system() });
      else if (request === 'export') send(fd, { event: 'export', report: explicitExport() });
      else if (request.startsWith('backup ')) send(fd, { event: 'backup', report: backup(request.split(' ')[1]) });
      else if (request.startsWith('export-encrypted ')) send(fd, { event: 'export-encrypted', report: encryptedExport(request.split(' ')[1]) });
      else if (request.startsWith('probe ')) send(fd, { event: 'probe', report: probe(request.split(' ').slice(1)) });
      else if (request === 'journal-secrets') send(fd, { event: 'journal-secrets', report: journalSecrets() });
      else if (request.startsWith('control ')) send(fd, { event: 'control', report: control(request.slice('control '.length)) });
      else if (request.startsWith('messages ')) send(fd, { event: 'messages', report: await messages(request.split(' ').slice(1)) });
      else if (request.startsWith('relay ')) send(fd, { event: 'relay', report: await relay(request.split(' ').slice(1)) });
      else if (request === 'status-json') send(fd, { event: 'status-json', report: JSON.parse(sh('/usr/local/bin/simplex-pi', ['status', '--json'])) });
      else if (request === 'watchdog') send(fd, { event: 'watchdog', report: watchdogLog() });
      else if (request.startsWith('fault ')) send(fd, { event: 'fault', report: await fault(request.split(' ').slice(1)) });
      else if (request.startsWith('update ')) send(fd, { event: 'update', report: await runUpdate(request.split(' ').slice(1)) });
      else if (request === 'relay-versions') send(fd, { event: 'relay-versions', report: relayVersions() });
      // --- security updates (issue 16) ---
      else if (request.startsWith('apt-state')) send(fd, { event: 'apt-state', report: aptState(request.split(' ').slice(1)) });
      else if (request.startsWith('apt-source ')) send(fd, { event: 'apt-source', report: aptSource(request.split(' ')[1]) });
      else if (request.startsWith('apt-install ')) send(fd, { event: 'apt-install', report: aptInstall(request.split(' ').slice(1)) });
      else if (request.startsWith('apt-unattended')) send(fd, { event: 'apt-unattended', report: aptUnattended(request.split(' ').slice(1)) });
      // --- end of security updates ---
      else if (request === 'poweroff') {
        send(fd, { event: 'poweroff' });
        say('powering off');
        sh('systemctl', ['poweroff']);
      } else if (request) send(fd, { event: 'error', message: `unknown request ${request}` });
    }
  }
}

const fd = await openPort();
const state = await waitReady();
say(state.event);
send(fd, state);
await serve(fd);
