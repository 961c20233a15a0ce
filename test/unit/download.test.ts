import { randomBytes, createHash } from 'node:crypto';
import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadVerified, partialDownloadPath } from '../../builder/base/download.ts';
import { Cache } from '../../builder/cache.ts';
import { TestServer } from '../helpers/http-server.ts';
import { scratch } from '../helpers/env.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('downloadVerified', () => {
  const server = new TestServer();
  let cache: Cache;
  const body = randomBytes(3 * 1024 * 1024 + 17);

  beforeAll(async () => {
    await server.start();
    cache = new Cache(await scratch('dl'));
  });
  afterAll(() => server.stop());

  it('downloads, verifies and caches by sha256; a second call does not touch the network', async () => {
    server.serve('/a.bin', body);
    const path = await downloadVerified(cache, { url: `${server.url}/a.bin`, what: 'a', sha256: sha(body) });
    expect(path).toBe(cache.download(sha(body)));
    expect((await readFile(path)).equals(body)).toBe(true);
    await downloadVerified(cache, { url: `${server.url}/a.bin`, what: 'a', sha256: sha(body) });
    expect(server.requestsFor('/a.bin')).toHaveLength(1);
  });

  it('resumes a cut download with an HTTP Range request and gets the exact bytes', async () => {
    const big = randomBytes(2_500_000);
    server.serve('/b.bin', { body: big, cutAfter: 1_000_000, cuts: 1 });
    const path = await downloadVerified(cache, { url: `${server.url}/b.bin`, what: 'b', sha256: sha(big) });
    expect((await readFile(path)).equals(big)).toBe(true);
    const requests = server.requestsFor('/b.bin');
    expect(requests).toHaveLength(2);
    expect(requests[0]!.range).toBeUndefined();
    // The client resumes from what reached it before the connection dropped.
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(requests[1]!.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(1_000_000);
  });

  it('resumes a partial file left by an earlier run', async () => {
    const other = randomBytes(200_000);
    const url = `${server.url}/c.bin`;
    server.serve('/c.bin', other);
    await mkdir(cache.downloadsDir, { recursive: true });
    await writeFile(partialDownloadPath(cache, url), other.subarray(0, 123_456));
    const path = await downloadVerified(cache, { url, what: 'c', sha256: sha(other) });
    expect((await readFile(path)).equals(other)).toBe(true);
    expect(server.requestsFor('/c.bin').map((r) => r.range)).toEqual(['bytes=123456-']);
  });

  it('starts over when the server ignores the range', async () => {
    const other = randomBytes(100_000);
    const url = `${server.url}/d.bin`;
    server.serve('/d.bin', { body: other, ignoreRange: true });
    const stale = Buffer.from('not the start of d.bin');
    await mkdir(cache.downloadsDir, { recursive: true });
    await writeFile(partialDownloadPath(cache, url), stale);
    const path = await downloadVerified(cache, { url, what: 'd', sha256: sha(other) });
    // The partial file was found (a Range for its size was sent); the server answered with the whole file, so the
    // client dropped the partial and asked again from the start. Had it appended, the sha256 would not match.
    expect(server.requestsFor('/d.bin').map((r) => r.range)).toEqual([`bytes=${stale.length}-`, undefined]);
    expect((await readFile(path)).equals(other)).toBe(true);
  });

  it('refuses tampered bytes with both hashes in the message and keeps nothing', async () => {
    const original = randomBytes(500_000);
    const tampered = Buffer.from(original);
    tampered[12345] = tampered[12345]! ^ 0xff;
    server.serve('/e.bin', tampered);
    const expected = sha(original);
    await expect(downloadVerified(cache, { url: `${server.url}/e.bin`, what: 'smp-server', sha256: expected })).rejects.toThrow(
      `sha256 mismatch for smp-server: expected ${expected}, got ${sha(tampered)}`,
    );
    const left = await readdir(cache.downloadsDir);
    expect(left.filter((f) => f.endsWith('.partial'))).toEqual([]);
    expect(left).not.toContain(sha(tampered));
  });

  it('says what failed on an HTTP error', async () => {
    await expect(downloadVerified(cache, { url: `${server.url}/missing`, what: 'xftp-server', sha256: 'a'.repeat(64) })).rejects.toThrow(
      /download of xftp-server failed: HTTP 404/,
    );
  });
});
