/**
 * Model provenance as an in-toto Statement v1 (in-toto/attestation spec/v1/statement.md), to be wrapped
 * in a DSSE envelope with payloadType "application/vnd.in-toto+json". The subject is the model's
 * SHA-256; the predicate records how it was made (run, round, policy, data schema, code, hyperparameters,
 * contributors, log index). Serialised as RFC 8785 canonical JSON so equal statements are equal bytes.
 */
import { EntenteError } from '../core/errors.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { SHA256_HEX } from '../crypto/digest.ts';

export interface ModelProvenance {
  /** Lower-case hex SHA-256 of the model bytes. */
  modelSha256: string;
  run: string;
  round: number;
  policySha256: string | null;
  dataSchemaSha256: string | null;
  codeVersion: string;
  /** Any JSON value (finite numbers only). */
  hyperparameters: unknown;
  /** Distinct participant ids, in the order given. */
  contributors: readonly string[];
  /** Index of the audit-log entry that records this model version. */
  logIndex: number;
}

export const IN_TOTO_STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const PROVENANCE_PREDICATE_TYPE = 'https://entente.dev/provenance/model/v1';

type Code = 'INVALID_ARGUMENT' | 'INVALID_MESSAGE';

function fail(code: Code, field: string, message: string): EntenteError {
  return new EntenteError(code, `${field}: ${message}`, { field });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The in-toto subject name of a model version. */
function subjectNameOf(run: string, round: number): string {
  return `entente-model:${run}:round-${round}`;
}

/** Checks every field of `p` (from a caller or from parsed JSON) and returns a fresh copy. */
function checkProvenance(p: Record<string, unknown>, code: Code, prefix: string): ModelProvenance {
  const f = (name: string) => `${prefix}${name}`;
  const hex = (name: string, nullable: boolean): string | null => {
    const v = p[name];
    if (nullable && v === null) return null;
    if (typeof v !== 'string' || !SHA256_HEX.test(v))
      throw fail(code, f(name), 'must be 64 lower-case hex digits');
    return v;
  };
  const text = (name: string): string => {
    const v = p[name];
    if (typeof v !== 'string' || v.length === 0) throw fail(code, f(name), 'must be a non-empty string');
    return v;
  };
  const count = (name: string): number => {
    const v = p[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      throw fail(code, f(name), 'must be a non-negative safe integer');
    return v;
  };
  const modelSha256 = hex('modelSha256', false)!;
  const run = text('run');
  const round = count('round');
  const policySha256 = hex('policySha256', true);
  const dataSchemaSha256 = hex('dataSchemaSha256', true);
  const codeVersion = text('codeVersion');
  const logIndex = count('logIndex');
  if (p.hyperparameters === undefined) throw fail(code, f('hyperparameters'), 'must be a JSON value');
  const hyperparameters: unknown = JSON.parse(canonicalizeJson(p.hyperparameters, f('hyperparameters')));
  const contributors = p.contributors;
  if (!Array.isArray(contributors) || contributors.some((c) => typeof c !== 'string' || c.length === 0))
    throw fail(code, f('contributors'), 'must be an array of non-empty strings');
  if (new Set(contributors).size !== contributors.length)
    throw fail(code, f('contributors'), 'must be distinct');
  return {
    modelSha256,
    run,
    round,
    policySha256,
    dataSchemaSha256,
    codeVersion,
    hyperparameters,
    contributors: [...(contributors as string[])],
    logIndex,
  };
}

/** The canonical JSON bytes (UTF-8) of the in-toto Statement for `p`. Throws INVALID_ARGUMENT naming
 *  the field when a field is invalid (hashes must be lower-case hex, counts non-negative integers,
 *  contributors distinct, hyperparameters representable as JSON). */
export function createProvenanceStatement(p: ModelProvenance): Uint8Array {
  const c = checkProvenance({ ...p }, 'INVALID_ARGUMENT', '');
  const statement = {
    _type: IN_TOTO_STATEMENT_TYPE,
    subject: [{ name: subjectNameOf(c.run, c.round), digest: { sha256: c.modelSha256 } }],
    predicateType: PROVENANCE_PREDICATE_TYPE,
    predicate: {
      run: c.run,
      round: c.round,
      policySha256: c.policySha256,
      dataSchemaSha256: c.dataSchemaSha256,
      codeVersion: c.codeVersion,
      hyperparameters: c.hyperparameters,
      contributors: c.contributors,
      logIndex: c.logIndex,
    },
  };
  return new TextEncoder().encode(canonicalizeJson(statement));
}

/** Parses statement bytes (e.g. a verified DSSE payload). Throws INVALID_MESSAGE naming the field for
 *  invalid UTF-8 or JSON, a wrong _type or predicateType, a subject that is not one model digest
 *  matching the predicate, or an invalid predicate field. Unknown extra fields are ignored. */
export function parseProvenanceStatement(bytes: Uint8Array): ModelProvenance {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes));
  } catch {
    throw fail('INVALID_MESSAGE', 'statement', 'not UTF-8 JSON');
  }
  if (!isRecord(value)) throw fail('INVALID_MESSAGE', 'statement', 'must be a JSON object');
  if (value._type !== IN_TOTO_STATEMENT_TYPE)
    throw fail('INVALID_MESSAGE', 'statement._type', `must be ${IN_TOTO_STATEMENT_TYPE}`);
  if (value.predicateType !== PROVENANCE_PREDICATE_TYPE)
    throw fail('INVALID_MESSAGE', 'statement.predicateType', `must be ${PROVENANCE_PREDICATE_TYPE}`);
  const subject = value.subject;
  if (!Array.isArray(subject) || subject.length !== 1 || !isRecord(subject[0]))
    throw fail('INVALID_MESSAGE', 'statement.subject', 'must hold exactly one model');
  const only = subject[0];
  if (
    !isRecord(only.digest) ||
    typeof only.digest.sha256 !== 'string' ||
    !SHA256_HEX.test(only.digest.sha256)
  )
    throw fail('INVALID_MESSAGE', 'statement.subject[0].digest.sha256', 'must be 64 lower-case hex digits');
  if (!isRecord(value.predicate)) throw fail('INVALID_MESSAGE', 'statement.predicate', 'must be an object');
  let p: ModelProvenance;
  try {
    p = checkProvenance(
      { ...value.predicate, modelSha256: only.digest.sha256 },
      'INVALID_MESSAGE',
      'statement.predicate.',
    );
  } catch (error) {
    // canonicalizeJson reports INVALID_ARGUMENT; at this boundary every defect is INVALID_MESSAGE.
    if (error instanceof EntenteError && error.code !== 'INVALID_MESSAGE')
      throw fail('INVALID_MESSAGE', error.field ?? 'statement.predicate', 'is not valid');
    throw error;
  }
  if (only.name !== subjectNameOf(p.run, p.round))
    throw fail('INVALID_MESSAGE', 'statement.subject[0].name', 'does not match the predicate run and round');
  return p;
}
