import { parseRecipe } from '../../builder/recipe/load.ts';

/** The message a recipe text is refused with; fails the test if the recipe is accepted. */
export function recipeErrorOf(text: string): string {
  try {
    parseRecipe(text, 'r.yaml');
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('recipe was accepted');
}
