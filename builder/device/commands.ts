import type { Command } from '../command-table.ts';
import { DEVICE_COMMAND, STATE_DIR, UNITS, unitName } from '../plan/layout.ts';

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
        defaultText: "the stick with the recipe's label, if one is plugged in",
        help: 'The block device to write; the udev rule passes the stick just plugged in.',
      },
    ],
    summary: "Writes the addresses to the USB stick again (a stick with another label is never written). Needs root.",
  },
  {
    name: 'firstboot',
    flags: [],
    summary:
      `What ${UNITS.firstboot} runs once, before Tor: onion keys, client-authorization keys, \`init\` of every relay, the INI ` +
      'settings, the addresses, then the USB export. Every step checks what exists, so running it again changes nothing; ' +
      `\`journalctl -u ${unitName(UNITS.firstboot)}\` tells what it did.`,
  },
];
