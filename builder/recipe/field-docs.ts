import { z } from 'zod';
import { baseSchema, recipeSchema } from './schema.ts';

/**
 * recipes/README.md's field tables, made from the schema: each field's description is its `.meta()` in
 * schema.ts, and its default is what the schema itself fills in (parsed, so a default is shown after its
 * transform, e.g. a version without its `v`). recipe.schema.json carries the same descriptions for editors.
 */

type Schema = z.ZodType;

interface Field {
  path: string;
  schema: Schema;
}

/** The description of a field: the `.meta()` of its outermost wrapper that has one (default, optional, …). */
export function descriptionOf(schema: Schema): string | undefined {
  for (let s: Schema | undefined = schema; s; s = wrapped(s)) {
    const description = z.globalRegistry.get(s)?.description;
    if (description) return description;
  }
  return undefined;
}

/** The schema inside a default, prefault or optional; undefined for anything else. */
function wrapped(schema: Schema): Schema | undefined {
  const def = schema.def as { type: string; innerType?: Schema };
  return ['default', 'prefault', 'optional'].includes(def.type) ? def.innerType : undefined;
}

function unwrapped(schema: Schema): Schema {
  let s = schema;
  for (let inner = wrapped(s); inner; inner = wrapped(s)) s = inner;
  return s;
}

/** A section of the recipe is an object that is always there (it has a default): its fields get rows of their own. */
function isSection(schema: Schema): schema is Schema {
  return unwrapped(schema) instanceof z.ZodObject && schema.safeParse(undefined).data !== undefined;
}

function shapeOf(schema: Schema): Record<string, Schema> {
  return (unwrapped(schema) as z.ZodObject).shape as Record<string, Schema>;
}

/** The rows of an object: its fields in schema order, a section's fields under dotted names (`client_auth.keys`). */
function fieldsOf(shape: Record<string, Schema>, prefix = ''): Field[] {
  return Object.entries(shape).flatMap(([key, schema]) =>
    isSection(schema) ? fieldsOf(shapeOf(schema), `${prefix}${key}.`) : [{ path: `${prefix}${key}`, schema }],
  );
}

function yamlValue(value: unknown): string {
  if (typeof value === 'string') return value === '' ? '""' : value;
  if (Array.isArray(value)) return `[${value.map(yamlValue).join(', ')}]`;
  return String(value);
}

function defaultOf(schema: Schema): string {
  const parsed = schema.safeParse(undefined);
  if (!parsed.success) return '(required)';
  if (parsed.data === undefined) return '(not set)';
  return `\`${yamlValue(parsed.data)}\``;
}

/** A table cell: one line, with `|` escaped so it does not end the cell. */
const cell = (text: string) => text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');

function table(fields: Field[]): string {
  const rows = fields.map((f) => {
    const description = descriptionOf(f.schema);
    if (!description) throw new Error(`builder/recipe/schema.ts: the recipe field ${f.path} has no description; give it .meta({ description })`);
    return `| \`${f.path}\` | ${cell(defaultOf(f.schema))} | ${cell(description)} |`;
  });
  return ['| field | default | meaning |', '|---|---|---|', ...rows].join('\n');
}

function baseTables(): string {
  return (baseSchema.options as unknown as z.ZodObject[])
    .map((variant) => {
      const { provider, ...fields } = variant.shape as Record<string, Schema>;
      const name = (provider as z.ZodLiteral<string>).value;
      return `**\`provider: ${name}\`**: ${descriptionOf(provider!)}\n\n${table(fieldsOf(fields))}`;
    })
    .join('\n\n');
}

/**
 * The generated blocks of recipes/README.md, by name: `recipe` for the top-level fields that are not sections,
 * `recipe.<section>` for each section, `recipe.base` for the base providers.
 */
export function recipeFieldBlocks(): Record<string, string> {
  const shape = recipeSchema.shape as Record<string, Schema>;
  const blocks: Record<string, string> = {
    recipe: table(Object.entries(shape).filter(([key, s]) => key !== 'base' && !isSection(s)).map(([path, schema]) => ({ path, schema }))),
  };
  for (const [key, schema] of Object.entries(shape)) {
    if (isSection(schema)) blocks[`recipe.${key}`] = table(fieldsOf(shapeOf(schema)));
  }
  blocks['recipe.base'] = baseTables();
  return blocks;
}

/** Every field of the recipe (the base providers' too) that has no description, for the test that there is none. */
export function undocumentedFields(): string[] {
  const missing: string[] = [];
  const walk = (shape: Record<string, Schema>, prefix: string) => {
    for (const [key, schema] of Object.entries(shape)) {
      const path = `${prefix}${key}`;
      if (!descriptionOf(schema)) missing.push(path);
      const inner = unwrapped(schema);
      if (inner instanceof z.ZodObject) walk(inner.shape as Record<string, Schema>, `${path}.`);
      if (inner instanceof z.ZodArray && inner.element instanceof z.ZodObject) walk(inner.element.shape as Record<string, Schema>, `${path}[].`);
    }
  };
  walk(recipeSchema.shape as Record<string, Schema>, '');
  (baseSchema.options as unknown as z.ZodObject[]).forEach((variant, i) => walk(variant.shape as Record<string, Schema>, `base(${i}).`));
  return missing;
}
