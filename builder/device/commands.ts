import type { Command, Flag } from '../command-table.ts';
import { BACKUP_FOLDER, DEVICE_COMMAND, HEALTH_FILE, STATE_DIR, UNITS, unitName } from '../plan/layout.ts';

/**
 * The device program's commands (DEVICE_COMMAND on the Pi), declared once: main.ts parses and
 * prints its usage with them, and README.md's "On the Pi" table is generated from them (`npm run docs`).
 */

/** What a person types: DEVICE_COMMAND's name. */
export const COMMAND_NAME = DEVICE_COMMAND.slice(DEVICE_COMMAND.lastIndexOf('/') + 1);

/** The stick root names for `export` and `backup` (device/stick-writer.ts chooseStick). */
const device: Flag = {
  name: 'device',
  type: 'string',
  value: 'DEV',
  defaultText: "the one USB stick with the recipe's label",
  help: 'The USB stick (partition) to write, when more than one carries the label.',
};

export const DEVICE_COMMANDS: Command[] = [
  {
    name: 'status',
    flags: [{ name: 'json', type: 'boolean', help: 'Print it as one JSON object (no addresses, no secret), for scripts and monitoring.' }],
    summary:
      "Shows first boot, each relay and whether it listens, what the watchdog last saw through Tor, Tor's bootstrap, the disk, the last backup, and the addresses " +
      '(the addresses only as root: `sudo simplex-pi status`).',
  },
  {
    name: 'addresses',
    flags: [],
    summary: `Prints the server addresses first boot wrote (as root; the root-only copy in ${STATE_DIR}/).`,
  },
  {
    name: 'export',
    flags: [
      device,
      {
        name: 'auto',
        type: 'boolean',
        help:
          `What ${UNITS.export} runs for a stick plugged in: the secrets only for the one automatic export after first boot ` +
          `(or encrypted, with export.encrypt_to), otherwise only ${HEALTH_FILE}.`,
      },
    ],
    summary:
      'Writes the relay addresses and keys, in the clear, to the USB stick with the recipe\'s label (never to another ' +
      'label, never to a device that is not USB storage). Needs root: a stick plugged in gets no secret otherwise.',
  },
  {
    name: 'backup',
    flags: [
      device,
      { name: 'output', type: 'string', value: 'FILE', help: 'Write the backup to FILE instead of a stick (`-`: to stdout, e.g. through `ssh … > backup.tar`).' },
      { name: 'recipient', type: 'string', value: 'AGE', defaultText: 'backup.recipient of the recipe', help: 'Encrypt to this age recipient (`age1…`).' },
      { name: 'passphrase', type: 'boolean', help: 'Encrypt with a passphrase, typed twice (or the first line of stdin), instead of a recipient.' },
    ],
    summary:
      "Backs up everything that makes the relays the same relays (onion keys, identities, passwords, queues and undelivered messages, SSH's keys) " +
      `into one age-encrypted file, to ${BACKUP_FOLDER}/ on the labelled USB stick or to --output. Each SMP relay stops for a moment, one at a time. ` +
      'Needs root. Restore it onto a new card with `simplex-pi restore` on your computer (README: your card died).',
  },
  {
    name: 'watchdog',
    flags: [],
    summary:
      `What ${UNITS.watchdogTimer} runs every watchdog.interval_seconds: each relay and SSH reached through the Pi's own Tor at its own onion address ` +
      "(TLS handshake and identity, or SSH's banner) and on its local port; a failure is met one step at a time (reload Tor, restart Tor, restart the " +
      `relay), then reported, never restarted in a loop. \`journalctl -u ${unitName(UNITS.watchdog)}\` tells what it did.`,
  },
  {
    name: 'update',
    flags: [
      {
        name: 'from',
        type: 'string',
        value: 'FILE|URL',
        required: 'update needs --from: a relay update bundle (simplex-pi-relay-update-<version>.tar, its .minisig beside it) or its http(s) URL',
        help: 'The bundle: a file (its signature `<file>.minisig` beside it), or a URL fetched through Tor (the signature from `<url>.minisig`).',
      },
      { name: 'if-newer', type: 'boolean', help: 'Apply it only if it holds a newer simplexmq than the relays run; otherwise do nothing (what the daily check runs).' },
      { name: 'downgrade', type: 'boolean', help: 'Accept an older simplexmq than the relays run (refused otherwise: an old signed bundle could be replayed).' },
    ],
    summary:
      "Updates smp-server and xftp-server from a signed relay update bundle, without reflashing: the signature (the image's update key, recipe " +
      'update.public_key) is checked before anything else, then every binary; the new release is put beside the running one, the relays are ' +
      'switched and restarted one at a time, each checked as the watchdog checks it, and all are rolled back if one is not healthy. Needs root.',
  },
  {
    name: 'firstboot',
    flags: [],
    summary:
      `What ${UNITS.firstboot} runs once, before Tor: onion keys, client-authorization keys, \`init\` of every relay, the INI ` +
      `settings, the addresses; the USB export is ${UNITS.export}'s. Every step checks what exists, so running it again changes nothing; ` +
      `\`journalctl -u ${unitName(UNITS.firstboot)}\` tells what it did.`,
  },
];
