import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { generateEd25519KeyPem } from '../crypto/signatures.ts';
import { encodePae, signDsse, verifyDsse } from './dsse.ts';

interface PaeVector {
  payloadType: string;
  payload_utf8: string;
  pae: string;
  ecdsa_p256_public: {
    x_dec: string;
    y_dec: string;
    jwk: { kty: string; crv: string; x: string; y: string };
  };
  envelope: { payload: string; payloadType: string; signatures: { sig: string }[] };
}

const vector = JSON.parse(
  readFileSync(new URL('../../test/vectors/crypto/dsse_pae.json', import.meta.url), 'utf8'),
) as PaeVector;
const utf8 = (s: string) => new TextEncoder().encode(s);

const alice = generateEd25519KeyPem();
const bob = generateEd25519KeyPem();
const keys = new Map([
  ['alice', alice.publicKey],
  ['bob', bob.publicKey],
]);
const TYPE = 'application/vnd.in-toto+json';

describe('DSSE PAE vector', () => {
  it('encodes the PAE bytes exactly', () => {
    const pae = encodePae(vector.payloadType, utf8(vector.payload_utf8));
    assert.deepEqual(pae, utf8(vector.pae));
    assert.equal(Buffer.from(vector.envelope.payload, 'base64').toString('utf8'), vector.payload_utf8);
  });

  it('counts bytes, not characters, and keeps binary payloads intact', () => {
    const pae = encodePae('t\u00e9', Uint8Array.of(0, 32, 255));
    assert.deepEqual(pae, Uint8Array.of(...utf8('DSSEv1 3 t\u00e9 3 '), 0, 32, 255));
    assert.deepEqual(encodePae('', new Uint8Array(0)), utf8('DSSEv1 0  0 '));
  });

  it('verifies the ECDSA P-256 example signature (test-only verification)', () => {
    const { jwk, x_dec, y_dec } = vector.ecdsa_p256_public;
    const coordinate = (b64url: string) => BigInt(`0x${Buffer.from(b64url, 'base64url').toString('hex')}`);
    assert.equal(coordinate(jwk.x), BigInt(x_dec));
    assert.equal(coordinate(jwk.y), BigInt(y_dec));
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    const sig = Buffer.from(vector.envelope.signatures[0]!.sig, 'base64');
    const check = (message: Uint8Array) => verify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, sig);
    const { payloadType, payload } = vector.envelope;
    assert.equal(check(encodePae(payloadType, Buffer.from(payload, 'base64'))), true);
    assert.equal(check(encodePae(payloadType, utf8('hello world!'))), false);
    assert.equal(check(encodePae('http://example.com/HelloWorlD', utf8(vector.payload_utf8))), false);
    // Our verifier knows only Ed25519 keys, so the ECDSA envelope is well-formed but unverified.
    const verdict = verifyDsse(vector.envelope, keys);
    assert.ok(!verdict.ok && /no signature verifies/.test(verdict.reason));
  });
});

describe('Ed25519 envelopes', () => {
  it('round-trips any payload and type', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.string({ minLength: 1, maxLength: 40 }),
        (payload, type) => {
          fc.pre(!/\p{Cs}/u.test(type));
          const envelope = signDsse(type, payload, { keyid: 'alice', privateKeyPem: alice.privateKeyPem });
          assert.deepEqual(verifyDsse(JSON.parse(JSON.stringify(envelope)), keys), {
            ok: true,
            payload,
            payloadType: type,
            keyids: ['alice'],
          });
        },
      ),
      { numRuns: 50 },
    );
  });

  const envelope = signDsse(TYPE, utf8('{"a":1}'), { keyid: 'alice', privateKeyPem: alice.privateKeyPem });

  it('refuses a tampered payload or payload type', () => {
    const payload = verifyDsse({ ...envelope, payload: Buffer.from('{"a":2}').toString('base64') }, keys);
    assert.equal(payload.ok, false);
    assert.equal(verifyDsse({ ...envelope, payloadType: 'application/json' }, keys).ok, false);
  });

  it('refuses a signature by a key other than the one named, or an unknown keyid', () => {
    const relabelled = { ...envelope, signatures: [{ keyid: 'bob', sig: envelope.signatures[0]!.sig }] };
    assert.equal(verifyDsse(relabelled, keys).ok, false);
    assert.equal(verifyDsse(envelope, new Map([['bob', bob.publicKey]])).ok, false);
    assert.equal(verifyDsse(envelope, new Map([['carol', alice.publicKey]])).ok, false);
  });

  it('tries every key when the keyid hint is absent, and accepts URL-safe or unpadded base64', () => {
    const sig = envelope.signatures[0]!.sig;
    const verdict = verifyDsse({ ...envelope, signatures: [{ sig }] }, keys);
    assert.ok(verdict.ok && verdict.keyids.join() === 'alice');
    const urlSafe = {
      payload: envelope.payload.replace(/=+$/, ''),
      payloadType: TYPE,
      signatures: [{ keyid: 'alice', sig: Buffer.from(sig, 'base64').toString('base64url') }],
    };
    assert.equal(verifyDsse(urlSafe, keys).ok, true);
  });

  it('lists every key that verified when several signed', () => {
    const second = signDsse(TYPE, utf8('{"a":1}'), { keyid: 'bob', privateKeyPem: bob.privateKeyPem });
    const both = { ...envelope, signatures: [...envelope.signatures, ...second.signatures] };
    const verdict = verifyDsse(both, keys);
    assert.ok(verdict.ok);
    assert.deepEqual(verdict.keyids, ['alice', 'bob']);
    const oneBad = {
      ...both,
      signatures: [{ keyid: 'alice', sig: second.signatures[0]!.sig }, second.signatures[0]!],
    };
    assert.deepEqual((verifyDsse(oneBad, keys) as { keyids: string[] }).keyids, ['bob']);
  });

  it('refuses malformed envelopes with a reason, without throwing', () => {
    const cases: unknown[] = [
      null,
      [],
      'envelope',
      { ...envelope, payload: 5 },
      { ...envelope, payload: 'not base64!' },
      { ...envelope, payload: 'YQ=' },
      { ...envelope, payloadType: '' },
      { ...envelope, signatures: [] },
      { ...envelope, signatures: {} },
      { ...envelope, signatures: [{ keyid: 'alice' }] },
      { ...envelope, signatures: [{ keyid: 7, sig: envelope.signatures[0]!.sig }] },
      { ...envelope, signatures: [{ keyid: 'alice', sig: 'a+b_' }] },
      { ...envelope, signatures: Array.from({ length: 101 }, () => envelope.signatures[0]) },
    ];
    for (const value of cases) {
      const verdict = verifyDsse(value, keys);
      assert.ok(!verdict.ok && verdict.reason.length > 0, JSON.stringify(value));
    }
  });

  it('refuses any single-bit flip of the signature', () => {
    const raw = Buffer.from(envelope.signatures[0]!.sig, 'base64');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: raw.length * 8 - 1 }), (bit) => {
        const flipped = Buffer.from(raw);
        flipped[bit >> 3]! ^= 1 << (bit & 7);
        const sig = flipped.toString('base64');
        assert.equal(verifyDsse({ ...envelope, signatures: [{ keyid: 'alice', sig }] }, keys).ok, false);
      }),
      { numRuns: 100 },
    );
  });

  it('refuses bad signing inputs with INVALID_ARGUMENT', () => {
    const bad = (f: () => unknown, field: string) =>
      assert.throws(
        f,
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field,
      );
    bad(() => signDsse('', utf8('x'), { keyid: 'a', privateKeyPem: alice.privateKeyPem }), 'payloadType');
    bad(() => signDsse(TYPE, utf8('x'), { keyid: 'a', privateKeyPem: 'nope' }), 'privateKeyPem');
  });
});
