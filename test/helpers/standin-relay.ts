import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { execa, type Result, type ResultPromise } from 'execa';
import { RELAY_KINDS, type RelayKindLayout } from '../../builder/plan/layout.ts';
import { standinScript } from '../fixtures/standin/build.ts';
import { freePort } from './env.ts';
import { inNetns } from './netns.ts';

export { freePort };

/**
 * An SMP stand-in relay run on the host with the host's Node, exactly as the ELF runs it in the image
 * (`node -e <script> -- ARGS`), with its configuration and state under `dir`. For tests of the stand-in's
 * contract and of what the image does around the relay (stopping it, repairing what it saved).
 */
export class StandinRelay {
  readonly env: Record<string, string>;
  private readonly layout: RelayKindLayout;
  private constructor(
    private readonly script: string,
    readonly kind: 'smp' | 'xftp',
    dir: string,
  ) {
    this.layout = RELAY_KINDS[kind];
    this.env = { [this.layout.cfgEnv]: join(dir, 'etc'), [this.layout.logEnv]: join(dir, 'var') };
  }

  static async create(dir: string, kind: 'smp' | 'xftp' = 'smp', version = '6.5.2.0'): Promise<StandinRelay> {
    return new StandinRelay(await standinScript(kind, version), kind, dir);
  }

  get cfgPath(): string {
    return this.env[this.layout.cfgEnv]!;
  }

  get logPath(): string {
    return this.env[this.layout.logEnv]!;
  }

  /** The INI `init` wrote. */
  get iniPath(): string {
    return join(this.cfgPath, this.layout.iniFile);
  }

  /** Where the relay saves undelivered messages at a clean stop (upstream's storeMsgsFilePath). */
  get messagesFile(): string {
    return join(this.logPath, this.layout.savedFiles[0]!);
  }

  run(...args: string[]): Promise<Result<{ reject: false; all: true }>> {
    return execa('node', ['-e', this.script, '--', ...args], { env: this.env, reject: false, all: true });
  }

  /**
   * The INI at `iniPath` as the real server's parser (ini-0.4.1, ported in the stand-in) reads it:
   * { SECTION: { key: value } }. A stand-in-only switch makes `start` print it and stop.
   */
  async parsedIni(): Promise<Record<string, Record<string, string>>> {
    const result = await execa('node', ['-e', this.script, '--', 'start'], { env: { ...this.env, SIMPLEX_STANDIN_PRINT_INI: '1' }, reject: false, all: true });
    if (result.exitCode !== 0) throw new Error(`the stand-in could not read ${this.iniPath}:\n${result.all}`);
    return JSON.parse(result.stdout);
  }

  /**
   * `start`, resolved once the relay listens; fails with its output if it exits first. With `{ netns }` first, the
   * relay runs in that network namespace (netns.ts inNetns), as one behind an onion service of the private Tor network.
   */
  async start(...args: string[] | [{ netns?: string }, ...string[]]): Promise<RunningRelay> {
    const given: ReadonlyArray<string | { netns?: string }> = args;
    const netns = typeof given[0] === 'object' ? given[0].netns : undefined;
    const argv = ['-e', this.script, '--', 'start', ...given.filter((arg): arg is string => typeof arg === 'string')];
    const [command, ...commandArgs] = netns ? inNetns(netns, ['node', ...argv]) : ['node', ...argv];
    const child = execa(command!, commandArgs, { env: this.env, reject: false, all: true });
    let output = '';
    child.all.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 20_000;
    while (!/Serving SMP protocol on port|Listening on port/.test(output)) {
      if (child.exitCode !== null || Date.now() > deadline) {
        await child.catch(() => undefined);
        throw new Error(`the stand-in relay did not start:\n${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return { process: child, output: () => output };
  }
}

export interface RunningRelay {
  process: ResultPromise<{ reject: false; all: true }>;
  output: () => string;
}

export interface RelaySession {
  socket: TLSSocket;
  /** One line of the stand-in's protocol (SEND q text, COUNT q, QUEUES), and its one-line answer. */
  ask: (line: string) => Promise<string>;
}

/** A TLS session with the relay as a client opens one (ALPN smp/1, or xftp/1; identity checked by the caller). */
export async function relaySession(port: number, alpn = 'smp/1'): Promise<RelaySession> {
  const socket = connect({ host: '127.0.0.1', port, ALPNProtocols: [alpn], rejectUnauthorized: false });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  let pending = '';
  const waiting: Array<(line: string) => void> = [];
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    pending += chunk;
    for (let at = pending.indexOf('\n'); at !== -1; at = pending.indexOf('\n')) {
      waiting.shift()?.(pending.slice(0, at));
      pending = pending.slice(at + 1);
    }
  });
  return {
    socket,
    ask: (line) =>
      new Promise((resolve) => {
        waiting.push(resolve);
        socket.write(`${line}\n`);
      }),
  };
}

export async function countOn(port: number, queue: string): Promise<number> {
  const { socket, ask } = await relaySession(port);
  const n = Number(await ask(`COUNT ${queue}`));
  socket.destroy();
  return n;
}
