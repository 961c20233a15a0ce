import { resolve } from 'node:path';
import { UserError } from '../errors.ts';
import { type BaseSpec, baseSchema } from './schema.ts';

/** `--base` replaces the recipe's base; a recipe base of the same provider keeps its settings. */
export function baseOverride(value: string, sha256?: string): (recipeBase: BaseSpec) => BaseSpec {
  return (recipeBase) => {
    if (value === 'raspios' || value === 'debian') {
      return recipeBase.provider === value ? recipeBase : baseSchema.parse({ provider: value });
    }
    if (value.startsWith('file:')) {
      const path = resolve(value.slice('file:'.length));
      const hash = sha256 ?? (recipeBase.provider === 'file' ? recipeBase.sha256 : undefined);
      if (!hash) throw new UserError(`--base ${value} needs the image's sha256: add --base-sha256 HEX (sha256sum prints it)`);
      const parsed = baseSchema.safeParse({ provider: 'file', path, sha256: hash });
      if (!parsed.success) throw new UserError(`--base-sha256: ${parsed.error.issues[0]?.message}`);
      return parsed.data;
    }
    throw new UserError(`--base must be raspios, debian or file:PATH (got "${value}")`);
  };
}
