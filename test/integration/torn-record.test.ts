import { readFile, readdir, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO, scratch } from '../helpers/env.ts';
import { StandinRelay, countOn, freePort, relaySession } from '../helpers/standin-relay.ts';

/**
 * A power cut while an SMP relay saves its messages (at a stop) leaves the file's last record cut off, and the
 * server then refuses to start, at every restart. The image's set-aside-torn-record (run by the relay unit before
 * each start) keeps the relay from that loop without losing a complete record. Here with the stand-in, whose
 * save and restore follow the real server's (test/fixtures/standin/standin.js).
 */
const SCRIPT = join(REPO, 'overlays/rootfs/usr/local/lib/simplex-pi/set-aside-torn-record');

describe('set-aside-torn-record: a relay whose saved messages were cut off by a power cut starts again', () => {
  let dir: string;
  let relay: StandinRelay;
  let port: number;

  beforeAll(async () => {
    dir = await scratch('torn-record');
    relay = await StandinRelay.create(dir);
    port = await freePort();
    const init = await relay.run('init', '-y', '--disable-web', '-n', 'example.onion');
    expect(init.exitCode, init.all).toBe(0);
    const ini = join(relay.cfgPath, 'smp-server.ini');
    await writeFile(ini, (await readFile(ini, 'utf8')).replace(/^port = .*$/m, `port = ${port}`));
  });

  it('keeps every complete record, sets the torn one aside, and the relay restores the rest', async () => {
    const running = await relay.start();
    const { socket, ask } = await relaySession(port);
    for (let i = 1; i <= 5; i++) expect(await ask(`SEND member message-${i}`)).toMatch(/^OK /);
    socket.destroy();
    running.process.kill('SIGINT');
    expect((await running.process).exitCode).toBe(0);

    // The cut: the file as the card holds it when the power went while record 4 was being written.
    const saved = await readFile(relay.messagesFile, 'latin1');
    const records = saved.split('\n').slice(0, 5);
    const cutAt = records.slice(0, 3).join('\n').length + 1 + 7;
    await truncate(relay.messagesFile, cutAt);

    const refused = await relay.run('start');
    expect(refused.exitCode, 'without the repair the relay refuses the file, as the real one does').toBe(1);
    expect(refused.stdout).toContain('start with --skip-warnings option to ignore this error');

    const ntfs = join(relay.logPath, 'smp-server-ntfs.log');
    const repair = await execa('sh', [SCRIPT, relay.messagesFile, ntfs], { reject: false, all: true });
    expect(repair.exitCode, repair.all).toBe(0);
    expect(repair.stderr).toContain('its last, incomplete record (7 bytes) is kept in');
    expect((await stat(relay.messagesFile)).size).toBe(cutAt - 7);
    const aside = (await readdir(relay.logPath)).filter((name) => name.startsWith('smp-server-messages.log.torn-'));
    expect(aside).toHaveLength(1);
    expect(await readFile(join(relay.logPath, aside[0]!), 'latin1')).toBe(records[3]!.slice(0, 7));

    const again = await relay.start();
    expect(await countOn(port, 'member')).toBe(3);
    again.process.kill('SIGINT');
    await again.process;
  });

  it('leaves a complete file, an empty one and a missing one alone, and refuses a symbolic link', async () => {
    const complete = join(dir, 'complete.log');
    await writeFile(complete, 'v3 a b 1 x\nv3 a c 2 y\n');
    const empty = join(dir, 'empty.log');
    await writeFile(empty, '');
    const quiet = await execa('sh', [SCRIPT, complete, empty, join(dir, 'missing.log')], { reject: false, all: true });
    expect(quiet.exitCode).toBe(0);
    expect(quiet.all).toBe('');
    expect(await readFile(complete, 'utf8')).toBe('v3 a b 1 x\nv3 a c 2 y\n');

    const link = join(dir, 'link.log');
    await symlink('/etc/passwd', link);
    const refused = await execa('sh', [SCRIPT, link], { reject: false, all: true });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain('is a symbolic link');
  });
});
