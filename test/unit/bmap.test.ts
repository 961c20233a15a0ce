import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { mergeRanges } from '../../builder/block-ranges.ts';
import { type BmapFacts, bmapText, writeBmap } from '../../builder/outputs/bmap.ts';
import { scratch } from '../helpers/env.ts';

const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** 10 whole blocks of 4 KiB and 100 bytes of an eleventh. */
const facts: BmapFacts = {
  imageSize: 10 * 4096 + 100,
  blockSize: 4096,
  ranges: [
    { first: 0, last: 2, sha256: 'a'.repeat(64) },
    { first: 5, last: 5, sha256: 'b'.repeat(64) },
    { first: 8, last: 10, sha256: 'c'.repeat(64) },
  ],
};

/** The fields bmaptool reads, as Python's ElementTree (which bmaptool parses with) reads them. */
async function parsed(text: string): Promise<Record<string, unknown>> {
  const script = `
import json, sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
field = lambda name: root.find(name).text.strip()
print(json.dumps({
  "version": root.attrib["version"],
  "ImageSize": field("ImageSize"), "BlockSize": field("BlockSize"), "BlocksCount": field("BlocksCount"),
  "MappedBlocksCount": field("MappedBlocksCount"), "ChecksumType": field("ChecksumType"),
  "BmapFileChecksum": field("BmapFileChecksum"),
  "ranges": [[r.text.strip(), r.attrib.get("chksum")] for r in root.find("BlockMap").findall("Range")],
}))`;
  const { stdout } = await execa('python3', ['-c', script], { input: text });
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('bmap (builder/outputs/bmap.ts)', () => {
  it('renders XML that ElementTree reads, with the counts bmaptool checks', async () => {
    expect(await parsed(bmapText(facts))).toEqual({
      version: '2.0',
      ImageSize: '41060',
      BlockSize: '4096',
      // The partial last block counts: bmaptool refuses a BlocksCount other than ceil(ImageSize / BlockSize).
      BlocksCount: '11',
      MappedBlocksCount: '7',
      ChecksumType: 'sha256',
      BmapFileChecksum: expect.stringMatching(/^[0-9a-f]{64}$/),
      ranges: [
        ['0-2', 'a'.repeat(64)],
        ['5', 'b'.repeat(64)],
        ['8-10', 'c'.repeat(64)],
      ],
    });
  });

  it("has the file checksum bmaptool recomputes: the sha256 of the file with the value as 64 '0's", () => {
    const text = bmapText(facts);
    const value = /<BmapFileChecksum> ([0-9a-f]{64}) <\/BmapFileChecksum>/.exec(text)![1]!;
    expect(sha(text.replace(value, '0'.repeat(64)))).toBe(value);
    // It covers the ranges: another range hash gives another file checksum.
    const other = bmapText({ ...facts, ranges: [...facts.ranges.slice(0, 2), { first: 8, last: 10, sha256: 'd'.repeat(64) }] });
    expect(other).not.toContain(value);
  });

  it('is the same text every time: no date, no host name', () => {
    expect(bmapText(facts)).toBe(bmapText(structuredClone(facts)));
    expect(bmapText(facts)).not.toMatch(/20\d\d-\d\d-\d\d/);
  });

  it('merges overlapping and adjacent ranges and sorts them', () => {
    expect(
      mergeRanges([
        { first: 9, last: 9 },
        { first: 0, last: 3 },
        { first: 4, last: 4 },
        { first: 2, last: 6 },
        { first: 10, last: 12 },
        { first: 20, last: 20 },
      ]),
    ).toEqual([
      { first: 0, last: 6 },
      { first: 9, last: 12 },
      { first: 20, last: 20 },
    ]);
    expect(() => mergeRanges([{ first: 5, last: 4 }])).toThrow(/5-4 is not a range/);
  });

  it('refuses ranges bmaptool would misread: unsorted, adjacent, past the last block', () => {
    const [a, b] = [facts.ranges[0]!, facts.ranges[1]!];
    expect(() => bmapText({ ...facts, ranges: [b, a] })).toThrow(/not sorted/);
    expect(() => bmapText({ ...facts, ranges: [a, { ...b, first: 3, last: 3 }] })).toThrow(/not sorted, separate/);
    expect(() => bmapText({ ...facts, ranges: [{ ...a, first: 10, last: 11 }] })).toThrow(/within the image's 11 blocks/);
  });

  it('writeBmap merges the ranges, hashes each from the image (the last block only to the end of the file)', async () => {
    const dir = await scratch('bmap');
    const image = join(dir, 'image.img');
    const data = Buffer.alloc(10 * 4096 + 100);
    randomBytes(3 * 4096).copy(data, 0);
    randomBytes(4096 + 100).copy(data, 9 * 4096);
    await writeFile(image, data);
    const output = join(dir, 'image.bmap');
    const result = await writeBmap({ image, output, blockSize: 4096, mapped: [{ first: 10, last: 10 }, { first: 0, last: 1 }, { first: 9, last: 9 }, { first: 2, last: 2 }] });
    expect(result).toEqual({ mappedBlocks: 5, totalBlocks: 11 });
    expect((await parsed(await readFile(output, 'utf8'))).ranges).toEqual([
      ['0-2', sha(data.subarray(0, 3 * 4096))],
      ['9-10', sha(data.subarray(9 * 4096))],
    ]);
    await expect(writeBmap({ image, output, blockSize: 4096, mapped: [{ first: 0, last: 11 }] })).rejects.toThrow(/blocks 0-11, but it has blocks 0-10 of 4096 bytes/);
    await expect(writeBmap({ image, output, blockSize: 4096, mapped: [], imageSize: 4096 })).rejects.toThrow(/is 41060 bytes, not the 4096/);
  });
});
