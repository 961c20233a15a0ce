import type { Command, Flag } from './command-table.ts';

/**
 * Every command of the build host's `simplex-pi` and its flags, declared once: cli.ts parses with it and prints
 * its help from it, and README.md's usage block is generated from it (`npm run docs`).
 */

export const PROGRAM = 'simplex-pi';

const recipe: Flag = {
  name: 'recipe',
  type: 'string',
  value: 'FILE',
  defaultText: 'recipes/family.yaml',
  help: 'The recipe. Presets for every group size, and every field, are documented in recipes/README.md; `simplex-pi recipes new` writes one scaled for your group.',
};
const base: Flag = {
  name: 'base',
  type: 'string',
  value: 'raspios|debian|file:PATH',
  help: "Replaces the recipe's base: raspios (Raspberry Pi OS Lite arm64, the default), debian (built here from Debian packages), or file:PATH (a local .img or .img.xz; give its sha256).",
};
const baseSha256: Flag = { name: 'base-sha256', type: 'string', value: 'HEX', within: 'base', help: 'The sha256 of the image --base file:PATH names.' };
const cache: Flag = {
  name: 'cache',
  type: 'string',
  value: 'DIR',
  defaultText: '$SIMPLEX_PI_CACHE, else $XDG_CACHE_HOME/simplex-pi',
  help: 'The cache of base images, downloads and package layers.',
};

export const COMMANDS: Command[] = [
  {
    name: 'build',
    flags: [
      recipe,
      base,
      baseSha256,
      { name: 'out', type: 'string', value: 'DIR', defaultText: 'output/<name>', help: 'Where the image and the files that go with it are written.' },
      { name: 'compress', type: 'string', choices: ['xz', 'none'], default: 'xz', help: "none skips the .img.xz (Imager's files then point at the .img)." },
      { name: 'xz-level', type: 'string', choices: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'], default: '6', help: "xz's compression level: trades size for time." },
      {
        name: 'publish-url',
        type: 'string',
        value: 'URL',
        help: 'Where you will put the image for others to download (the URL of the directory): <name>.rpi-imager.json then points at URL/<name>.img.xz.',
      },
      cache,
      {
        name: 'lock',
        type: 'string',
        value: 'FILE',
        defaultText: "simplex-pi's own simplexmq.lock.json",
        help: 'The lock file with the sha256 of each simplexmq release asset (binaries with `sha256: lock`, the default).',
      },
      {
        name: 'update-lock',
        type: 'boolean',
        default: false,
        help: "Enter the release notes' sha256s for the recipe's simplexmq version into the lock file first, and say what changed; review the change (git diff) before you commit it.",
      },
      {
        name: 'verbose',
        type: 'boolean',
        short: 'v',
        default: false,
        help: 'Print every command as it runs. Without it, progress shows one line per stage with its duration, and bytes and speed while downloading.',
      },
    ],
    summary:
      'Build the image described by a recipe into output/<name>/: <name>.img, <name>.img.xz, manifest.json, SHA256SUMS, the build log, ' +
      'and for Raspberry Pi Imager <name>.rpi-imager-manifest (double-click it) and <name>.rpi-imager.json (a repository; with ' +
      '--publish-url it points at URL/<name>.img.xz, where you will publish the image). Needs root.',
  },
  {
    name: 'render',
    flags: [
      recipe,
      { name: 'out', type: 'string', value: 'DIR', required: 'render needs --out DIR', help: 'Where the files are written: DIR/rootfs, DIR/plan.json, DIR/files.txt.' },
      base,
      baseSha256,
    ],
    summary:
      'Write the configuration files the build would put into the image (Tor, units, firewall, sshd) and the plan.json the Pi reads, ' +
      'into DIR, for review. Takes about a second; no root needed.',
  },
  { name: 'recipes', flags: [], summary: 'List the preset recipes; `recipes new` writes a recipe scaled for a group size.' },
  {
    name: 'recipes new',
    flags: [
      { name: 'group-size', type: 'string', value: 'N', required: 'recipes new needs --group-size N', help: 'How many people the relays are for (1–10000).' },
      { name: 'name', type: 'string', value: 'NAME', defaultText: 'group-N', help: "The recipe's name." },
      { name: 'out', type: 'string', value: 'FILE', defaultText: 'NAME.yaml', help: 'The file to write; an existing file is never replaced.' },
    ],
    summary:
      'Write a recipe scaled for N people: one SMP relay per 10 people (1 to 32), an XFTP quota of 1 GB per person (2 to 500 GB), ' +
      'SSH over Tor from 20 people up, and the hardware that fits.',
  },
  {
    name: 'doctor',
    flags: [cache],
    summary:
      'Check this host (Node.js, tools, binfmt, loop devices, disk space) and release the mounts and loop devices a killed build left behind.',
  },
  {
    name: 'inspect-base',
    positional: { name: 'IMAGE', missing: 'inspect-base takes one image: simplex-pi inspect-base IMAGE [--json] (a .img or .img.xz)' },
    flags: [
      { name: 'json', type: 'boolean', default: false, help: 'The report as one JSON object, for machines.' },
      { name: 'tmp', type: 'string', value: 'DIR', defaultText: '$TMPDIR or /tmp', help: 'Where an .img.xz is decompressed (and removed afterwards).' },
    ],
    summary:
      'Report what the build relies on in a base image (.img or .img.xz, e.g. Raspberry Pi OS Lite): partition table, boot partition ' +
      'and cmdline.txt, ext4 features, fstab, machine-id, enabled first-boot units, cloud-init, the Imager init_format it implies, ' +
      'initramfs resize scripts, packages, apt sources, the first user. Reads only: the root partition is mounted read-only from a ' +
      'read-only loop device. Needs root.',
  },
  {
    name: 'restore',
    flags: [
      { name: 'backup', type: 'string', value: 'FILE', required: 'restore needs --backup FILE (a simplex-pi-backup-….tar from the stick)', help: 'The backup, as `simplex-pi backup` wrote it.' },
      {
        name: 'card',
        type: 'string',
        value: 'DEV|IMG',
        required: 'restore needs --card DEV|IMG: the freshly flashed card (/dev/sdX), or the image before flashing',
        help: 'The freshly flashed card, never booted (a block device, none of it mounted), or an .img to flash afterwards.',
      },
      { name: 'identity', type: 'string', value: 'FILE', help: 'The age identity file (`age-keygen -o`) whose recipient the recipe names in backup.recipient.' },
      { name: 'passphrase', type: 'boolean', default: false, help: 'The backup was made with --passphrase: type it (or give it as the first line of stdin).' },
    ],
    summary:
      "Put a backup's relays (onion addresses, identities, passwords, queues and messages) onto a new card before its first boot, so it serves " +
      "the same addresses. Decrypts in memory and writes only into the card's root filesystem: no key in the clear reaches a stick or a temporary file. " +
      'Refuses a card that booted already or whose relays differ from the backup\'s. Needs root (README: your card died).',
  },
  {
    name: 'backup-info',
    positional: { name: 'FILE', missing: 'backup-info takes one backup file: simplex-pi backup-info FILE' },
    flags: [],
    summary: "What a backup holds (when, which Pi, each relay's onion and fingerprint), read without any key.",
  },
  {
    name: 'keygen',
    flags: [
      { name: 'out', type: 'string', value: 'DIR', help: 'Writes DIR/minisign.key (mode 0600) and DIR/minisign.pub.' },
      { name: 'secret-key', type: 'string', value: 'FILE', help: 'Where to write the secret key, instead of --out.' },
      { name: 'public-key', type: 'string', value: 'FILE', help: 'Where to write the public key, with --secret-key.' },
      { name: 'unencrypted', type: 'boolean', default: false, help: 'Leave the secret key unencrypted, for a key kept in a CI secret store.' },
    ],
    forms: [['out'], ['secret-key', 'public-key']],
    summary:
      'Make a minisign key pair for signing releases. The secret key is encrypted with a password from $SIMPLEX_PI_KEY_PASSWORD or ' +
      'typed at the prompt. Never replaces an existing file.',
  },
  {
    name: 'sign',
    positional: { name: 'DIR', missing: 'sign takes one output directory: simplex-pi sign DIR --key FILE' },
    flags: [
      {
        name: 'key',
        type: 'string',
        value: 'FILE',
        required: 'sign needs --key FILE: a secret key made by `simplex-pi keygen` (or `minisign -G`)',
        help: 'The minisign secret key.',
      },
    ],
    summary:
      'Check every checksum in DIR/SHA256SUMS, then sign SHA256SUMS and the Raspberry Pi Imager files with a minisign secret key, ' +
      'writing <file>.minisig next to each.',
  },
  {
    name: 'rebuild-check',
    positional: {
      name: 'DIR|MANIFEST',
      missing: "rebuild-check takes a build's output directory, a release directory or a manifest: simplex-pi rebuild-check output/family",
    },
    flags: [
      {
        name: 'recipe',
        type: 'string',
        value: 'FILE',
        defaultText: 'where the manifest says',
        help: 'The recipe the image was built from, when it is not at the path the manifest records (its sha256 must match).',
      },
      cache,
      { name: 'keep', type: 'string', value: 'DIR', help: 'Keep the rebuilt files in DIR (by default they go to a temporary directory that is removed).' },
      { name: 'verbose', type: 'boolean', short: 'v', default: false, help: 'Print every command of the rebuild as it runs.' },
    ],
    summary:
      'Build an image again from the inputs its manifest records (recipe, base, packages layer, simplexmq binaries, options) and compare ' +
      'every file byte for byte. Says IDENTICAL, or names the first place the images differ (partition, block, the file that owns it) and ' +
      'the manifest fields that differ. Exits 0 only if every image was rebuilt bit for bit. Needs root.',
  },
  {
    name: 'verify',
    positional: { name: 'DIR|URL', missing: 'verify takes one release directory or URL: simplex-pi verify DIR|URL --pubkey FILE|KEY' },
    flags: [
      {
        name: 'pubkey',
        type: 'string',
        value: 'FILE|KEY',
        required: "verify needs --pubkey: the project's published public key (the base64 line starting with RW) or its minisign.pub file",
        help: "The project's public key: a minisign.pub file or the base64 key.",
      },
    ],
    summary:
      'Check a release directory or URL: the signature of SHA256SUMS with the public key, the sha256 of every file it lists, and the ' +
      'signed Imager files. Exits 0 only if everything verified.',
  },
];

/** The command `args` name: the longest name whose words start them (`recipes new` before `recipes`). */
export function findCommand(args: string[]): { command: Command; rest: string[] } | undefined {
  const matches = COMMANDS.filter((c) => c.name.split(' ').every((word, i) => args[i] === word));
  const command = matches.sort((a, b) => b.name.length - a.name.length)[0];
  return command && { command, rest: args.slice(command.name.split(' ').length) };
}

export function commandNamed(name: string): Command {
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) throw new Error(`no command "${name}" in builder/cli-commands.ts`);
  return command;
}
