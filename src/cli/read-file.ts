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
    // The parser's first line names the line and column; the excerpt of the file that follows is left out.
    const first = (err as Error).message.split('\n')[0]!.trim();
    throw new EntenteError('INVALID_CONFIG', `${field}: ${path} is not valid: ${first}`, { field });
  }
}
