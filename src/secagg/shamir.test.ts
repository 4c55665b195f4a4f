import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { combineShares, splitSecret } from './shamir.ts';

const isInvalid = (field: string) => (e: unknown) =>
  e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field;

/** n, t with 2 <= t <= n <= 12, and a secret of 16..48 bytes (so a wrong result equals it with probability <= 2^-128). */
const setupArb = fc
  .integer({ min: 2, max: 12 })
  .chain((n) => fc.record({ n: fc.constant(n), t: fc.integer({ min: 2, max: n }) }))
  .chain(({ n, t }) =>
    fc.record({
      n: fc.constant(n),
      t: fc.constant(t),
      secret: fc.uint8Array({ minLength: 16, maxLength: 48 }),
      order: fc.shuffledSubarray(
        Array.from({ length: n }, (_, i) => i),
        { minLength: n, maxLength: n },
      ),
    }),
  );

describe('Shamir secret sharing', () => {
  it('any t of n shares reconstruct the secret (property)', async () => {
    await fc.assert(
      fc.asyncProperty(setupArb, async ({ n, t, secret, order }) => {
        const shares = await splitSecret(secret, n, t);
        assert.equal(shares.length, n);
        for (const s of shares) assert.equal(s.length, secret.length + 1);
        const subset = order.slice(0, t).map((i) => shares[i]!);
        assert.deepEqual(await combineShares(subset), secret);
        const all = order.map((i) => shares[i]!);
        assert.deepEqual(await combineShares(all), secret);
      }),
      { numRuns: 100 },
    );
  });

  it('t-1 shares do not give the secret (property)', async () => {
    await fc.assert(
      fc.asyncProperty(setupArb, async ({ n, t, secret, order }) => {
        const shares = await splitSecret(secret, n, t);
        const subset = order.slice(0, t - 1).map((i) => shares[i]!);
        if (subset.length < 2) {
          await assert.rejects(combineShares(subset), isInvalid('shares'));
        } else {
          assert.notDeepEqual(await combineShares(subset), secret);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('a single share of a 1-byte secret at threshold 2 is uniform: every secret is consistent with it', async () => {
    // Perfect secrecy check on the smallest case: with t = 2, the first byte of one share takes
    // every value over many splits of the same secret.
    const seen = new Set<number>();
    for (let i = 0; i < 6000 && seen.size < 256; i++)
      seen.add((await splitSecret(new Uint8Array([42]), 2, 2))[0]![0]!);
    assert.equal(seen.size, 256);
  });

  it('accepts Buffers and 32-byte secrets, 255 shares', async () => {
    const secret = randomBytes(32);
    const shares = await splitSecret(secret, 255, 171);
    assert.equal(new Set(shares.map((s) => s[32])).size, 255);
    assert.deepEqual(await combineShares(shares.slice(84)), new Uint8Array(secret));
  });

  it('bad parameters throw INVALID_ARGUMENT', async () => {
    const secret = new Uint8Array(32);
    await assert.rejects(splitSecret(new Uint8Array(0), 3, 2), isInvalid('secret'));
    await assert.rejects(splitSecret('x' as unknown as Uint8Array, 3, 2), isInvalid('secret'));
    await assert.rejects(splitSecret(secret, 1, 1), isInvalid('shares'));
    await assert.rejects(splitSecret(secret, 256, 2), isInvalid('shares'));
    await assert.rejects(splitSecret(secret, 3.5, 2), isInvalid('shares'));
    await assert.rejects(splitSecret(secret, 3, 1), isInvalid('threshold'));
    await assert.rejects(splitSecret(secret, 3, 4), isInvalid('threshold'));
    const shares = await splitSecret(secret, 4, 2);
    await assert.rejects(combineShares([shares[0]!]), isInvalid('shares'));
    await assert.rejects(combineShares([shares[0]!, shares[0]!]), isInvalid('shares'));
    await assert.rejects(combineShares([shares[0]!, shares[1]!.subarray(1)]), isInvalid('shares'));
    const zeroX = Uint8Array.from(shares[1]!);
    zeroX[32] = 0;
    await assert.rejects(combineShares([shares[0]!, zeroX]), isInvalid('shares'));
    await assert.rejects(combineShares([new Uint8Array(1), new Uint8Array(1)]), isInvalid('shares'));
  });
});
