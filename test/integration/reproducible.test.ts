import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { cp, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSha256Sums } from '../../builder/outputs/sha256sums.ts';
import { TEST_CACHE, cli, isRoot, scratch, testSshPublicKey } from '../helpers/env.ts';
import { TestServer } from '../helpers/http-server.ts';
import { type ServedStandins, debianStandinRecipe, serveStandins } from '../helpers/standins.ts';

// Reproducible images (README "Reproducible images"): the same recipe, base, packages layer and binaries give the
// same bytes, in another directory and at another time; a one-field edit recompresses only the chunks it touches;
// every reader users have reproduces the exact .img; rebuild-check tells a faithful copy from a tampered one.

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function sha256OfOutput(file: string, args: string[]): Promise<string> {
  const child = execa(file, args, { stdout: 'pipe', buffer: false });
  const hash = createHash('sha256');
  for await (const chunk of child.stdout!) hash.update(chunk as Buffer);
  await child;
  return hash.digest('hex');
}

/** The xz line of a build log: "xz: N chunks, M compressed, K from the cache". */
function chunkCounts(log: string): { chunks: number; compressed: number; reused: number } {
  const match = /xz: (\d+) chunks, (\d+) compressed, (\d+) from the cache/.exec(log);
  if (!match) throw new Error(`the build log has no xz line:\n${log.slice(-2000)}`);
  return { chunks: Number(match[1]), compressed: Number(match[2]), reused: Number(match[3]) };
}

describe.runIf(isRoot)('reproducible images', () => {
  const server = new TestServer();
  let dir: string;
  let standins: ServedStandins;
  let sshKey: string;
  const recipe = (extra: string[] = []) => debianStandinRecipe({ name: 'same', standins, sshKey, instances: 2, extra });
  const build = async (recipeFile: string, out: string) => {
    // xz -1: the chunks are compressed, cached and reused the same way at every level, and the first build of a fresh
    // cache compresses every chunk (npm run bench measures -6, the default).
    const result = await cli(['build', '--recipe', recipeFile, '--out', out, '--cache', TEST_CACHE, '--xz-level', '1'], { timeout: 30 * 60 * 1000 });
    expect(result.exitCode, result.all).toBe(0);
    return readFile(join(out, 'same.build.log'), 'utf8');
  };

  beforeAll(async () => {
    await server.start();
    dir = await scratch('reproducible');
    standins = await serveStandins(server, dir, '6.5.2');
    sshKey = await testSshPublicKey();
    await writeFile(join(dir, 'same.yaml'), recipe());
  });
  afterAll(() => server.stop());

  it('two builds in two directories, a while apart (the second by rebuild-check): the same SHA256SUMS, IDENTICAL, and xzcat, bsdcat and bmaptool each give back the exact .img', { timeout: 40 * 60 * 1000 }, async () => {
    await build(join(dir, 'same.yaml'), join(dir, 'first'));
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const kept = join(dir, 'rebuilt');
    const check = await cli(['rebuild-check', join(dir, 'first'), '--cache', TEST_CACHE, '--keep', kept], { timeout: 30 * 60 * 1000 });
    expect(check.exitCode, check.all).toBe(0);
    expect(check.stdout).toContain('same: IDENTICAL, rebuilt bit for bit from the recorded inputs');
    for (const file of ['same.img', 'same.img.xz', 'same.img.bmap', 'manifest.json']) expect(check.stdout).toContain(`  identical   ${file}\n`);
    const sums = await readFile(join(dir, 'first', 'SHA256SUMS'), 'utf8');
    expect(await readFile(join(kept, 'same', 'SHA256SUMS'), 'utf8')).toBe(sums);
    expect(parseSha256Sums(sums, 'SHA256SUMS').map((e) => e.name)).toEqual(['same.img', 'same.img.xz', 'same.img.bmap', 'manifest.json']);
    // Nothing changed: every chunk came from the cache.
    const counts = chunkCounts(await readFile(join(kept, 'same', 'same.build.log'), 'utf8'));
    expect(counts).toMatchObject({ compressed: 0, reused: counts.chunks });

    const image = await sha256Of(join(dir, 'first', 'same.img'));
    const xz = join(dir, 'first', 'same.img.xz');
    expect(await sha256OfOutput('xzcat', [xz])).toBe(image);
    // libarchive, what Raspberry Pi Imager reads the download with.
    expect(await sha256OfOutput('bsdcat', [xz])).toBe(image);
    const copy = join(dir, 'bmaptool-copy.img');
    await execa('bmaptool', ['copy', '--bmap', join(dir, 'first', 'same.img.bmap'), xz, copy]);
    expect(await sha256Of(copy)).toBe(image);
    const manifest = JSON.parse(await readFile(join(dir, 'first', 'manifest.json'), 'utf8'));
    expect(manifest.outputs[0]).toMatchObject({ name: 'same.img', sha256: image });
  });

  it('rebuild-check names the file a changed image differs in', { timeout: 30 * 60 * 1000 }, async () => {
    const tampered = join(dir, 'tampered');
    await cp(join(dir, 'first'), tampered, { recursive: true });
    const image = join(tampered, 'same.img');
    // One byte of /etc/hostname's data block changed, as someone altering the published image would.
    const { stdout: table } = await execa('sfdisk', ['--json', image]);
    const rootStart = JSON.parse(table).partitiontable.partitions[1].start * 512;
    const { stdout: block } = await execa('debugfs', ['-R', 'bmap /etc/hostname 0', `${image}?offset=${rootStart}`]);
    const offset = rootStart + Number(block.trim()) * 4096;
    const file = await open(image, 'r+');
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, offset);
    await file.write(Buffer.from([byte[0]! ^ 0x20]), 0, 1, offset);
    await file.close();
    const check = await cli(['rebuild-check', join(tampered, 'manifest.json'), '--cache', TEST_CACHE], { timeout: 30 * 60 * 1000 });
    expect(check.exitCode, check.all).toBe(1);
    expect(check.stdout).toContain('  DIFFERENT   same.img\n');
    expect(check.stdout).toContain('  identical   same.img.xz\n');
    expect(check.stdout).toMatch(new RegExp(`first difference: byte ${offset}: partition 2, the root filesystem, block \\d+, in /etc/hostname`));
    expect(check.stdout).toContain('1 of ');
    expect(check.stdout).toContain('same: NOT identical to a build of its recorded inputs');
    expect(check.stderr).toContain('same is not what its recorded inputs build');
  });

  it('a one-field recipe edit recompresses only the chunks it changed, though files after it move', { timeout: 30 * 60 * 1000 }, async () => {
    // 600 -> 3600: plan.json and the watchdog timer grow by a byte; mke2fs lays the tree out in name order, so a
    // file that grows by a block moves every block after it, and the chunks are cut by content to survive that.
    await writeFile(join(dir, 'edited.yaml'), recipe(['watchdog: { interval_seconds: 3600 }']));
    const log = await build(join(dir, 'edited.yaml'), join(dir, 'edited'));
    const counts = chunkCounts(log);
    console.info(`one-field edit: ${counts.compressed} of ${counts.chunks} chunks compressed again`);
    expect(counts.compressed).toBeGreaterThan(0);
    expect(counts.compressed).toBeLessThanOrEqual(6);
    expect(counts.reused).toBe(counts.chunks - counts.compressed);
    const [first, edited] = await Promise.all([sha256Of(join(dir, 'first', 'same.img')), sha256Of(join(dir, 'edited', 'same.img'))]);
    expect(edited).not.toBe(first);
  });
});
