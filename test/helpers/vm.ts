import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { fatTarget } from '../../builder/image/bootfs.ts';
import { raspberryPiLayout, readPartitionTable } from '../../builder/image/partitions.ts';
import { REPO, keepScratch } from './env.ts';
import { inNetns } from './netns.ts';

/**
 * A built image booted in qemu-system-aarch64 (-M virt), the way the end-to-end tests see it: its own kernel
 * and initramfs, the image as a virtio disk, a virtual USB stick, no network or a restricted one, the serial
 * console captured line by line (and to a file kept for failures), QMP for hot-plugging, and a virtio-serial
 * port to the test agent the e2e recipe adds through its overlay (test/e2e/overlay).
 */

const MTOOLS = { MTOOLS_SKIP_CHECK: '1' };

export interface BootFiles {
  kernel: string;
  initrd: string;
}

/** Copy the image's own kernel and initramfs out of its FAT boot partition (mtools: nothing is mounted). */
export async function extractBootFiles(image: string, dir: string): Promise<BootFiles> {
  const { boot } = raspberryPiLayout(await readPartitionTable(image));
  const target = fatTarget(image, boot);
  const { stdout } = await execa('mdir', ['-b', '-i', target, '::/'], { env: MTOOLS });
  const names = stdout.split('\n').map((l) => l.replace(/^::\//, '').trim());
  // Debian's raspi-firmware keeps the package names; Raspberry Pi OS names them as the firmware loads them.
  const kernel = names.find((n) => /^vmlinuz/.test(n)) ?? names.find((n) => n === 'kernel8.img');
  const initrd = names.find((n) => /^initrd\.img/.test(n)) ?? names.find((n) => n === 'initramfs8');
  if (!kernel || !initrd) throw new Error(`no vmlinuz/initrd.img or kernel8.img/initramfs8 in the image's boot partition: ${names.join(' ')}`);
  await mkdir(dir, { recursive: true });
  const out = { kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.img') };
  await execa('mcopy', ['-o', '-n', '-i', target, `::/${kernel}`, out.kernel], { env: MTOOLS });
  await execa('mcopy', ['-o', '-n', '-i', target, `::/${initrd}`, out.initrd], { env: MTOOLS });
  return out;
}

/** The card's own cmdline.txt, as the Raspberry Pi firmware would pass it to the kernel. */
export async function readCardCmdline(disk: string): Promise<string> {
  const { boot } = raspberryPiLayout(await readPartitionTable(disk));
  const { stdout } = await execa('mtype', ['-i', fatTarget(disk, boot), '::/cmdline.txt'], { env: MTOOLS });
  return stdout.trim();
}

/**
 * The kernel command line for qemu's virt machine: the card's own cmdline.txt (root=, resize, ds=nocloud, what
 * Imager appended), with its consoles replaced by the virt machine's serial port.
 */
export function vmCommandLine(cardCmdline: string, append: string[] = []): string {
  const words = cardCmdline.split(/\s+/).filter((w) => w && !w.startsWith('console='));
  return [...words, 'console=ttyAMA0', 'panic=-1', ...append].join(' ');
}

/** A FAT stick image with a label, as a user would prepare one. */
export async function makeStick(path: string, label: string, mib = 32): Promise<void> {
  await execa('truncate', ['-s', `${mib}M`, path]);
  await execa('mkfs.vfat', ['-n', label, path]);
}

/** A sparse copy of the image: one "SD card". */
export async function copyDisk(image: string, disk: string): Promise<void> {
  await execa('cp', ['--sparse=always', image, disk]);
}

/** A card several GiB larger than the image, as a user's SD card is: the image copied, then extended. */
export async function largerCard(image: string, disk: string, extraGiB: number): Promise<void> {
  await copyDisk(image, disk);
  await execa('truncate', ['-s', `+${extraGiB}G`, disk]);
}

export interface ConsoleLine {
  text: string;
  /** Milliseconds since qemu was started. */
  at: number;
}

export interface VmOptions {
  name: string;
  disk: string;
  boot: BootFiles;
  /** Where the console log and sockets go. */
  dir: string;
  /** A USB stick present at power-on. */
  stick?: string;
  /** More USB sticks present at power-on. */
  moreSticks?: string[];
  /** Disks on the virtio bus (not USB) present at power-on: a labelled one must never be written. */
  virtioDisks?: string[];
  /** Sticks that can be plugged in later with `plugStick`. */
  laterSticks?: string[];
  /** Forward a host port on 127.0.0.1 to a guest port through a restricted user-mode network. */
  forward?: { hostPort: number; guestPort: number };
  /**
   * Join a private Tor network (test/helpers/tor-network.ts): qemu runs inside its network namespace, and the
   * guest's restricted user-mode network forwards each of the network's ports at `address` (its relays and
   * authorities) into the namespace, one pipe per connection. Nothing else the guest sends goes anywhere: not
   * DNS, not NTP, not the host.
   */
  torNetwork?: { netns: string; address: string; ports: number[] };
  /** Extra kernel command line words, after the card's own cmdline.txt (read at each start). */
  append?: string[];
  memoryMiB?: number;
}

type AgentMessage = { event: string; [key: string]: unknown };

export class Vm {
  readonly lines: ConsoleLine[] = [];
  readonly consoleLog: string;
  private readonly started = Date.now();
  private readonly child: ResultPromise;
  private readonly log: WriteStream;
  private partial = '';
  private readonly lineWaiters: Array<() => void> = [];
  private agent?: Socket;
  private agentBuffer = '';
  private readonly agentMessages: AgentMessage[] = [];
  private readonly agentWaiters: Array<() => void> = [];
  exited = false;
  readonly exit: Promise<{ exitCode?: number; signal?: string }>;

  /** The kernel command line this boot used. */
  readonly commandLine: string;

  private constructor(readonly options: VmOptions, cardCmdline: string) {
    this.consoleLog = join(options.dir, `${options.name}.console.log`);
    this.log = createWriteStream(this.consoleLog);
    this.commandLine = vmCommandLine(cardCmdline, options.append);
    const qemu = ['qemu-system-aarch64', ...qemuArgs(options, this.commandLine)];
    const argv = options.torNetwork ? inNetns(options.torNetwork.netns, qemu) : qemu;
    this.child = execa(argv[0]!, argv.slice(1), { reject: false, stdin: 'ignore', stderr: 'pipe', buffer: { stdout: false } });
    this.child.stdout!.on('data', (data: Buffer) => this.onConsole(data));
    this.exit = this.child.then((result) => {
      this.exited = true;
      this.wake();
      this.log.end();
      if (result.stderr) this.lines.push({ text: `[qemu stderr] ${result.stderr}`, at: this.elapsed() });
      return { exitCode: result.exitCode, signal: result.signal };
    });
  }

  static async start(options: VmOptions): Promise<Vm> {
    await mkdir(options.dir, { recursive: true });
    for (const socket of ['qmp', 'agent']) await rm(join(options.dir, `${options.name}.${socket}.sock`), { force: true });
    // Read at every start: a first boot rewrites it (resize removed, a new disk id in root=PARTUUID=).
    const vm = new Vm(options, await readCardCmdline(options.disk));
    await vm.connectAgent();
    return vm;
  }

  elapsed(): number {
    return Date.now() - this.started;
  }

  private onConsole(data: Buffer): void {
    this.log.write(data);
    this.partial += data.toString('utf8');
    const parts = this.partial.split(/\r?\n/);
    this.partial = parts.pop() ?? '';
    const at = this.elapsed();
    for (const text of parts) this.lines.push({ text, at });
    // getty's prompt has no newline after it: it is a line of its own the moment it appears.
    if (/login: $/.test(this.partial)) {
      this.lines.push({ text: this.partial, at });
      this.partial = '';
    }
    this.wake();
  }

  private wake(): void {
    for (const waiter of this.lineWaiters.splice(0)) waiter();
    for (const waiter of this.agentWaiters.splice(0)) waiter();
  }

  private async tail(): Promise<string> {
    return this.lines.slice(-40).map((l) => l.text).join('\n');
  }

  /** The first console line matching `pattern` (also one already seen). */
  async waitForLine(pattern: RegExp, timeoutMs: number): Promise<ConsoleLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.lines.find((l) => pattern.test(l.text));
      if (line) return line;
      if (this.exited) throw new Error(`${this.options.name}: the VM stopped before "${pattern}"; console: ${this.consoleLog}\n${await this.tail()}`);
      if (Date.now() > deadline) throw new Error(`${this.options.name}: no "${pattern}" on the console within ${timeoutMs / 1000} s; console: ${this.consoleLog}\n${await this.tail()}`);
      await new Promise<void>((resolve) => {
        this.lineWaiters.push(resolve);
        setTimeout(resolve, 1000);
      });
    }
  }

  private async connectAgent(): Promise<void> {
    const path = join(this.options.dir, `${this.options.name}.agent.sock`);
    for (let i = 0; i < 100 && !this.exited; i++) {
      const socket = await new Promise<Socket | undefined>((resolve) => {
        const s = createConnection(path);
        s.once('connect', () => resolve(s));
        s.once('error', () => resolve(undefined));
      });
      if (socket) {
        this.agent = socket;
        socket.on('data', (data: Buffer) => {
          this.agentBuffer += data.toString('utf8');
          let newline;
          while ((newline = this.agentBuffer.indexOf('\n')) >= 0) {
            const line = this.agentBuffer.slice(0, newline);
            this.agentBuffer = this.agentBuffer.slice(newline + 1);
            if (line.trim()) this.agentMessages.push(JSON.parse(line) as AgentMessage);
          }
          this.wake();
        });
        socket.on('error', () => undefined);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`${this.options.name}: could not connect to qemu's agent socket ${path}`);
  }

  /** The next message from the test agent with this event (messages are consumed in order). */
  async waitForAgent(event: string, timeoutMs: number): Promise<AgentMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.agentMessages.findIndex((m) => m.event === event || m.event === 'firstboot-failed');
      if (index >= 0) {
        const [message] = this.agentMessages.splice(index, 1);
        if (message!.event === 'firstboot-failed' && event !== 'firstboot-failed') {
          throw new Error(`${this.options.name}: first boot failed in the VM; console: ${this.consoleLog}\n${await this.tail()}`);
        }
        return message!;
      }
      if (this.exited) throw new Error(`${this.options.name}: the VM stopped before the agent said "${event}"; console: ${this.consoleLog}\n${await this.tail()}`);
      if (Date.now() > deadline) throw new Error(`${this.options.name}: the agent did not say "${event}" within ${timeoutMs / 1000} s; console: ${this.consoleLog}\n${await this.tail()}`);
      await new Promise<void>((resolve) => {
        this.agentWaiters.push(resolve);
        setTimeout(resolve, 1000);
      });
    }
  }

  /** Ask the agent (test/e2e/overlay/.../agent.mjs) for a report of the running system, or another request it knows. */
  async report<T = Record<string, unknown>>(request = 'report', timeoutMs = 60_000): Promise<T> {
    this.agent!.write(`${request}\n`);
    return (await this.waitForAgent(request.split(' ')[0]!, timeoutMs)).report as T;
  }

  /** A clean shutdown through the agent; resolves when qemu has exited. */
  async powerOff(timeoutMs = 120_000): Promise<void> {
    this.agent!.write('poweroff\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exit;
    clearTimeout(timer);
  }

  /** Pull the plug: SIGKILL qemu, whatever the guest is doing. */
  async cutPower(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exit;
  }

  /** Plug in one of `laterSticks` (by its index) through QMP. */
  async plugStick(index: number): Promise<void> {
    await qmp(join(this.options.dir, `${this.options.name}.qmp.sock`), [
      { execute: 'device_add', arguments: { driver: 'usb-storage', bus: 'xhci.0', drive: `later${index}`, id: `later-stick${index}`, removable: true } },
    ]);
  }

  /** Always stop qemu (tests call this in finally blocks). */
  async dispose(): Promise<void> {
    if (!this.exited) await this.cutPower();
    this.agent?.destroy();
  }
}

function qemuArgs(o: VmOptions, commandLine: string): string[] {
  const sock = (kind: string) => join(o.dir, `${o.name}.${kind}.sock`);
  const args = [
    '-M', 'virt', '-cpu', 'cortex-a72', '-smp', '2', '-m', String(o.memoryMiB ?? 1024),
    '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot',
    '-kernel', o.boot.kernel, '-initrd', o.boot.initrd,
    '-append', commandLine,
    '-drive', `file=${o.disk},format=raw,if=virtio,cache=writeback`,
    '-device', 'virtio-rng-pci',
    '-device', 'qemu-xhci,id=xhci',
    '-device', 'virtio-serial-pci,id=vser',
    '-chardev', `socket,id=agent,path=${sock('agent')},server=on,wait=off`,
    '-device', 'virtserialport,bus=vser.0,chardev=agent,name=simplex-pi-e2e',
    '-qmp', `unix:${sock('qmp')},server=on,wait=off`,
  ];
  [...(o.stick ? [o.stick] : []), ...(o.moreSticks ?? [])].forEach((stick, i) =>
    args.push('-drive', `file=${stick},format=raw,if=none,id=stick${i}`, '-device', `usb-storage,bus=xhci.0,drive=stick${i},removable=on`),
  );
  (o.virtioDisks ?? []).forEach((disk) => args.push('-drive', `file=${disk},format=raw,if=virtio`));
  (o.laterSticks ?? []).forEach((stick, i) => args.push('-drive', `file=${stick},format=raw,if=none,id=later${i}`));
  if (o.torNetwork) {
    // The guest's LAN is the network's /24 as qemu emulates it (its own gateway and DHCP at .2 and .100 up); a
    // connection to `address` on a forwarded port runs tcp-pipe.mjs in the namespace. restrict=on drops the rest.
    const { address, ports } = o.torNetwork;
    const net = address.replace(/\.\d+$/, '');
    const pipe = join(REPO, 'test/helpers/tcp-pipe.mjs');
    const forwards = ports.map((port) => `guestfwd=tcp:${address}:${port}-cmd:${process.execPath} ${pipe} ${address} ${port}`);
    args.push('-nic', [`user,model=virtio-net-pci,restrict=on,net=${net}.0/24,host=${net}.2,dns=${net}.3,dhcpstart=${net}.100`, ...forwards].join(','));
  } else if (o.forward) {
    // restrict=on: the guest reaches nothing outside (not the host, not the Internet); only this forward comes in.
    args.push('-nic', `user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:${o.forward.hostPort}-:${o.forward.guestPort}`);
  } else {
    args.push('-nic', 'none');
  }
  return args;
}

/** One QMP session: negotiate capabilities, run the commands, fail on any error reply. */
async function qmp(path: string, commands: Array<{ execute: string; arguments?: unknown }>): Promise<void> {
  const socket = createConnection(path);
  let buffer = '';
  const replies: Array<Record<string, unknown>> = [];
  let wake: (() => void) | undefined;
  socket.on('data', (data: Buffer) => {
    buffer += data.toString('utf8');
    let newline;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (!line) continue;
      const message = JSON.parse(line) as Record<string, unknown>;
      if ('return' in message || 'error' in message || 'QMP' in message) replies.push(message);
      wake?.();
    }
  });
  const next = async (): Promise<Record<string, unknown>> => {
    while (!replies.length) await new Promise<void>((resolve) => (wake = resolve));
    return replies.shift()!;
  };
  try {
    await next(); // greeting
    for (const command of [{ execute: 'qmp_capabilities' }, ...commands]) {
      socket.write(`${JSON.stringify(command)}\n`);
      const reply = await next();
      if ('error' in reply) throw new Error(`QMP ${command.execute}: ${JSON.stringify(reply.error)}`);
    }
  } finally {
    socket.destroy();
  }
}

/**
 * The bookkeeping a VM test file shares: the VMs it started (all stopped at the end), the figures it measured
 * (printed, never asserted on), and whether a test failed (then the scratch directory with the console logs and
 * disks is kept and its path printed; a green run leaves nothing behind).
 */
export class VmTestRun {
  readonly vms: Vm[] = [];
  readonly timings: Record<string, number> = {};
  failed = false;
  dir?: string;

  constructor(private readonly label: string) {}

  async start(options: VmOptions): Promise<Vm> {
    const vm = await Vm.start(options);
    this.vms.push(vm);
    return vm;
  }

  /** Wrap a test body: a failure marks the run failed, so its logs are kept. */
  track<T>(body: () => Promise<T>): () => Promise<T> {
    return async () => {
      try {
        return await body();
      } catch (error) {
        this.failed = true;
        throw error;
      }
    };
  }

  async finish(): Promise<void> {
    for (const vm of this.vms) await vm.dispose();
    console.log(`${this.label} figures (s): ${JSON.stringify(Object.fromEntries(Object.entries(this.timings).map(([k, v]) => [k, Math.round(v * 10) / 10])))}`);
    if (this.failed) console.log(`${this.label}: VM console logs and disks kept in ${this.dir}`);
    else if (this.dir && keepScratch()) console.log(`${this.label}: VM console logs and disks kept in ${this.dir} (SIMPLEX_PI_KEEP_SCRATCH=1)`);
    else if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

/** A scratch directory for one VM test run (kept when a test fails: it holds the console logs). */
export async function vmScratch(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'spi-vm-'));
}
