import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { UserError } from '../errors.ts';
import { formatIssues } from './errors.ts';
import { type Recipe, recipeSchema } from './schema.ts';
import { legacyTimezoneWarning } from './timezones.ts';

export interface LoadedRecipe {
  recipe: Recipe;
  /** The recipe file's exact text, hashed into the manifest. */
  source: string;
  path: string;
  /** What is valid but worth telling the user (e.g. an old time zone name, which is mapped). */
  warnings: string[];
}

/** Valid, but not what the recipe's author may think: said once, by `render` and `build`. */
export function recipeWarnings(recipe: Recipe): string[] {
  return [legacyTimezoneWarning(recipe.timezone)].filter((w): w is string => Boolean(w));
}

/**
 * How many copies of an anchor's value its aliases may make (the `yaml` package's own `maxAliasCount`, whose
 * default this is): a few aliases are fine, and a "billion laughs" recipe, a few lines that expand to millions
 * of values, stops here instead of filling the memory.
 */
export const MAX_ALIAS_COUNT = 100;

/** The recipe's YAML as plain data; what the `yaml` package finds wrong, as a recipe error naming the file. */
function yamlData(text: string, origin: string): unknown {
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length) {
    const first = document.errors[0]!;
    throw new UserError(`${origin} is not valid YAML: ${first.message}`);
  }
  try {
    return document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    // The yaml package throws (a ReferenceError) while resolving aliases: too many copies, or an alias before its anchor.
    const message = (error as Error).message;
    if (/excessive alias count/i.test(message)) {
      throw new UserError(
        `${origin} is not valid YAML: its aliases (*name) expand into too many copies (more than the yaml library's limit of ${MAX_ALIAS_COUNT}), ` +
          'as a "billion laughs" attack does to fill the memory; write the values out instead of aliasing them',
      );
    }
    throw new UserError(`${origin} is not valid YAML: ${message}`);
  }
}

/** Parse and validate recipe text; `origin` names the file in messages. */
export function parseRecipe(text: string, origin: string): Recipe {
  const data = yamlData(text, origin);
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new UserError(`${origin}: a recipe is a YAML mapping with at least \`name:\`; see recipes/README.md`);
  }
  const result = recipeSchema.safeParse(data);
  if (!result.success) {
    const lines = formatIssues(result.error.issues, recipeSchema, data);
    throw new UserError(`${origin} is not a valid recipe:\n${lines.map((l) => `  ${l}`).join('\n')}\nSee recipes/README.md for every field.`);
  }
  return result.data;
}

/** Paths inside a recipe are relative to the recipe file, so a recipe works from any working directory. */
function resolvePaths(recipe: Recipe, recipeDir: string): Recipe {
  const out = structuredClone(recipe);
  if (out.base.provider === 'file') out.base.path = resolve(recipeDir, out.base.path);
  out.overlays = out.overlays.map((dir) => resolve(recipeDir, dir));
  for (const binary of [out.simplexmq.smp_server, out.simplexmq.xftp_server]) {
    if (binary?.path) binary.path = resolve(recipeDir, binary.path);
  }
  return out;
}

export async function loadRecipe(path: string): Promise<LoadedRecipe> {
  const absolute = resolve(path);
  let source: string;
  try {
    source = await readFile(absolute, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UserError(
      code === 'ENOENT'
        ? `recipe file ${path} does not exist; \`simplex-pi recipes\` lists the presets in recipes/`
        : `cannot read recipe file ${path}: ${(error as Error).message}`,
    );
  }
  const recipe = resolvePaths(parseRecipe(source, path), dirname(absolute));
  return { recipe, source, path: absolute, warnings: recipeWarnings(recipe) };
}
