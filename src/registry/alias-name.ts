/**
 * Names of model aliases (`candidate`, `canary`, `production`, or any other): 1 to 40 characters of
 * lower-case letters, digits and '-'. The same rule is declared in governance/alias-trail.ts (sibling
 * folders do not import each other).
 */
import { EntenteError } from '../core/errors.ts';

export const ALIAS_NAME_PATTERN = /^[a-z0-9-]{1,40}$/;

/** True when `name` is a valid alias name. */
export function isAliasName(name: unknown): name is string {
  return typeof name === 'string' && ALIAS_NAME_PATTERN.test(name);
}

/** Returns `name` when valid; throws INVALID_ARGUMENT naming `field` otherwise. */
export function parseAliasName(name: unknown, field = 'alias'): string {
  if (!isAliasName(name))
    throw new EntenteError('INVALID_ARGUMENT', `${field}: must be 1 to 40 characters of a-z, 0-9 and '-'`, {
      field,
    });
  return name;
}
