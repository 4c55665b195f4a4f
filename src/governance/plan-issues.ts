/**
 * What plans (evaluation plans, rollout plans) share when they are parsed: every zod issue reported as
 * one line '<root>.<dotted path>: <message>' without echoing the refused value, all lines in one
 * EntenteError INVALID_CONFIG whose `field` is the first path; and the parsed plan frozen deeply.
 */
import type { z } from 'zod';
import { EntenteError } from '../core/errors.ts';

/** Throws INVALID_CONFIG listing every issue under `root`; `describe` may word an issue itself. */
export function throwPlanIssues(
  root: string,
  issues: readonly z.core.$ZodIssue[],
  describe?: (issue: z.core.$ZodIssue) => string | undefined,
): never {
  const dotted = (path: readonly PropertyKey[]): string => [root, ...path.map(String)].join('.');
  const lines: { field: string; message: string }[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys)
        lines.push({ field: dotted([...issue.path, key]), message: 'is not a known field' });
    } else if (
      (issue.code === 'invalid_type' || issue.code === 'invalid_value') &&
      issue.input === undefined
    ) {
      lines.push({ field: dotted(issue.path), message: 'is required' });
    } else {
      lines.push({
        field: dotted(issue.path),
        message: describe?.(issue) ?? issue.message.replace(/^Invalid (input|option): /, ''),
      });
    }
  }
  throw new EntenteError('INVALID_CONFIG', lines.map((l) => `${l.field}: ${l.message}`).join('\n'), {
    field: lines[0]!.field,
  });
}

/** Freezes `value` and everything it holds. */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
