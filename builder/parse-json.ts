import type { z } from 'zod';
import { UserError } from './errors.ts';

/** How to word a document that is not what it should be; each completes a sentence that starts with its source. */
export interface JsonExpectation {
  /** When the text is not JSON at all: "is not JSON; is base.imager_json the URL of …?". */
  notJson: string;
  /** When it is JSON of the wrong shape, before the first problem zod found: "is not a simplex-pi build manifest". */
  invalid: string;
}

/**
 * Parse `text` as JSON and check it against `schema`. Either failure is a UserError that names `source` and, for
 * the wrong shape, the first field at fault, so that the user knows which file and what in it to look at.
 */
export function parseJsonAs<Schema extends z.ZodType>(schema: Schema, text: string, source: string, expected: JsonExpectation): z.output<Schema> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new UserError(`${source} ${expected.notJson}`);
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length ? `${issue.path.join('.')}: ` : '';
    throw new UserError(`${source} ${expected.invalid}: ${where}${issue.message}`);
  }
  return parsed.data;
}
