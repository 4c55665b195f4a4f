import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkSchemaAgreement } from './schema-agreement.ts';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const sites = (entries: [string, string | undefined][]) => new Map(entries);

describe('checkSchemaAgreement', () => {
  it("a run naming a schema: ok when every site follows it, the task digest is the run's", () => {
    const r = checkSchemaAgreement(
      A,
      sites([
        ['alpha', A],
        ['beta', A],
      ]),
    );
    assert.deepEqual(
      { ok: r.ok, digest: r.digest, mismatched: r.mismatched },
      { ok: true, digest: A, mismatched: [] },
    );
  });

  it('a run naming a schema: names each site that follows another (or none) and both digests', () => {
    const r = checkSchemaAgreement(
      A,
      sites([
        ['gamma', B],
        ['alpha', A],
        ['delta', undefined],
      ]),
    );
    assert.equal(r.ok, false);
    assert.deepEqual(r.mismatched, ['delta', 'gamma']);
    assert.equal(
      r.message,
      `the run requires data schema ${A}; delta follows (none stated), gamma follows ${B}`,
    );
  });

  it('a run naming none: the shared digest when all agree, refused naming every group otherwise', () => {
    const ok = checkSchemaAgreement(
      undefined,
      sites([
        ['alpha', B],
        ['beta', B],
      ]),
    );
    assert.deepEqual({ ok: ok.ok, digest: ok.digest }, { ok: true, digest: B });
    const bad = checkSchemaAgreement(
      undefined,
      sites([
        ['alpha', A],
        ['beta', A],
        ['gamma', B],
      ]),
    );
    assert.equal(bad.ok, false);
    assert.equal(bad.digest, undefined);
    assert.equal(
      bad.message,
      `the sites follow different data schemas (the run names none): alpha, beta follow ${A}; gamma follows ${B}`,
    );
  });

  it('sites that state no schema agree only with each other', () => {
    assert.equal(
      checkSchemaAgreement(
        undefined,
        sites([
          ['alpha', undefined],
          ['beta', undefined],
        ]),
      ).ok,
      true,
    );
    assert.equal(
      checkSchemaAgreement(
        undefined,
        sites([
          ['alpha', undefined],
          ['beta', A],
        ]),
      ).ok,
      false,
    );
  });
});
