import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { openShares, sealShares } from './share-cipher.ts';

const isInvalidSealed = (e: unknown) =>
  e instanceof EntenteError && e.code === 'INVALID_MESSAGE' && e.field === 'sealed';
const keyArb = fc.uint8Array({ minLength: 32, maxLength: 32 });

describe('share cipher (AES-256-GCM)', () => {
  it('round-trips and has layout nonce || ciphertext || tag (property)', () => {
    fc.assert(
      fc.property(
        keyArb,
        fc.uint8Array({ maxLength: 40 }),
        fc.uint8Array({ maxLength: 200 }),
        (key, ad, plaintext) => {
          const sealed = sealShares(key, ad, plaintext);
          assert.equal(sealed.length, 12 + plaintext.length + 16);
          assert.deepEqual(openShares(key, ad, sealed), plaintext);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('uses a fresh nonce per seal', () => {
    const key = randomBytes(32);
    const a = sealShares(key, new Uint8Array(0), new Uint8Array(32));
    const b = sealShares(key, new Uint8Array(0), new Uint8Array(32));
    assert.notDeepEqual(a.subarray(0, 12), b.subarray(0, 12));
    assert.notDeepEqual(a, b);
  });

  it('wrong associated data, any flipped bit or a wrong key => INVALID_MESSAGE without echoing bytes', () => {
    const key = randomBytes(32);
    const ad = new TextEncoder().encode('session|round|sender|receiver');
    const plaintext = randomBytes(33);
    const sealed = sealShares(key, ad, plaintext);
    const otherAd = Uint8Array.from(ad);
    otherAd[0]! ^= 1;
    assert.throws(() => openShares(key, otherAd, sealed), isInvalidSealed);
    assert.throws(() => openShares(key, ad.subarray(1), sealed), isInvalidSealed);
    const otherKey = Uint8Array.from(key);
    otherKey[31]! ^= 0x80;
    assert.throws(() => openShares(otherKey, ad, sealed), isInvalidSealed);
    for (let bit = 0; bit < sealed.length * 8; bit++) {
      const bad = Uint8Array.from(sealed);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      assert.throws(
        () => openShares(key, ad, bad),
        (e: unknown) =>
          isInvalidSealed(e) &&
          !(e as Error).message.includes(Buffer.from(plaintext).toString('hex').slice(0, 8)) &&
          !(e as Error).message.includes(Buffer.from(key).toString('hex').slice(0, 8)),
        `bit ${bit}`,
      );
    }
  });

  it('truncated or too short input => INVALID_MESSAGE; bad keys => INVALID_ARGUMENT', () => {
    const key = randomBytes(32);
    const sealed = sealShares(key, new Uint8Array(0), new Uint8Array(10));
    assert.throws(
      () => openShares(key, new Uint8Array(0), sealed.subarray(0, sealed.length - 1)),
      isInvalidSealed,
    );
    assert.throws(() => openShares(key, new Uint8Array(0), sealed.subarray(0, 27)), isInvalidSealed);
    assert.throws(() => openShares(key, new Uint8Array(0), new Uint8Array(0)), isInvalidSealed);
    assert.deepEqual(
      openShares(key, new Uint8Array(0), sealShares(key, new Uint8Array(0), new Uint8Array(0))),
      new Uint8Array(0),
    );
    const isBadKey = (e: unknown) =>
      e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === 'key32';
    assert.throws(() => sealShares(new Uint8Array(16), new Uint8Array(0), new Uint8Array(1)), isBadKey);
    assert.throws(() => openShares(new Uint8Array(16), new Uint8Array(0), sealed), isBadKey);
  });
});
