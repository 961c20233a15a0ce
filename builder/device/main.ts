// The simplex-pi program on the Pi: bundled into one .mjs (Node built-ins only) and run by Debian's Node 18/20.
import { readFile } from 'node:fs/promises';
import { PLAN_PATH, PLAN_SCHEMA_VERSION, STATE, UNITS } from '../plan/layout.ts';
import type { BuildPlan } from '../plan/plan.ts';
import { exportToStick } from './export.ts';
import { status } from './status.ts';
import { firstboot } from './firstboot.ts';

async function runExport(plan: BuildPlan, device: string | undefined): Promise<void> {
  const result = await exportToStick(plan, device);
  if ('skipped' in result) console.log(`export: ${result.skipped}`);
  else console.log(`export: wrote ${result.written.length} files to ${result.device}: ${result.written.join(', ')}`);
}

const PLAN = process.env.SIMPLEX_PI_PLAN ?? PLAN_PATH;
const unitName = (unit: string) => unit.replace(/\.service$/, '');

async function loadPlan(): Promise<BuildPlan> {
  const plan = JSON.parse(await readFile(PLAN, 'utf8')) as BuildPlan;
  if (plan.schemaVersion !== PLAN_SCHEMA_VERSION) throw new Error(`${PLAN} has schema version ${plan.schemaVersion}; this program reads version ${PLAN_SCHEMA_VERSION}`);
  return plan;
}

async function main(args: string[]): Promise<number> {
  const [command] = args;
  if (command === 'firstboot') {
    const plan = await loadPlan();
    await firstboot(plan, (line) => console.log(line));
    // A stick already plugged in gets the addresses now; one plugged in later, through the udev rule.
    await runExport(plan, undefined);
    return 0;
  }
  if (command === 'export') {
    const at = args.indexOf('--device');
    await runExport(await loadPlan(), at === -1 ? undefined : args[at + 1]);
    return 0;
  }
  if (command === 'status') {
    process.stdout.write(await status(await loadPlan()));
    return 0;
  }
  if (command === 'addresses') {
    process.stdout.write(await readFile(STATE.addresses, 'utf8').catch(() => `No addresses yet: first boot has not finished (journalctl -u ${unitName(UNITS.firstboot)}).\n`));
    return 0;
  }
  console.error('usage: simplex-pi status | addresses | export [--device DEV] | firstboot');
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const command = process.argv[2];
    console.error(`simplex-pi ${command ?? ''}: ${error instanceof Error ? error.message : String(error)}`);
    if (command === 'firstboot') {
      console.error(
        'First boot did not finish. Nothing already made is lost: it continues where it stopped at the next boot ' +
          `(or now: \`sudo systemctl restart ${unitName(UNITS.firstboot)}\`). If it fails again, the lines above say which step and why.`,
      );
    }
    process.exit(1);
  },
);
