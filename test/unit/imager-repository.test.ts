import { describe, expect, it } from 'vitest';
import {
  type ImagerOsEntry,
  checkPublishUrl,
  combineRepositories,
  deviceTags,
  imagerDevices,
  imagerOsEntry,
  imagerRepository,
  parseImagerRepository,
  publishedUrl,
  releaseDate,
} from '../../builder/outputs/imager-repository.ts';
import type { PiModel } from '../../builder/recipe/schema.ts';
import { imagerSchemaErrors } from '../helpers/imager-schema.ts';

const image = { name: 'family.img', size: 3_221_225_472, sha256: 'a'.repeat(64) };
const xz = { name: 'family.img.xz', size: 612_345_678, sha256: 'b'.repeat(64) };

function entry(overrides: Partial<Parameters<typeof imagerOsEntry>[0]> = {}): ImagerOsEntry {
  return imagerOsEntry({
    name: 'family',
    description: 'Two SMP relays and a file relay for up to 20 people',
    baseDescription: 'Raspberry Pi OS Lite (64-bit) 2025-10-01',
    image,
    download: xz,
    url: 'https://example.org/releases/v1/family.img.xz',
    releaseDate: '2026-03-04',
    initFormat: 'systemd',
    models: ['pi3', 'pi4', 'pi5'],
    ...overrides,
  });
}

describe('Raspberry Pi Imager device tags', () => {
  it('maps each model to its 64-bit tag, the Zero 2 W to the Pi 3 tag, each tag once, newest first', () => {
    expect(deviceTags(['pi3', 'pi4', 'pi5'])).toEqual(['pi5-64bit', 'pi4-64bit', 'pi3-64bit']);
    expect(deviceTags(['zero2w'])).toEqual(['pi3-64bit']);
    expect(deviceTags(['zero2w', 'pi3', 'pi5', 'pi5'])).toEqual(['pi5-64bit', 'pi3-64bit']);
    expect(deviceTags(['zero2w', 'pi3', 'pi4', 'pi5']).every((tag) => tag.endsWith('-64bit'))).toBe(true);
  });

  it('lists a device per model for Imager\'s "Choose device", each matching the tags the entries carry', () => {
    const devices = imagerDevices(['zero2w', 'pi3']);
    expect(devices.map((d) => d.name)).toEqual(['Raspberry Pi 3', 'Raspberry Pi Zero 2 W']);
    expect(devices.map((d) => d.tags)).toEqual([['pi3-64bit'], ['pi3-64bit']]);
    expect(imagerDevices(['pi5']).map((d) => d.name)).toEqual(['Raspberry Pi 5']);
  });
});

describe('the os_list entry', () => {
  it('carries the image and download sizes and hashes, the date, the base\'s init_format and the devices', () => {
    expect(entry()).toEqual({
      name: 'SimpleX relays: family',
      description: 'Two SMP relays and a file relay for up to 20 people. Built on Raspberry Pi OS Lite (64-bit) 2025-10-01.',
      icon: '',
      url: 'https://example.org/releases/v1/family.img.xz',
      extract_size: image.size,
      extract_sha256: image.sha256,
      image_download_size: xz.size,
      image_download_sha256: xz.sha256,
      release_date: '2026-03-04',
      init_format: 'systemd',
      devices: ['pi5-64bit', 'pi4-64bit', 'pi3-64bit'],
      architecture: 'armv8',
    });
  });

  it('is valid against Imager\'s own schema, in a repository with its devices', () => {
    const repository = imagerRepository([entry()], ['pi3', 'pi4', 'pi5']);
    expect(imagerSchemaErrors(repository)).toEqual([]);
    expect(repository.imager.devices.flatMap((d) => d.tags)).toEqual(repository.os_list[0]!.devices);
  });

  it('the schema check can fail: Imager\'s schema rejects an entry without devices or with a size as text', () => {
    const { devices: _, ...withoutDevices } = entry();
    expect(imagerSchemaErrors({ os_list: [withoutDevices] })).not.toEqual([]);
    expect(imagerSchemaErrors({ os_list: [{ ...entry(), extract_size: '3221225472' }] })).not.toEqual([]);
    expect(imagerSchemaErrors({ os_list: [entry()], extra: true })).not.toEqual([]);
  });

  it('accepts every customisation format Imager knows, including none for a base without a consumer', () => {
    for (const format of ['none', 'systemd', 'cloudinit', 'cloudinit-rpi', 'rpi-preseed', '']) {
      const made = entry({ initFormat: format });
      expect(made.init_format).toBe(format);
      expect(imagerSchemaErrors({ os_list: [made] })).toEqual([]);
    }
  });

  it('refuses an init_format Imager does not know, and says where to set it', () => {
    expect(() => entry({ initFormat: 'ignition' })).toThrow(/init_format "ignition" is not one Imager knows .*base\.init_format/);
  });

  it('without compression, downloads the image itself: download size and hash are the image\'s', () => {
    const made = entry({ download: image, url: 'file:///srv/out/family.img' });
    expect([made.image_download_size, made.image_download_sha256]).toEqual([image.size, image.sha256]);
    expect(imagerSchemaErrors({ os_list: [made] })).toEqual([]);
  });
});

describe('release_date', () => {
  it('is the build day in UTC', () => {
    expect(releaseDate(new Date('2026-03-04T23:59:59Z'))).toBe('2026-03-04');
    expect(releaseDate(new Date('2023-01-01T00:00:00Z'))).toBe('2023-01-01');
  });

  it('refuses a clock before 2023, when Imager would treat the image as an old release', () => {
    expect(() => releaseDate(new Date('2022-12-31T23:59:59Z'))).toThrow(/date \(SOURCE_DATE_EPOCH\) is 2022-12-31.*before 2023-01-01.*source_date_epoch/);
    expect(() => releaseDate(new Date(0))).toThrow(/1970-01-01/);
  });
});

describe('publish URLs', () => {
  it('join the directory URL and the file name, with or without a trailing slash', () => {
    expect(publishedUrl('https://github.com/o/r/releases/download/v1.0.0', 'family.img.xz')).toBe('https://github.com/o/r/releases/download/v1.0.0/family.img.xz');
    expect(publishedUrl('https://example.org/x/', 'family.img.xz')).toBe('https://example.org/x/family.img.xz');
  });

  it('--publish-url must be an http(s) directory URL', () => {
    expect(checkPublishUrl('https://example.org/simplex/v1')).toBe('https://example.org/simplex/v1');
    for (const bad of ['example.org/x', 'ftp://example.org/x', '/srv/www', 'https://example.org/x?a=1']) {
      expect(() => checkPublishUrl(bad)).toThrow(/--publish-url must be the http:\/\/ or https:\/\/ URL/);
    }
  });
});

describe('combined repositories (the release\'s os-list.json)', () => {
  const of = (name: string, models: PiModel[]) => imagerRepository([entry({ name, models })], models);

  it('lists every entry in order and each device once, newest first, and stays valid for Imager', () => {
    const combined = combineRepositories([of('solo', ['zero2w', 'pi3', 'pi4', 'pi5']), of('team', ['pi4', 'pi5']), of('org', ['pi5'])]);
    expect(combined.os_list.map((e) => e.name)).toEqual(['SimpleX relays: solo', 'SimpleX relays: team', 'SimpleX relays: org']);
    expect(combined.imager.devices.map((d) => d.name)).toEqual(['Raspberry Pi 5', 'Raspberry Pi 4', 'Raspberry Pi 3', 'Raspberry Pi Zero 2 W']);
    expect(imagerSchemaErrors(combined)).toEqual([]);
  });

  it('reads back what it wrote, and names the file that is not one', () => {
    const repository = of('family', ['pi4']);
    expect(parseImagerRepository(JSON.stringify(repository), 'family.rpi-imager.json')).toEqual(repository);
    expect(() => parseImagerRepository('{', 'x.json')).toThrow(/x\.json is not JSON/);
    expect(() => parseImagerRepository(JSON.stringify({ os_list: [] }), 'y.json')).toThrow(/y\.json is not a Raspberry Pi Imager repository written by simplex-pi: imager/);
  });
});
