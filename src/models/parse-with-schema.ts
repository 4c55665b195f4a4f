/**
 * Turns a zod validation failure into one `EntenteError` whose message and `field` name the first
 * offending field (DESIGN.md §5: invalid input at a boundary throws one error naming the field).
 * Internal to src/models; not re-exported.
 */
import type { z } from 'zod';
import { EntenteError, type ErrorCode } from '../core/errors.ts';

/**
 * Parses `input` with `schema`. On failure throws EntenteError(`code`) with `field` set to
 * `${what}.${path}` of the first issue (for an unknown key, the key itself). Never echoes the value.
 */
export function parseWithSchema<S extends z.ZodType>(
  schema: S,
  input: unknown,
  code: ErrorCode,
  what: string,
): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (issue === undefined) throw new EntenteError(code, `${what}: invalid`, { field: what });
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys' && issue.keys.length > 0) path.push(issue.keys[0]!);
  const field = path.length === 0 ? what : `${what}.${path.join('.')}`;
  throw new EntenteError(code, `${field}: ${issue.message}`, { field });
}
