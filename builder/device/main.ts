// The simplex-pi program on the Pi: bundled into one .mjs (at run time it needs only Node's built-ins; the QR code
// library is bundled in) and run by Debian's Node 18/20.
import { webcrypto } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { PLAN_PATH, PLAN_SCHEMA_VERSION, STATE, UNITS, unitName } from '../plan/layout.ts';
import type { BuildPlan } from '../plan/plan.ts';
import { automaticExport, explicitExport } from './export.ts';
import { StickRefused } from './stick-writer.ts';
import { denied, status, statusJson } from './status.ts';
import { watchdogRound } from './watchdog.ts';
import { UpdateRefused, update } from './update.ts';
import { firstboot } from './firstboot.ts';
import { commandHelp, parseCommand, programHelp, wantsHelp, type Parsed } from '../command-table.ts';
import { COMMAND_NAME, DEVICE_COMMANDS } from './commands.ts';
import { redactPasswords } from './redact.ts';
import { resolve } from 'node:path';
import { type BackupEncryption, type BackupTarget, backup, backupStick } from './backup.ts';
import { atomicWrite } from './files.ts';
import { readPassphrase } from '../passphrase.ts';
import { isAgeRecipient } from '../recipe/age.ts';

// The age encryption library (export.encrypt_to) draws its randomness from WebCrypto, which Node 18 (bookworm)
// has but does not make global.
if (!globalThis.crypto) Object.assign(globalThis, { crypto: webcrypto });

/** A refusal is an answer, not a failure of the program: said plainly, with a non-zero exit for the unit. */
class Refused extends Error {}

const PLAN = process.env.SIMPLEX_PI_PLAN ?? PLAN_PATH;

async function loadPlan(): Promise<BuildPlan> {
  const plan = JSON.parse(await readFile(PLAN, 'utf8')) as BuildPlan;
  if (plan.schemaVersion !== PLAN_SCHEMA_VERSION) throw new Error(`${PLAN} has schema version ${plan.schemaVersion}; this program reads version ${PLAN_SCHEMA_VERSION}`);
  return plan;
}

/** Each command's code, by its name in DEVICE_COMMANDS (commands.ts). */
type Values = { device?: string; auto?: boolean; output?: string; recipient?: string; passphrase?: boolean; json?: boolean; from?: string; 'if-newer'?: boolean; downgrade?: boolean };

const HANDLERS: Record<string, (parsed: Parsed<Values>) => Promise<void>> = {
  firstboot: async () => {
    // The first-boot unit writes to the journal, which the card keeps: no password goes there.
    await firstboot(await loadPlan(), (line) => console.log(redactPasswords(line)));
  },
  export: async ({ values }) => {
    const plan = await loadPlan();
    const log = (line: string) => console.log(line);
    if (values.auto) {
      if (!(await automaticExport(plan, log))) throw new Refused('export: nothing secret was written (see above)');
      return;
    }
    await explicitExport(plan, values.device, log).catch((error: unknown) => {
      throw error instanceof StickRefused ? new Refused(`export: ${error.message}`) : error;
    });
  },
  backup: async ({ values }) => {
    const plan = await loadPlan();
    const encryption = await backupEncryption(plan, values);
    const log = (line: string) => console.error(line);
    const target: BackupTarget = values.output
      ? { file: values.output === '-' ? '(stdout)' : values.output, write: (bytes) => writeBackupFile(values.output!, bytes) }
      : { stick: await backupStick(plan, values.device).catch(refusal) };
    await backup(plan, encryption, target, log).catch(refusal);
  },
  status: async ({ values }) => {
    const plan = await loadPlan();
    process.stdout.write(values.json ? await statusJson(plan) : await status(plan));
  },
  update: async ({ values }) => {
    if (process.getuid?.() !== 0) throw new Refused(`update: needs root (it installs programs and restarts the relays): \`sudo ${COMMAND_NAME} update --from …\``);
    const options = { from: values.from!, ifNewer: values['if-newer'] === true, downgrade: values.downgrade === true };
    // Under its timer the lines go to the journal; the bundle's URL and the relays' onions are no secret.
    await update(await loadPlan(), options, (line) => console.log(line)).catch((error: unknown) => {
      throw error instanceof UpdateRefused ? new Refused(error.message) : error;
    });
  },
  watchdog: async () => {
    // Its lines go to the journal: errors name onion addresses, never a password (they are not in what it reads).
    await watchdogRound(await loadPlan(), (line) => console.log(redactPasswords(line)));
  },
  addresses: async () => {
    const addresses = await readFile(STATE.addresses, 'utf8').catch((error: unknown) => {
      if (denied(error)) throw new Error(`permission denied: the addresses hold the relays' passwords, and only root may read them; run \`sudo ${COMMAND_NAME} addresses\``);
      return `No addresses yet: first boot has not finished (journalctl -u ${unitName(UNITS.firstboot)}).\n`;
    });
    process.stdout.write(addresses);
  },
};

/** A refusal to write a stick is an answer (the unit fails with it), not a crash. */
function refusal(error: unknown): never {
  throw error instanceof StickRefused ? new Refused(error.message) : error;
}

async function backupEncryption(plan: BuildPlan, values: Values): Promise<BackupEncryption> {
  if (values.passphrase) {
    if (values.recipient) throw new Refused('backup: --passphrase or --recipient, not both');
    return { passphrase: await readPassphrase({ purpose: 'the backup', confirm: true }) };
  }
  const recipient = values.recipient ?? plan.backup.recipient;
  if (!recipient) throw new Refused('backup: the recipe sets no backup.recipient: give --recipient age1… (from `age-keygen`) or --passphrase');
  if (!isAgeRecipient(recipient)) throw new Refused(`backup: ${recipient} is not an age X25519 recipient (age1… as \`age-keygen\` prints it)`);
  return { recipient };
}

/** --output: the encrypted file, 0600, written whole or not at all; `-` is stdout. */
async function writeBackupFile(path: string, bytes: Buffer): Promise<void> {
  if (path === '-') {
    // A terminal would mangle the bytes (a pty turns \n into \r\n, `ssh -t` mixes in the messages) while the Pi
    // recorded a good backup.
    if (process.stdout.isTTY) throw new Refused('backup: --output - writes the binary backup to stdout, which is a terminal here: redirect it (`ssh pi sudo simplex-pi backup --output - > backup.tar`, without -t) or give a file');
    await new Promise<void>((resolve, reject) => process.stdout.write(bytes, (error) => (error ? reject(error) : resolve())));
    return;
  }
  const target = resolve(path);
  await atomicWrite(target, bytes, 0o600);
}

const usage = () =>
  programHelp(COMMAND_NAME, DEVICE_COMMANDS, {
    title: `${COMMAND_NAME} on the Pi: the relays' first boot, their addresses and their state`,
    more: [`${COMMAND_NAME} COMMAND --help`],
  });

async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const command = DEVICE_COMMANDS.find((c) => c.name === name);
  if (!command) {
    console.error(`${name === undefined ? '' : `unknown command "${name}"\n\n`}${usage()}`);
    return 2;
  }
  if (wantsHelp(rest)) {
    process.stdout.write(`${commandHelp(COMMAND_NAME, command)}\n`);
    return 0;
  }
  await HANDLERS[command.name]!(parseCommand(command, rest));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const command = process.argv[2];
    if (error instanceof Refused) {
      console.error(error.message);
      process.exit(1);
    }
    // Under a unit (first boot, the export) this goes to the journal: an error may quote a server's output.
    console.error(redactPasswords(`simplex-pi ${command ?? ''}: ${error instanceof Error ? error.message : String(error)}`));
    if (command === 'firstboot') {
      console.error(
        'First boot did not finish. Nothing already made is lost: it continues where it stopped at the next boot ' +
          `(or now: \`sudo systemctl restart ${unitName(UNITS.firstboot)}\`). If it fails again, the lines above say which step and why.`,
      );
    }
    process.exit(1);
  },
);
