import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { REPO } from './env.ts';

/**
 * Raspberry Pi Imager's own JSON Schema for repository files (test/fixtures/imager/, copied from rpi-imager), a
 * draft-07 schema, hence Ajv's default class. The schema is loosely written (`additionalItems` beside a single
 * `items` schema), which Ajv's strict mode rejects as a schema; strictness is about schemas, not about the data
 * checked, so it is turned off.
 */
const schema = JSON.parse(readFileSync(join(REPO, 'test/fixtures/imager/os-list-schema.json'), 'utf8')) as Record<string, unknown>;
const validate = new Ajv({ strict: false, allErrors: true }).compile(schema);

/** Imager's schema errors of `data`: none for a valid repository JSON. */
export function imagerSchemaErrors(data: unknown): ErrorObject[] {
  return validate(data) ? [] : [...(validate.errors ?? [])];
}
