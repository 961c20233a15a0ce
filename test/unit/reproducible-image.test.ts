import { describe, expect, it } from 'vitest';
import { mergeRanges } from '../../builder/block-ranges.ts';
import { complement, parseExt4Usage, parseRangeList } from '../../builder/image/ext4-usage.ts';
import { changeTimeCommands, mke2fsArgs, mke2fsProfile, parseRootParameters, rootMiBFor } from '../../builder/image/recreate-root.ts';
import { directoryBytes } from '../../builder/image/settle-tree.ts';
import { chooseSourceDate } from '../../builder/image/source-date-epoch.ts';
import { differingFields } from '../../builder/rebuild/rebuild-check.ts';

// The pure parts of reproducible images: what the new root filesystem takes over from the base's, its size from
// the tree's own count, the inodes whose change time is set, the image's one date, and how rebuild-check names a
// difference. The filesystems themselves are made by the real tools in test/integration/reproducible.test.ts.

const DUMPE2FS_H = `Filesystem volume name:   rootfs
Filesystem UUID:          43935e57-e42a-4085-b7f0-a384af64e0d1
Filesystem features:      has_journal ext_attr resize_inode dir_index orphan_file filetype needs_recovery extent flex_bg metadata_csum_seed sparse_super large_file dir_nlink extra_isize metadata_csum orphan_present
Default mount options:    user_xattr acl
Inode count:              63232
Block count:              252928
Reserved block count:     12646
Block size:               4096
Flex block group size:    16
Inode size:	          256
Default directory hash:   half_md4
Directory Hash Seed:      be0f1cb8-7d9d-46dd-9cee-e35b223f52fc
Total journal size:       16M
`;

describe("the new root filesystem keeps the base's", () => {
  const params = parseRootParameters(DUMPE2FS_H);

  it('label, UUID, hash seed, features (not the state flags), sizes and journal, read from dumpe2fs -h', () => {
    expect(params).toEqual({
      label: 'rootfs',
      uuid: '43935e57-e42a-4085-b7f0-a384af64e0d1',
      hashSeed: 'be0f1cb8-7d9d-46dd-9cee-e35b223f52fc',
      hashAlgorithm: 'half_md4',
      features: ['has_journal', 'ext_attr', 'resize_inode', 'dir_index', 'orphan_file', 'filetype', 'extent', 'flex_bg', 'metadata_csum_seed', 'sparse_super', 'large_file', 'dir_nlink', 'extra_isize', 'metadata_csum'],
      blockSize: 4096,
      inodeSize: 256,
      bytesPerInode: 16384,
      reservedPercent: 5,
      flexGroupSize: 16,
      journalMiB: 16,
      mountOptions: ['user_xattr', 'acl'],
    });
  });

  it('and mke2fs is told every one of them, the features exactly (none first), whatever the host defaults to', () => {
    const args = mke2fsArgs(params, { offsetBytes: 541065216, sizeMiB: 1200, tree: '/t', image: '/i.img' });
    expect(args.slice(args.indexOf('-O'), args.indexOf('-O') + 2)).toEqual(['-O', `none,${params.features.join(',')}`]);
    for (const pair of [['-b', '4096'], ['-I', '256'], ['-i', '16384'], ['-m', '5'], ['-G', '16'], ['-J', 'size=16'], ['-L', 'rootfs'], ['-U', params.uuid], ['-d', '/t']]) {
      expect(args[args.indexOf(pair[0]!) + 1], pair[0]).toBe(pair[1]);
    }
    expect(args[args.indexOf('-E') + 1]).toBe(`hash_seed=${params.hashSeed},lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0,offset=541065216`);
    expect(args.slice(-2)).toEqual(['/i.img', '1200M']);
    expect(mke2fsProfile(params)).toContain('hash_alg = half_md4');
    expect(mke2fsProfile(params)).toContain('default_mntopts = user_xattr,acl');
  });

  it('its size comes from the tree: more content, never less room; the margin is on top', () => {
    const small = rootMiBFor({ inodes: 20000, dataBytes: 800 * 1024 * 1024 }, params, 256);
    expect(small).toBeGreaterThan(800 + 16 + 256);
    expect(small).toBeLessThan(1100 + 256);
    expect(rootMiBFor({ inodes: 20000, dataBytes: 900 * 1024 * 1024 }, params, 256)).toBeGreaterThan(small);
    expect(rootMiBFor({ inodes: 20000, dataBytes: 800 * 1024 * 1024 }, params, 0)).toBe(small - 256);
  });

  it("a directory's size comes from its names, not from what the build's filesystem once held in it", () => {
    expect(directoryBytes([], 4096)).toBe(4096);
    expect(directoryBytes(['a', 'b'], 4096)).toBe(4096);
    // 400 names of 12 bytes: 400 × 20 bytes = 8000, over one block's 4084.
    expect(directoryBytes(Array.from({ length: 400 }, (_, i) => `file${String(i).padStart(8, '0')}`), 4096)).toBe(2 * 4096);
  });
});

describe("the filesystem's bitmaps as dumpe2fs prints them", () => {
  const DUMPE2FS = `Block count:              98304
Block size:               4096
Inodes per group:         8192
Group 0: (Blocks 0-32767) csum 0x4b30 [ITABLE_ZEROED]
  Primary superblock at 0, Group descriptors at 1-1
  0 free blocks, 0 free inodes, 66 directories
  Free blocks: 
  Free inodes: 
Group 1: (Blocks 32768-65535) csum 0xc74b [ITABLE_ZEROED]
  4420 free blocks, 8000 free inodes, 64 directories
  Free blocks: 61116-65535
  Free inodes: 8385-16384
Group 2: (Blocks 65536-98303) csum 0x5480 [INODE_UNINIT, ITABLE_ZEROED]
  Free blocks: 65600-70000, 70002-98303
  Free inodes: 16385-24576
`;

  it('used blocks and inodes are what no "Free" range names, adjacent ranges joined', () => {
    const usage = parseExt4Usage(DUMPE2FS);
    expect(usage.blockSize).toBe(4096);
    expect(usage.usedBlocks).toEqual([
      { first: 0, last: 61115 },
      { first: 65536, last: 65599 },
      { first: 70001, last: 70001 },
    ]);
    expect(usage.usedInodes).toEqual([{ first: 1, last: 8384 }]);
  });

  it('the range helpers', () => {
    expect(parseRangeList(' 12-40, 77, 90-91')).toEqual([{ first: 12, last: 40 }, { first: 77, last: 77 }, { first: 90, last: 91 }]);
    expect(parseRangeList(' ')).toEqual([]);
    expect(complement(10, 20, [{ first: 10, last: 12 }, { first: 15, last: 15 }])).toEqual([{ first: 13, last: 14 }, { first: 16, last: 20 }]);
    expect(complement(10, 20, [])).toEqual([{ first: 10, last: 20 }]);
    expect(mergeRanges([{ first: 0, last: 3 }, { first: 4, last: 9 }, { first: 11, last: 12 }])).toEqual([{ first: 0, last: 9 }, { first: 11, last: 12 }]);
  });

  it("every used inode's change time is set, and no other", () => {
    expect(changeTimeCommands([{ first: 1, last: 2 }, { first: 12, last: 12 }], 1700000000)).toBe(
      'set_inode_field <1> ctime @1700000000\nset_inode_field <2> ctime @1700000000\nset_inode_field <12> ctime @1700000000\n',
    );
  });
});

describe("the image's one date (SOURCE_DATE_EPOCH)", () => {
  const base = { recipe: null, releaseDate: '2025-10-01', rootWrittenAt: 1790000000 };

  it('the environment first, then the recipe, then the base release date, then the base root filesystem', () => {
    expect(chooseSourceDate({ ...base, env: '1700000000' })).toEqual({ epoch: 1700000000, from: 'the SOURCE_DATE_EPOCH environment variable' });
    expect(chooseSourceDate({ ...base, recipe: 1750000000 })).toEqual({ epoch: 1750000000, from: "the recipe's source_date_epoch" });
    expect(chooseSourceDate(base)).toEqual({ epoch: Date.parse('2025-10-01T00:00:00Z') / 1000, from: "the base's release date (2025-10-01)" });
    expect(chooseSourceDate({ ...base, env: '', releaseDate: undefined })).toEqual({ epoch: 1790000000, from: "the last write time of the base's root filesystem" });
  });

  it('a malformed environment value, or nothing to go by, is an error that says what to do', () => {
    expect(() => chooseSourceDate({ ...base, env: 'yesterday' })).toThrow(/SOURCE_DATE_EPOCH must be a whole number of seconds since 1970, not "yesterday"/);
    expect(() => chooseSourceDate({ recipe: null })).toThrow(/set `source_date_epoch` in the recipe/);
  });
});

describe('rebuild-check names the inputs that differ', () => {
  it('the paths of the fields whose values differ, objects followed into, arrays compared whole', () => {
    const a = { base: { sha256: 'a', provider: 'debian' }, packages: [{ name: 'tor', version: '1' }], tool: { version: '0.1.0' }, outputs: [1] };
    const b = { base: { sha256: 'b', provider: 'debian' }, packages: [{ name: 'tor', version: '2' }], tool: { version: '0.1.0' }, outputs: [1], extra: true };
    expect(differingFields(a, b)).toEqual(['base.sha256', 'packages', 'extra']);
    expect(differingFields(a, a)).toEqual([]);
  });
});
