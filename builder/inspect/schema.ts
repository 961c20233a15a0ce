import { INIT_FORMATS } from '../base/init-format.ts';
import { z } from 'zod';

/**
 * What `simplex-pi inspect-base` reports about a base image: the facts the build pipeline relies on in a
 * Raspberry Pi OS (or Debian) base, read without changing a byte of it. `--json` prints exactly this object.
 * Bump `schemaVersion` when a field changes meaning, so saved reports can be compared.
 */

const finding = z.object({
  level: z.enum(['ok', 'note', 'warn']),
  topic: z.string(),
  text: z.string(),
});

const partition = z.object({
  number: z.number().int(),
  start: z.number().int(),
  size: z.number().int(),
  type: z.string(),
  bootable: z.boolean(),
  /** GPT only. */
  name: z.string().optional(),
  /** GPT: the partition's GUID; MBR: the PARTUUID the kernel derives (`<disk id>-<NN>`). */
  partuuid: z.string(),
});

const cmdline = z.object({
  text: z.string(),
  tokens: z.array(z.string()),
  /** The bare ` resize` token: raspberrypi-sys-mods' initramfs step grows partition 2 when it is there. */
  resize: z.boolean(),
  root: z.object({
    form: z.enum(['PARTUUID', 'LABEL', 'UUID', 'PARTLABEL', 'device', 'missing']),
    value: z.string(),
    /** For PARTUUID=: which partition of this image it names, if any. */
    matchesPartition: z.number().int().nullable(),
  }),
  /** The `ds=…` token (cloud-init's NoCloud seed on the kernel command line), as written. */
  ds: z.string().nullable(),
  init: z.string().nullable(),
  systemdUnit: z.string().nullable(),
  systemdRun: z.string().nullable(),
  cloudInitDisabled: z.boolean(),
});

const bootFile = z.object({ name: z.string(), dir: z.boolean(), size: z.number().int().nullable() });

const bootfs = z.object({
  partition: z.number().int(),
  fatBits: z.union([z.literal(12), z.literal(16), z.literal(32)]),
  label: z.string(),
  /** Volume id (serial number) as 8 hex digits. */
  serial: z.string(),
  sectorsPerCluster: z.number().int().nullable(),
  clusterBytes: z.number().int().nullable(),
  files: z.array(bootFile),
  kernels: z.array(z.string()),
  initramfs: z.array(z.string()),
  /** Lines of config.txt that choose the kernel or initramfs (kernel=, initramfs, auto_initramfs, os_prefix, arm_64bit). */
  configTxt: z.array(z.string()).nullable(),
  cmdline: cmdline.nullable(),
  /** cloud-init NoCloud seed files on the boot partition (what Imager 2.x writes for cloudinit-rpi). */
  nocloudSeed: z.object({ metaData: z.boolean(), userData: z.boolean(), networkConfig: z.boolean() }),
});

const ext4 = z.object({
  partition: z.number().int(),
  label: z.string(),
  uuid: z.string(),
  features: z.array(z.string()),
  blockSize: z.number().int().nullable(),
  blockCount: z.number().int().nullable(),
  freeBlocks: z.number().int().nullable(),
  state: z.string().nullable(),
  hostE2fsprogs: z.string().nullable(),
  /** Features this host's e2fsprogs prints only as FEATURE_xx: it does not know them, and e2fsck/resize2fs refuse the filesystem. */
  unknownToHost: z.array(z.string()),
  /** Features that need a newer e2fsprogs than some supported build hosts have, with the version that added them. */
  needsNewerE2fsprogs: z.array(z.object({ feature: z.string(), since: z.string() })),
});

const fstabEntry = z.object({ spec: z.string(), file: z.string(), vfstype: z.string(), options: z.string(), freq: z.string(), passno: z.string() });

const unitState = z.object({
  unit: z.string(),
  /** Where the unit file is, as a path in the image; null when the image has none. */
  path: z.string().nullable(),
  masked: z.boolean(),
  /** Targets/units whose .wants or .requires in /etc/systemd/system link it: enabled. */
  enabledBy: z.array(z.string()),
  /** Links in /usr/lib/systemd/system: pulled in statically by the package itself. */
  staticBy: z.array(z.string()),
  /** Condition*= and Assert*= lines of the unit file (ConditionFirstBoot=yes matters most). */
  conditions: z.array(z.string()),
  /** The unit file's text, for the units whose behaviour the pipeline depends on. */
  text: z.string().optional(),
});

const cloudInit = z.object({
  installed: z.boolean(),
  version: z.string().nullable(),
  /** /etc/cloud/cloud-init.disabled or cloud-init=disabled on the kernel command line. */
  disabled: z.boolean(),
  cloudCfg: z.boolean(),
  modules: z.object({ init: z.array(z.string()), config: z.array(z.string()), final: z.array(z.string()) }),
  growpart: z.boolean(),
  resizefs: z.boolean(),
  cfgD: z.array(z.object({ name: z.string(), keys: z.array(z.string()) })),
  /** The effective datasource_list (cloud.cfg, then cloud.cfg.d in order); null when nothing sets it (cloud-init probes all). */
  datasourceList: z.array(z.string()).nullable(),
  nocloudSeedfrom: z.string().nullable(),
  defaultUser: z.string().nullable(),
  parseErrors: z.array(z.string()),
});

const initramfsImage = z.object({
  /** Where it was read from: `bootfs:initramfs8` or `rootfs:/boot/initrd.img-…`. */
  source: z.string(),
  size: z.number().int(),
  /** One per concatenated archive: none (early cpio, e.g. microcode), gzip, zstd, xz, lz4, bzip2, lzma. */
  segments: z.array(z.string()),
  entries: z.number().int(),
  /** Paths of resize/partition scripts and tools: scripts/local-premount/resize_early, set_partuuid, growroot, parted, resize2fs… */
  resizeFiles: z.array(z.string()),
  error: z.string().nullable(),
});

const pkg = z.object({ name: z.string(), version: z.string(), architecture: z.string(), status: z.string() });

const aptSource = z.object({
  file: z.string(),
  format: z.enum(['deb822', 'list']),
  types: z.array(z.string()),
  uris: z.array(z.string()),
  suites: z.array(z.string()),
  components: z.array(z.string()),
  enabled: z.boolean(),
});

const user = z.object({
  name: z.string(),
  uid: z.number().int(),
  gid: z.number().int(),
  home: z.string(),
  shell: z.string(),
  passwd: z.string(),
  /** From /etc/shadow, never the hash itself. */
  password: z.enum(['locked', 'none', 'set', 'no-shadow-entry']),
  groups: z.array(z.string()),
});

export const baseReportSchema = z.object({
  schemaVersion: z.literal(1),
  tool: z.string(),
  image: z.object({
    path: z.string(),
    compression: z.enum(['xz', 'none']),
    /** sha256 of the uncompressed image (Imager's extract_sha256). */
    sha256: z.string(),
    /** sha256 of the .xz file as given (Imager's image_download_sha256). */
    downloadSha256: z.string().nullable(),
    size: z.number().int(),
  }),
  partitionTable: z.object({
    label: z.enum(['dos', 'gpt']),
    diskId: z.string(),
    sectorSize: z.number().int(),
    partitions: z.array(partition),
    /** null when partition 1 is FAT boot and 2 the root, as the pipeline requires; otherwise why not. */
    layoutProblem: z.string().nullable(),
  }),
  bootfs: bootfs,
  rootfs: ext4,
  osRelease: z.record(z.string(), z.string()),
  /** /etc/rpi-issue, which pi-gen writes (its first line names the release and pi-gen commit). */
  rpiIssue: z.string().nullable(),
  fstab: z.object({
    text: z.string().nullable(),
    entries: z.array(fstabEntry),
    bootMount: z.string().nullable(),
    /** fstab entries whose PARTUUID= is not one of this image's partitions. */
    foreignPartuuids: z.array(z.string()),
  }),
  machineId: z.object({
    /** As the build classifies it (image/machine-id.ts): a machine ID or any other content is `id`, never printed. */
    state: z.enum(['absent', 'empty', 'uninitialized', 'id', 'symlink']),
    symlinkTarget: z.string().nullable(),
    dbusMachineId: z.enum(['missing', 'symlink', 'file']),
    firstBoot: z.boolean(),
    meaning: z.string(),
  }),
  units: z.array(unitState),
  /** Every link in /etc/systemd/system/*.wants and *.requires, as `target.wants/unit`. */
  enabledLinks: z.array(z.string()),
  defaultTarget: z.string().nullable(),
  cloudInit: cloudInit,
  /** What a build on this base would detect (base/init-format.ts): the preferred format, every supported one, and why. */
  initFormat: z.object({ value: z.enum(INIT_FORMATS), supported: z.array(z.enum(INIT_FORMATS)), reason: z.string() }),
  initramfs: z.array(initramfsImage),
  initramfsTools: z.object({ updateInitramfs: z.string().nullable(), modules: z.string().nullable(), compress: z.string().nullable() }),
  packages: z.array(pkg),
  packagesMissing: z.array(z.string()),
  apt: z.object({ format: z.enum(['deb822', 'list', 'mixed', 'none']), sources: z.array(aptSource), sourcesListLines: z.number().int() }),
  defaultUser: user.nullable(),
  /** Other users with UID ≥ 1000 (besides nobody). */
  otherUsers: z.array(z.string()),
  ssh: z.object({ hostKeys: z.array(z.string()), sshdConfigD: z.array(z.string()) }),
  timezone: z.object({ localtime: z.string().nullable(), localtimeResolves: z.boolean(), etcTimezone: z.string().nullable(), legacyAliases: z.boolean() }),
  findings: z.array(finding),
});

export type BaseReport = z.infer<typeof baseReportSchema>;
export type Finding = z.infer<typeof finding>;
export type UnitState = z.infer<typeof unitState>;
export type Cmdline = z.infer<typeof cmdline>;
export type CloudInitFacts = z.infer<typeof cloudInit>;
export type InitramfsImage = z.infer<typeof initramfsImage>;
export type AptSource = z.infer<typeof aptSource>;
export type BootFile = z.infer<typeof bootFile>;
export type BaseUser = z.infer<typeof user>;
