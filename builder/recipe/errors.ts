import type { z } from 'zod';

/** Levenshtein distance, to suggest the field a typo meant. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = distance(word, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function fieldPath(path: readonly PropertyKey[]): string {
  return ['recipe', ...path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))].join('.').replaceAll('.[', '[');
}

/** The keys a strict object at `path` accepts, found by walking the schema; used for "did you mean". */
function knownKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let current: unknown = schema;
  for (const key of [...path, undefined]) {
    // Unwrap defaults, optionals, pipes and refinements down to the object shape.
    for (let guard = 0; guard < 10; guard++) {
      const def = (current as { def?: Record<string, unknown> })?.def;
      if (!def) break;
      if (def.innerType) current = def.innerType;
      else if (def.type === 'pipe' && def.in) current = def.in;
      else break;
    }
    const shape = (current as { shape?: Record<string, unknown> })?.shape;
    if (key === undefined) return shape ? Object.keys(shape) : [];
    if (!shape || typeof key !== 'string' || !(key in shape)) return [];
    current = shape[key];
  }
  return [];
}

/** One line per problem, each naming the field, e.g. `recipe.smp.instances: must be a whole number from 1 to 32 (got 40)`. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], schema: z.ZodType, input: unknown): string[] {
  return issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeys(schema, issue.path);
      return issue.keys.map((key) => {
        const hint = closest(key, known);
        const suggestion = hint ? `; did you mean "${hint}"?` : known.length ? `; known fields: ${known.join(', ')}` : '';
        return `${fieldPath([...issue.path, key])}: unknown field${suggestion}`;
      });
    }
    const got = valueAt(input, issue.path);
    const shown = got === undefined ? (issue.code === 'invalid_type' ? ' (missing)' : '') : ` (got ${JSON.stringify(got)})`;
    return [`${fieldPath(issue.path)}: ${issue.message}${shown}`];
  });
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let current = input;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return typeof current === 'object' ? undefined : current;
}
