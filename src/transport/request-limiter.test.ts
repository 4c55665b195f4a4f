import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RequestLimiter } from './request-limiter.ts';

describe('RequestLimiter', () => {
  it('admits perKey requests per window from one key, then refuses until the window ends', () => {
    const l = new RequestLimiter({ perKey: 3, total: 100, windowMs: 1000 });
    assert.deepEqual(
      [0, 1, 2, 3].map((t) => l.check('a', t)),
      [null, null, null, 'per-key'],
    );
    assert.equal(l.check('b', 10), null, 'another key has its own window');
    assert.equal(l.check('a', 999), 'per-key');
    assert.equal(l.check('a', 1000), null, 'a new window');
  });

  it('10,000 other addresses do not reset a live limit', () => {
    const l = new RequestLimiter({ perKey: 2, total: 1_000_000, windowMs: 60_000, maxKeys: 10_000 });
    assert.equal(l.check('victim', 0), null);
    assert.equal(l.check('victim', 0), null);
    assert.equal(l.check('victim', 0), 'per-key');
    for (let i = 0; i < 10_001; i++) l.check(`10.0.${i >> 8}.${i & 255}`, 1);
    assert.equal(l.check('victim', 2), 'per-key', 'the flood of addresses did not clear the table');
    assert.ok(l.size <= 10_000, 'the table stays bounded');
  });

  it('refuses a new key when every tracked window is live, and evicts only expired ones', () => {
    const l = new RequestLimiter({ perKey: 5, total: 1_000_000, windowMs: 100, maxKeys: 3 });
    for (const k of ['a', 'b', 'c']) assert.equal(l.check(k, 0), null);
    assert.equal(l.check('d', 50), 'table-full');
    assert.equal(l.check('a', 60), null, 'a live key is still counted');
    assert.equal(l.check('d', 100), null, 'expired windows make room');
    assert.ok(l.size <= 3);
  });

  it('caps the requests of all keys together', () => {
    const l = new RequestLimiter({ perKey: 10, total: 5, windowMs: 1000 });
    const verdicts = Array.from({ length: 8 }, (_, i) => l.check(`k${i}`, i));
    assert.deepEqual(verdicts, [null, null, null, null, null, 'total', 'total', 'total']);
    assert.equal(l.check('k9', 1005), null, 'the next window admits again');
  });
});
