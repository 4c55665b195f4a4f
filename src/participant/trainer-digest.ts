/**
 * The digest of the trainer code this participant runs, for site policies that pin it
 * (`allowedTrainerDigests`, issue 6): SHA-256 over the built-in trainer's source files (src/models,
 * tests excluded), each as its length-prefixed name and bytes, in name order. A change to any line of
 * the training code changes the digest, so a site that pinned one refuses to train with another.
 * `entente participant trainer-digest` prints it.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { encodeCanonicalFields } from '../crypto/canonical-bytes.ts';

const MODELS_DIR = fileURLToPath(new URL('../models/', import.meta.url));
let cached: string | undefined;

/** SHA-256 (hex) of the built-in trainer's code; computed once per process. */
export function computeBuiltinTrainerDigest(): string {
  if (cached !== undefined) return cached;
  const hash = createHash('sha256');
  const files = readdirSync(MODELS_DIR)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .sort();
  for (const f of files) hash.update(encodeCanonicalFields([f, readFileSync(`${MODELS_DIR}${f}`, 'utf8')]));
  cached = hash.digest('hex');
  return cached;
}
