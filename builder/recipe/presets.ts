import { readFile, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { UserError } from '../errors.ts';
import { parseRecipe } from './load.ts';
import { MAX_SMP_INSTANCES, type PiModel, type Recipe } from './schema.ts';

export const RECIPES_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../recipes');

export interface Preset {
  file: string;
  recipe: Recipe;
}

export async function listPresets(dir = RECIPES_DIR): Promise<Preset[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort();
  return Promise.all(files.map(async (file) => ({ file: join(dir, file), recipe: parseRecipe(await readFile(join(dir, file), 'utf8'), file) })));
}

export interface Scaled {
  instances: number;
  quotaGb: number;
  hardware: string;
  /** The models `hardware` names, for the recipe's `models` (Raspberry Pi Imager's device list). */
  models: PiModel[];
  ssh: boolean;
}

/**
 * The scaling rule of `recipes new --group-size N`:
 * - one SMP relay per 10 people (the presets follow it: solo 5 → 1, family 20 → 2, team 100 → 10, org 300 → 30), at least 1 and at most 32: queues spread over more relays, so one relay that is
 *   down or blocked costs the group less, and each relay process stays small;
 * - XFTP quota 1 GB per person, 2 to 500 GB (files expire after 48 hours by default);
 * - SSH over Tor from 20 people up: a group that size needs someone who can update the Pi remotely;
 * - hardware by relay count, with about 100 MB of memory per relay and 300 MB for the system, Tor and the file
 *   relay (an estimate: measure with `simplex-pi status` on the device).
 */
export function scaleForGroup(people: number): Scaled {
  const instances = Math.min(MAX_SMP_INSTANCES, Math.max(1, Math.ceil(people / 10)));
  const quotaGb = Math.min(500, Math.max(2, people));
  const memoryMb = 300 + instances * 100;
  const [hardware, models]: [string, PiModel[]] =
    memoryMb <= 512
      ? ['Raspberry Pi Zero 2 W, 3 or newer, 512 MB+', ['zero2w', 'pi3', 'pi4', 'pi5']]
      : memoryMb <= 1024
        ? ['Raspberry Pi 3B+, 4 or 5, 1 GB+', ['pi3', 'pi4', 'pi5']]
        : memoryMb <= 2048
          ? ['Raspberry Pi 4 or 5, 2 GB+', ['pi4', 'pi5']]
          : memoryMb <= 4096
            ? ['Raspberry Pi 4 or 5, 4 GB+', ['pi4', 'pi5']]
            : ['Raspberry Pi 5, 8 GB', ['pi5']];
  return { instances, quotaGb, hardware, models, ssh: people >= 20 };
}

export function newRecipe(people: number, name: string): string {
  if (!Number.isInteger(people) || people < 1 || people > 10000) throw new UserError(`--group-size must be a whole number from 1 to 10000 (got ${people})`);
  const scaled = scaleForGroup(people);
  const recipe: Record<string, unknown> = {
    name,
    description: `${scaled.instances} SMP relay(s) and a ${scaled.quotaGb} GB file relay for ${people} people (${scaled.hardware})`,
    models: scaled.models,
    base: { provider: 'raspios' },
    smp: { instances: scaled.instances },
    xftp: { enabled: true, quota: `${scaled.quotaGb}gb` },
  };
  if (scaled.ssh) recipe.admin = { ssh: { over_tor: true, authorized_keys: [] } };
  const header = [
    `# ${name}: written by \`simplex-pi recipes new --group-size ${people}\`.`,
    `# Hardware: ${scaled.hardware}.`,
    '# Every field is documented in recipes/README.md.',
    '',
  ].join('\n');
  const text = `${header}${stringify(recipe)}`;
  parseRecipe(text, `${name}.yaml`);
  return text;
}
