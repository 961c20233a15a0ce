// npm run schema: regenerate recipes/recipe.schema.json from the zod schema (a test checks it is current).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { recipeJsonSchemaText } from '../builder/recipe/json-schema.ts';
import { RECIPES_DIR } from '../builder/recipe/presets.ts';

await writeFile(join(RECIPES_DIR, 'recipe.schema.json'), recipeJsonSchemaText());
console.log('wrote recipes/recipe.schema.json');
