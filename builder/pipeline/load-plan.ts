import { type BuildPlan, resolvePlan } from '../plan/plan.ts';
import { type LoadedRecipe, loadRecipe } from '../recipe/load.ts';
import type { BaseSpec } from '../recipe/schema.ts';

export interface LoadedPlan {
  loaded: LoadedRecipe;
  plan: BuildPlan;
}

/**
 * Recipe file -> `--base` override -> plan, for `build` and `render` alike. No side effects, so a mistake in the
 * recipe or in --base is reported before anything is written.
 */
export async function loadPlan(recipePath: string, baseOverride?: (recipeBase: BaseSpec) => BaseSpec): Promise<LoadedPlan> {
  const loaded = await loadRecipe(recipePath);
  return { loaded, plan: resolvePlan(loaded.recipe, { base: baseOverride?.(loaded.recipe.base) }) };
}
