import { z } from 'zod';
import { recipeSchema } from './schema.ts';

/**
 * The recipe schema as JSON Schema (what a recipe may contain, before defaults), for editors: with the YAML
 * language server, `# yaml-language-server: $schema=./recipe.schema.json` at the top of a recipe gives completion
 * and checks as you type. Rules that span fields (port collisions, a way to log in) are only checked by
 * simplex-pi itself.
 */
export function recipeJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(recipeSchema, { io: 'input', unrepresentable: 'any' }),
    $id: 'https://simplex-pi.invalid/recipe.schema.json',
    title: 'simplex-pi recipe',
    description: 'One YAML file per group: what simplex-pi builds. Documented field by field in recipes/README.md.',
  };
}

export function recipeJsonSchemaText(): string {
  return `${JSON.stringify(recipeJsonSchema(), null, 2)}\n`;
}
