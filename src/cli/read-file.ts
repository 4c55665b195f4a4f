/** Reading a YAML or JSON file given on the command line (one rule for every command). */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { EntenteError } from '../core/errors.ts';

/**
 * Parses `path` as JSON (*.json) or YAML (anything else). Throws INVALID_ARGUMENT (field `field`) when it
 * cannot be read, INVALID_CONFIG when it does not parse.
 */
export function readStructuredFile(path: string, field: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new EntenteError('INVALID_ARGUMENT', `${field}: cannot read ${path}`, { field });
  }
  try {
    return path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new EntenteError('INVALID_CONFIG', `${path} is not valid: ${(err as Error).message}`, { field });
  }
}
