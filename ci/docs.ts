// The generated documentation, in one place: each file, and how its generated parts are made. `npm run docs`
// (also `npm run schema`) writes them (ci/write-docs.ts); test/unit/docs.test.ts fails when one is out of date.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMMANDS, PROGRAM } from '../builder/cli-commands.ts';
import { commandTable, flagTable, synopsisBlock } from '../builder/command-table.ts';
import { COMMAND_NAME, DEVICE_COMMANDS } from '../builder/device/commands.ts';
import { fillBlocks } from '../builder/docs/blocks.ts';
import { hostRequirementsTable } from '../builder/docs/host-requirements-table.ts';
import { recipeFieldBlocks } from '../builder/recipe/field-docs.ts';
import { recipeJsonSchemaText } from '../builder/recipe/json-schema.ts';

export const REPO = fileURLToPath(new URL('..', import.meta.url));

export interface GeneratedDoc {
  /** Relative to the repository. */
  path: string;
  /** What the file must hold. */
  text: string;
}

/** A hand-written document with generated blocks: its current text with every block filled in. */
async function withBlocks(path: string, blocks: Record<string, string>): Promise<GeneratedDoc> {
  return { path, text: fillBlocks(await readFile(join(REPO, path), 'utf8'), blocks, path) };
}

export async function generatedDocs(): Promise<GeneratedDoc[]> {
  return [
    { path: 'recipes/recipe.schema.json', text: recipeJsonSchemaText() },
    await withBlocks('recipes/README.md', recipeFieldBlocks()),
    await withBlocks('README.md', {
      cli: `${synopsisBlock(PROGRAM, COMMANDS)}\n\n${flagTable(COMMANDS)}`,
      device: `${commandTable(COMMAND_NAME, DEVICE_COMMANDS)}\n\n${flagTable(DEVICE_COMMANDS)}`,
      'host-requirements': hostRequirementsTable(),
    }),
  ];
}
