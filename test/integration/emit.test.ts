import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cli, scratch } from '../helpers/env.ts';
import { imagerSchemaErrors } from '../helpers/imager-schema.ts';
import { RASPIOS_BASE, syntheticBuild } from '../helpers/synthetic-output.ts';

// The real emit stage (real xz) on small synthetic images: what every build writes for Raspberry Pi Imager.

async function fileFacts(path: string): Promise<{ size: number; sha256: string }> {
  return { size: (await stat(path)).size, sha256: createHash('sha256').update(await readFile(path)).digest('hex') };
}

async function readJson(path: string) {
  return JSON.parse(await readFile(path, 'utf8'));
}

// scratch() dirs are removed after the file by test/helpers/cleanup.ts, which honours SIMPLEX_PI_KEEP_SCRATCH=1.
async function outDir(): Promise<string> {
  return join(await scratch('emit'), 'out');
}

describe('emit writes Raspberry Pi Imager files with every build', () => {
  it('a repository JSON and a double-click manifest whose sizes and hashes are those of the files; SHA256SUMS and the manifest list all but the one that points at this directory', async () => {
    const out = await outDir();
    await syntheticBuild({ name: 'fam', outDir: out, recipe: 'models: [pi3, pi4]\n', publishUrl: 'https://example.org/dl/v1/' });
    expect((await readdir(out)).sort()).toEqual(['SHA256SUMS', 'fam.img', 'fam.img.bmap', 'fam.img.xz', 'fam.rpi-imager-manifest', 'fam.rpi-imager.json', 'manifest.json']);

    const img = await fileFacts(join(out, 'fam.img'));
    const xz = await fileFacts(join(out, 'fam.img.xz'));
    expect(xz.size).toBeLessThan(img.size);
    // The image's date is its SOURCE_DATE_EPOCH (here the base's release date), never the clock's.
    const imageDate = '2025-10-01';
    for (const file of ['fam.rpi-imager.json', 'fam.rpi-imager-manifest']) {
      const json = await readJson(join(out, file));
      expect(imagerSchemaErrors(json), file).toEqual([]);
      expect(json.os_list).toHaveLength(1);
      expect(json.os_list[0]).toMatchObject({
        name: 'SimpleX relays: fam',
        extract_size: img.size,
        extract_sha256: img.sha256,
        image_download_size: xz.size,
        image_download_sha256: xz.sha256,
        release_date: imageDate,
        init_format: 'systemd',
        devices: ['pi4-64bit', 'pi3-64bit'],
      });
      expect(json.imager.devices.map((d: { name: string }) => d.name)).toEqual(['Raspberry Pi 4', 'Raspberry Pi 3']);
    }
    // Published: the URL under --publish-url. Local: a file:// URL of the .xz in the output directory, as Imager wants it.
    expect((await readJson(join(out, 'fam.rpi-imager.json'))).os_list[0].url).toBe('https://example.org/dl/v1/fam.img.xz');
    const localUrl: string = (await readJson(join(out, 'fam.rpi-imager-manifest'))).os_list[0].url;
    expect(localUrl).toMatch(/^file:\/\/\//);
    expect(fileURLToPath(localUrl)).toBe(join(out, 'fam.img.xz'));

    // SHA256SUMS (written last) checks every file, the published Imager file and the manifest included; the
    // double-click manifest names this directory, so two directories would list different bytes: it is left out.
    expect(execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out }).toString()).toBe(
      'fam.img: OK\nfam.img.xz: OK\nfam.img.bmap: OK\nfam.rpi-imager.json: OK\nmanifest.json: OK\n',
    );
    const manifest = await readJson(join(out, 'manifest.json'));
    expect(manifest.outputs.map((o: { name: string }) => o.name)).toEqual(['fam.img', 'fam.img.xz', 'fam.img.bmap', 'fam.rpi-imager.json']);
    expect(manifest.outputs[3]).toEqual({ name: 'fam.rpi-imager.json', ...(await fileFacts(join(out, 'fam.rpi-imager.json'))) });
    expect(manifest.sourceDate).toEqual({ epoch: Date.parse('2025-10-01T00:00:00Z') / 1000, iso: '2025-10-01T00:00:00.000Z', from: "the base's release date (2025-10-01)" });
    expect(manifest).not.toHaveProperty('builtAt');
    expect(manifest.build).toMatchObject({ compress: 'xz', xzLevel: 0, publishUrl: 'https://example.org/dl/v1/', packagesLayer: 'synthetic' });
    expect(Object.keys(manifest.build.hostTools).sort()).toEqual(['dosfstools', 'e2fsprogs', 'mtools', 'xz']);
    expect(manifest.base).not.toHaveProperty('path');
    expect(manifest.plan.models).toEqual(['pi3', 'pi4']);
  });

  it('without a publish URL both point at the local file; with --compress none at the .img, whose size is the download size', async () => {
    const out = await outDir();
    await syntheticBuild({ name: 'solo', outDir: out });
    expect(existsSync(join(out, 'solo.img.xz'))).toBe(true);
    // A second build into the same directory, uncompressed: the earlier .xz must not stay behind.
    await syntheticBuild({ name: 'solo', outDir: out, compress: 'none' });
    expect((await readdir(out)).sort()).toEqual(['SHA256SUMS', 'manifest.json', 'solo.img', 'solo.img.bmap', 'solo.rpi-imager-manifest', 'solo.rpi-imager.json']);
    const img = await fileFacts(join(out, 'solo.img'));
    for (const file of ['solo.rpi-imager.json', 'solo.rpi-imager-manifest']) {
      const json = await readJson(join(out, file));
      expect(imagerSchemaErrors(json), file).toEqual([]);
      const [entry] = json.os_list;
      expect(fileURLToPath(entry.url)).toBe(join(out, 'solo.img'));
      expect([entry.extract_size, entry.image_download_size]).toEqual([img.size, img.size]);
      expect([entry.extract_sha256, entry.image_download_sha256]).toEqual([img.sha256, img.sha256]);
      // The recipe's default: every 64-bit model.
      expect(entry.devices).toEqual(['pi5-64bit', 'pi4-64bit', 'pi3-64bit']);
    }
    expect(execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out }).toString()).toBe(
      'solo.img: OK\nsolo.img.bmap: OK\nmanifest.json: OK\n',
    );
  });

  it('two builds of the same inputs in two directories, one later: the same SHA256SUMS and bytes, whatever the directory or the clock', async () => {
    const [first, second] = [await outDir(), await outDir()];
    const image = join(await scratch('emit-same'), 'same.img');
    await syntheticBuild({ name: 'same', outDir: first, image });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await syntheticBuild({ name: 'same', outDir: second, image });
    const sums = await readFile(join(first, 'SHA256SUMS'), 'utf8');
    expect(await readFile(join(second, 'SHA256SUMS'), 'utf8')).toBe(sums);
    expect(sums).toMatch(/same\.img\.xz\n/);
    // Only the file that points at its directory differs.
    expect(await readFile(join(second, 'same.rpi-imager-manifest'), 'utf8')).not.toBe(await readFile(join(first, 'same.rpi-imager-manifest'), 'utf8'));
  });

  it('declares no customisation for a base without a consumer for it (Debian)', async () => {
    const out = await outDir();
    await syntheticBuild({ name: 'deb', outDir: out, base: { ...RASPIOS_BASE, provider: 'debian', description: 'Debian bookworm arm64', listedInitFormat: undefined }, initFormat: 'none' });
    const [entry] = (await readJson(join(out, 'deb.rpi-imager.json'))).os_list;
    expect(entry.init_format).toBe('none');
    expect(entry.description).toBe('Synthetic deb. Built on Debian bookworm arm64.');
  });

  it('build refuses a --publish-url that is not an http(s) directory URL, before reading the recipe', async () => {
    // The recipe does not exist either: were the URL not checked first, the error would be about the recipe.
    const result = await cli(['build', '--recipe', '/nonexistent/recipe.yaml', '--publish-url', 'ftp://example.org/x'], { timeout: 60_000 });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toBe('error: --publish-url must be the http:// or https:// URL of the directory the image will be downloaded from, e.g. https://example.org/simplex-pi/v1 (got "ftp://example.org/x")');
  });

  it('a failure while writing the Imager files leaves no SHA256SUMS and no temporary files', async () => {
    const out = await outDir();
    await syntheticBuild({ name: 'bad', outDir: out });
    await expect(syntheticBuild({ name: 'bad', outDir: out, initFormat: 'ignition' })).rejects.toThrow(/init_format "ignition"/);
    const left = await readdir(out);
    expect(left).not.toContain('SHA256SUMS');
    expect(left.filter((f) => f.includes('.partial'))).toEqual([]);
  });
});
