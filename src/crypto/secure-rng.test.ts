import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSecureRng } from './secure-rng.ts';

describe('secure rng', () => {
  it('draws words and floats in range, and two instances never agree', () => {
    const a = createSecureRng();
    const b = createSecureRng();
    const wa = Array.from({ length: 5000 }, () => a.nextUint32());
    const wb = Array.from({ length: 5000 }, () => b.nextUint32());
    for (const w of wa) assert.ok(Number.isInteger(w) && w >= 0 && w < 2 ** 32);
    assert.notDeepEqual(wa, wb);
    for (let i = 0; i < 1000; i++) {
      const f = a.nextFloat64();
      assert.ok(f >= 0 && f < 1);
    }
  });
});
