import type { Command } from '../command-table.ts';
import { DEVICE_COMMAND, HEALTH_FILE, STATE_DIR, UNITS, unitName } from '../plan/layout.ts';

/**
 * The device program's commands (DEVICE_COMMAND on the Pi), declared once: main.ts parses and
 * prints its usage with them, and README.md's "On the Pi" table is generated from them (`npm run docs`).
 */

/** What a person types: DEVICE_COMMAND's name. */
export const COMMAND_NAME = DEVICE_COMMAND.slice(DEVICE_COMMAND.lastIndexOf('/') + 1);

export const DEVICE_COMMANDS: Command[] = [
  {
    name: 'status',
    flags: [],
    summary:
      "Shows first boot, each relay and whether it listens, Tor's bootstrap, and the addresses (the addresses only as root: `sudo simplex-pi status`).",
  },
  {
    name: 'addresses',
    flags: [],
    summary: `Prints the server addresses first boot wrote (as root; the root-only copy in ${STATE_DIR}/).`,
  },
  {
    name: 'export',
    flags: [
      {
        name: 'device',
        type: 'string',
        value: 'DEV',
        defaultText: "the one USB stick with the recipe's label",
        help: 'The USB stick (partition) to write, when more than one carries the label.',
      },
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
    name: 'firstboot',
    flags: [],
    summary:
      `What ${UNITS.firstboot} runs once, before Tor: onion keys, client-authorization keys, \`init\` of every relay, the INI ` +
      `settings, the addresses; the USB export is ${UNITS.export}'s. Every step checks what exists, so running it again changes nothing; ` +
      `\`journalctl -u ${unitName(UNITS.firstboot)}\` tells what it did.`,
  },
];
