import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileBase } from '../../builder/base/file.ts';
import { raspiosBase } from '../../builder/base/raspios.ts';
import type { BaseContext } from '../../builder/base/types.ts';
import { Cache } from '../../builder/cache.ts';
import { assembleImage } from '../../builder/image/assemble.ts';
import { silentLog } from '../../builder/log.ts';
import { baseSchema } from '../../builder/recipe/schema.ts';
import { Resources } from '../../builder/resources.ts';
import { TestServer } from '../helpers/http-server.ts';
import { cli, isRoot, scratch } from '../helpers/env.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const LITE = 'Raspberry Pi OS Lite (64-bit)';

/** A small Raspberry Pi OS look-alike: FAT boot partition 1 with cmdline.txt, ext4 root 2 mounting it at /boot/firmware. */
async function makeImage(dir: string, marker: string): Promise<{ img: Buffer; xz: Buffer }> {
  const root = join(dir, `root-${marker}`);
  const boot = join(dir, `boot-${marker}`);
  await mkdir(join(root, 'etc'), { recursive: true });
  await mkdir(join(root, 'boot/firmware'), { recursive: true });
  await mkdir(boot, { recursive: true });
  await writeFile(join(root, 'etc/fstab'), 'PARTUUID=abcd-01  /boot/firmware  vfat  defaults  0  2\nPARTUUID=abcd-02  /  ext4  defaults,noatime  0  1\n');
  await writeFile(join(root, 'etc/os-release'), `PRETTY_NAME="Raspberry Pi OS look-alike ${marker}"\n`);
  await writeFile(join(boot, 'cmdline.txt'), 'console=serial0,115200 root=PARTUUID=abcd-02 rootwait init=/usr/lib/raspberrypi-sys-mods/firstboot\n');
  const path = join(dir, `${marker}.img`);
  await assembleImage({ rootDir: root, bootDir: boot, output: path, bootMiB: 64, rootMiB: 32 });
  execFileSync('xz', ['--keep', '-0', '--force', path]);
  return { img: await readFile(path), xz: await readFile(`${path}.xz`) };
}

function osList(entries: { url: string; extract: string; download?: string }, extra: object[] = []): string {
  return JSON.stringify({
    imager: { latest_version: '2.0.0' },
    os_list: [
      { name: 'Raspberry Pi OS (64-bit)', description: 'desktop', icon: 'x.png', url: '/desktop.img.xz', extract_sha256: 'f'.repeat(64) },
      {
        name: 'Raspberry Pi OS (other)',
        description: 'other',
        icon: 'x.png',
        subitems: [
          {
            name: LITE,
            description: 'A port of Debian with no desktop environment',
            icon: 'x.png',
            url: entries.url,
            extract_size: 0,
            extract_sha256: entries.extract,
            ...(entries.download ? { image_download_sha256: entries.download } : {}),
            image_download_size: 0,
            release_date: '2025-10-01',
            init_format: 'systemd',
            devices: ['pi5-64bit', 'pi4-64bit', 'pi3-64bit'],
          },
        ],
      },
      ...extra,
    ],
  });
}

describe('the raspios base provider, against a local Imager repository', () => {
  const server = new TestServer();
  let dir: string;
  let image: { img: Buffer; xz: Buffer };

  const context = (cacheRoot: string): BaseContext => ({ cache: new Cache(cacheRoot), log: silentLog, resources: new Resources(), workDir: join(cacheRoot, 'work') });
  const spec = (jsonPath: string) => baseSchema.parse({ provider: 'raspios', imager_json: `${server.url}${jsonPath}` }) as Extract<ReturnType<typeof baseSchema.parse>, { provider: 'raspios' }>;

  beforeAll(async () => {
    await server.start();
    dir = await scratch('raspios');
    image = await makeImage(dir, 'good');
    server.serve('/images/lite.img.xz', image.xz);
    server.serve('/os_list.json', osList({ url: '/images/lite.img.xz', extract: sha(image.img), download: sha(image.xz) }));
  });
  afterAll(() => server.stop());

  it('resolves Lite (64-bit) in the nested list, verifies both hashes, decompresses, and keeps init_format and release_date', async () => {
    const cacheRoot = await scratch('cache');
    const base = await raspiosBase(spec('/os_list.json'), context(cacheRoot));
    expect(base).toMatchObject({
      provider: 'raspios',
      sha256: sha(image.img),
      downloadSha256: sha(image.xz),
      releaseDate: '2025-10-01',
      listedInitFormat: 'systemd',
      url: `${server.url}/images/lite.img.xz`,
    });
    expect((await readFile(base.path)).equals(image.img)).toBe(true);

    const imageRequests = server.requestsFor('/images/lite.img.xz').length;
    const again = await raspiosBase(spec('/os_list.json'), context(cacheRoot));
    expect(again.path).toBe(base.path);
    expect(server.requestsFor('/images/lite.img.xz').length).toBe(imageRequests);
  });

  it('follows subitems_url to another repository file', async () => {
    server.serve('/nested.json', JSON.stringify({ os_list: [{ name: 'Raspberry Pi OS (legacy)', subitems_url: '/os_list.json' }] }));
    const base = await raspiosBase(spec('/nested.json'), context(await scratch('cache')));
    expect(base.sha256).toBe(sha(image.img));
  });

  it('resumes a download cut off halfway', async () => {
    server.serve('/images/cut.img.xz', { body: image.xz, cutAfter: Math.floor(image.xz.length / 2), cuts: 1 });
    server.serve('/cut.json', osList({ url: '/images/cut.img.xz', extract: sha(image.img), download: sha(image.xz) }));
    const base = await raspiosBase(spec('/cut.json'), context(await scratch('cache')));
    expect(base.sha256).toBe(sha(image.img));
    const requests = server.requestsFor('/images/cut.img.xz');
    expect(requests).toHaveLength(2);
    expect(requests[1]!.range).toMatch(/^bytes=[1-9]\d*-$/);
  });

  it('refuses tampered bytes and caches nothing', async () => {
    const tampered = Buffer.from(image.xz);
    tampered[200] = tampered[200]! ^ 0x55;
    server.serve('/images/tampered.img.xz', tampered);
    server.serve('/tampered.json', osList({ url: '/images/tampered.img.xz', extract: sha(image.img), download: sha(image.xz) }));
    const cacheRoot = await scratch('cache');
    await expect(raspiosBase(spec('/tampered.json'), context(cacheRoot))).rejects.toThrow(
      `sha256 mismatch for Raspberry Pi OS image ${LITE}: expected ${sha(image.xz)}, got ${sha(tampered)}`,
    );
    expect(await readdir(join(cacheRoot, 'downloads'))).toEqual([]);
    expect(existsSync(join(cacheRoot, 'bases'))).toBe(false);
  });

  it('refuses an image whose uncompressed content does not match extract_sha256, even without a download hash', async () => {
    const other = await makeImage(dir, 'other');
    server.serve('/images/other.img.xz', other.xz);
    server.serve('/swapped.json', osList({ url: '/images/other.img.xz', extract: sha(image.img) }));
    const cacheRoot = await scratch('cache');
    await expect(raspiosBase(spec('/swapped.json'), context(cacheRoot))).rejects.toThrow(
      `sha256 mismatch for Raspberry Pi OS image ${LITE} (uncompressed): expected ${sha(image.img)}, got ${sha(other.img)}; nothing was written`,
    );
    expect(await readdir(join(cacheRoot, 'downloads'))).toEqual([]);
    expect(await readdir(join(cacheRoot, 'bases'))).toEqual([]);
  });

  it('uses a pinned url and sha256 without the repository', async () => {
    const pinned = baseSchema.parse({ provider: 'raspios', url: `${server.url}/images/lite.img.xz`, sha256: sha(image.xz), release_date: '2025-10-01' });
    const base = await raspiosBase(pinned as Parameters<typeof raspiosBase>[0], context(await scratch('cache')));
    expect(base).toMatchObject({ sha256: sha(image.img), releaseDate: '2025-10-01' });
    // Nothing lists a pinned image: no init_format is assumed (it was `systemd`); configure detects it from the image.
    expect(base.listedInitFormat).toBeUndefined();
    expect(base).not.toHaveProperty('initFormat');
  });

  it('assumes no init_format for a list entry without one (Imager 2.x treats it as none)', async () => {
    const list = JSON.parse(osList({ url: '/images/lite.img.xz', extract: sha(image.img), download: sha(image.xz) }));
    delete list.os_list[1].subitems[0].init_format;
    server.serve('/no-init-format.json', JSON.stringify(list));
    const base = await raspiosBase(spec('/no-init-format.json'), context(await scratch('cache')));
    expect(base.sha256).toBe(sha(image.img));
    expect(base.listedInitFormat).toBeUndefined();
    expect(base).not.toHaveProperty('initFormat');
  });

  it('names the entry when the repository does not list it', async () => {
    server.serve('/empty.json', JSON.stringify({ os_list: [] }));
    await expect(raspiosBase(spec('/empty.json'), context(await scratch('cache')))).rejects.toThrow(`"${LITE}" is not listed in ${server.url}/empty.json`);
  });

  it.runIf(isRoot)('stops `simplex-pi build` on tampered bytes and leaves the output directory untouched', async () => {
    const recipePath = join(dir, 'tampered.yaml');
    await writeFile(recipePath, `name: tampered\nbase:\n  provider: raspios\n  imager_json: ${server.url}/tampered.json\n`);
    const out = join(dir, 'out');
    await mkdir(out);
    await writeFile(join(out, 'earlier.txt'), 'kept');
    const result = await cli(['build', '--recipe', recipePath, '--out', out, '--cache', await scratch('cache')]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain(`error: sha256 mismatch for Raspberry Pi OS image ${LITE}`);
    expect(await readdir(out)).toEqual(['earlier.txt']);
  });
});

describe('the file base provider', () => {
  it('verifies the given file, decompresses .xz into the cache, and reuses it', async () => {
    const dir = await scratch('file');
    const image = await makeImage(dir, 'local');
    const cacheRoot = await scratch('cache');
    const ctx: BaseContext = { cache: new Cache(cacheRoot), log: silentLog, resources: new Resources(), workDir: join(cacheRoot, 'work') };
    const base = await fileBase({ path: join(dir, 'local.img.xz'), sha256: sha(image.xz) }, ctx);
    expect(base).toMatchObject({ provider: 'file', sha256: sha(image.img) });
    // Detected from the image in configure (or set with base.init_format), no longer always none.
    expect(base).not.toHaveProperty('initFormat');
    expect((await readFile(base.path)).equals(image.img)).toBe(true);
    expect((await fileBase({ path: join(dir, 'local.img.xz'), sha256: sha(image.xz) }, ctx)).path).toBe(base.path);
  });

  it('refuses a file whose sha256 differs, and a file that does not exist', async () => {
    const dir = await scratch('file');
    await makeImage(dir, 'local');
    const cacheRoot = await scratch('cache');
    const ctx: BaseContext = { cache: new Cache(cacheRoot), log: silentLog, resources: new Resources(), workDir: join(cacheRoot, 'work') };
    const wrong = 'e'.repeat(64);
    await expect(fileBase({ path: join(dir, 'local.img'), sha256: wrong }, ctx)).rejects.toThrow(
      new RegExp(`sha256 mismatch for base image .*local\\.img: expected ${wrong}, got [0-9a-f]{64}; nothing was written`),
    );
    await expect(fileBase({ path: join(dir, 'missing.img'), sha256: wrong }, ctx)).rejects.toThrow(/missing\.img does not exist/);
    expect(existsSync(join(cacheRoot, 'bases'))).toBe(false);
  });
});
