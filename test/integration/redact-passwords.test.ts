import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureServer } from '../../builder/device/servers.ts';
import { readIni } from '../../builder/device/ini.ts';
import { REPO, scratch } from '../helpers/env.ts';
import { REDACTION_CASES } from '../helpers/redaction-cases.ts';
import { StandinRelay, freePort, relaySession } from '../helpers/standin-relay.ts';
import { standinScript } from '../fixtures/standin/build.ts';

/**
 * The relay units run each relay through redact-passwords (ExecStart=), so that the password the relay prints at
 * every start never reaches the journal. The unit's contract, tested here without systemd: systemd stops a unit
 * by signalling every process in it (KillMode=control-group, KillSignal=SIGINT), which a process group stands
 * in for; the unit's main process is the one systemd started (the relay must be it, to get SIGINT and save its
 * messages); the unit's result is that process's exit status.
 */
const WRAPPER = join(REPO, 'overlays/rootfs/usr/local/lib/simplex-pi/redact-passwords');
const SECRET = 'pa55w0rd-x_y=';

/** A relay stand-in in sh: prints its address (with the password) and, when stopped with SIGINT, saves for a while. */
const FAKE_RELAY = `#!/bin/sh
trap '' TERM
trap 'echo "Received SIGINT, stopping server..."; sleep 0.3; echo "saving messages to file"; i=0
  while [ $i -lt 10000 ]; do echo "record $i smp://fp:${SECRET}@h"; i=$((i+1)); done
  echo "Server stopped"; exit 7' INT
echo "pid $$"
echo "Server address: smp://fp:${SECRET}@abc.onion:5301"
echo "on stderr: xftp://fp:${SECRET}@abc.onion" >&2
echo "listening"
while :; do sleep 0.05; done
`;

/** The programs running in a process group, from /proc (stat: comm, state, ppid, group). */
async function groupMembers(group: number): Promise<string[]> {
  const members: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === group && fields[0] !== 'Z') members.push(stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')));
  }
  return members;
}

/** Ends a unit stand-in that a failed expectation left running. */
function killGroup(group: number | undefined): void {
  try {
    if (group) process.kill(-group, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

async function waitFor(output: () => string, text: string): Promise<void> {
  for (let i = 0; i < 400 && !output().includes(text); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  expect(output()).toContain(text);
}

describe('redact-passwords: the relay units keep every password out of the journal', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await scratch('redact');
    await writeFile(join(dir, 'relay'), FAKE_RELAY, { mode: 0o755 });
  });

  it('the relay stays the main process, gets SIGINT itself, and all it writes while it stops is passed on, without the password; its exit status is the unit\'s', async () => {
    // Its own process group, as a unit has its own cgroup; TMPDIR as the unit's private /tmp.
    const tmp = await scratch('redact-tmp');
    const unit = execa(WRAPPER, [join(dir, 'relay')], { detached: true, reject: false, all: true, env: { TMPDIR: tmp } });
    let output = '';
    unit.all.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      await waitFor(() => output, 'listening');
      expect(output).toContain(`pid ${unit.pid}\n`);
      // The pipe's name is gone once both ends are open: nothing is left in /tmp.
      expect(await readdir(tmp)).toEqual([]);
      expect(await groupMembers(unit.pid!)).toEqual(expect.arrayContaining(['relay', 'sed']));
    } catch (error) {
      killGroup(unit.pid);
      throw error;
    }

    // systemctl stop: SIGINT to every process of the unit, and a SIGTERM on top for good measure (sed ignores both).
    process.kill(-unit.pid!, 'SIGINT');
    await new Promise((resolve) => setTimeout(resolve, 100));
    process.kill(-unit.pid!, 'SIGTERM');
    const result = await unit;

    expect(result.exitCode).toBe(7);
    const lines = output.trimEnd().split('\n');
    expect(lines).toContain('saving messages to file');
    // 10 000 records are far more than a pipe holds: sed kept reading after the signal, to the last line.
    expect(lines.filter((l) => l.startsWith('record '))).toHaveLength(10000);
    expect(lines.at(-1)).toBe('Server stopped');
    expect(output).not.toContain(SECRET);
    expect(output).toContain('Server address: smp://fp:<hidden>@abc.onion:5301\n');
    expect(output).toContain('on stderr: xftp://fp:<hidden>@abc.onion\n');
    // The unit is empty once the relay has stopped: sed ends with it (it closed the output first, so allow it a moment).
    let left = await groupMembers(unit.pid!);
    for (let i = 0; i < 40 && left.length; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      left = await groupMembers(unit.pid!);
    }
    expect(left).toEqual([]);
  });

  it('the stand-in relay, started and stopped as its unit does: messages saved, no password printed', { timeout: 60_000 }, async () => {
    const relayDir = await scratch('redact-standin');
    const relay = await StandinRelay.create(relayDir);
    const port = await freePort();
    const init = await relay.run('init', '-y', '--disable-web', '-n', 'example.onion');
    expect(init.exitCode, init.all).toBe(0);
    const ini = await readFile(relay.iniPath, 'utf8');
    const password = readIni(ini, 'AUTH', 'create_password')!;
    expect(password.length).toBeGreaterThan(20);
    await writeFile(relay.iniPath, ini.replace(/^port = .*$/m, `port = ${port}`));

    const script = await standinScript('smp', '6.5.2.0');
    const unit = execa(WRAPPER, ['node', '-e', script, '--', 'start', '+RTS', '-N', '-RTS'], { detached: true, reject: false, all: true, env: relay.env });
    let output = '';
    unit.all.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      await waitFor(() => output, 'Serving SMP protocol on port');
      const { socket, ask } = await relaySession(port);
      expect(await ask('SEND member hello')).toMatch(/^OK /);
      socket.destroy();
    } catch (error) {
      killGroup(unit.pid);
      throw error;
    }

    process.kill(-unit.pid!, 'SIGINT');
    const result = await unit;
    expect(result.exitCode, output).toBe(0);
    expect(output).toContain('saving messages to file');
    expect(output).toMatch(/Server address: smp:\/\/[A-Za-z0-9_=-]+:<hidden>@example\.onion:\d+\n/);
    expect(output).not.toContain(password);
    expect(await readFile(relay.messagesFile, 'latin1')).toMatch(/ member /);
  });

  it('sed hides what the device program hides (builder/device/redact.ts), line for line', async () => {
    const lines = REDACTION_CASES.map(([line]) => line);
    const printer = join(dir, 'printer');
    await writeFile(printer, `#!/bin/sh\ncat <<'EOF'\n${lines.join('\n')}\nEOF\n`, { mode: 0o755 });
    const result = await execa(WRAPPER, [printer], { reject: false, env: { TMPDIR: dir } });
    expect(result.exitCode).toBe(0);
    expect(result.stdout.split('\n')).toEqual(REDACTION_CASES.map(([, kept]) => kept));
  });

  it('refuses to start the relay when its output cannot be filtered, and when no program is given', async () => {
    const noTmp = await execa(WRAPPER, [join(dir, 'relay')], { reject: false, all: true, env: { TMPDIR: join(dir, 'missing') } });
    expect(noTmp.exitCode).not.toBe(0);
    expect(noTmp.all).not.toContain('pid ');
    const none = await execa(WRAPPER, [], { reject: false, all: true });
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toContain('redact-passwords: no program given');
  });

  it('a failed init, which the device program reports in the first-boot journal, says what failed without the password', async () => {
    const cfgPath = await scratch('redact-init');
    const init = join(cfgPath, 'init');
    await writeFile(init, `#!/bin/sh\necho "Server address: smp://fp:${SECRET}@abc.onion"\necho "Error: no space left on device" >&2\nexit 1\n`, { mode: 0o755 });
    const spec = { binary: init, iniFile: 'smp-server.ini', cfgPath, logPath: cfgPath, env: {}, initArgs: ['init', '-y'], ini: [] };
    const failure = await ensureServer(spec, 'abc.onion', { uid: process.getuid!(), gid: process.getgid!() }).catch((error: Error) => error);
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toContain('Error: no space left on device');
    expect((failure as Error).message).toContain('smp://fp:<hidden>@abc.onion');
    expect((failure as Error).message).not.toContain(SECRET);
  });
});
