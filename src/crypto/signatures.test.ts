import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { generateEd25519KeyPem, readEd25519PublicKey, signEd25519, verifyEd25519 } from './signatures.ts';

interface Ed25519Case {
  tcId: number;
  comment: string;
  publicKey: string;
  msg: string;
  sig: string;
  result: 'valid' | 'invalid' | 'acceptable';
}

const vectors = JSON.parse(
  readFileSync(
    new URL('../../test/vectors/crypto/kat_ed25519_x25519_hkdf_subset.json', import.meta.url),
    'utf8',
  ),
) as { ed25519: Ed25519Case[] };
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));

/** RFC 8032 §7.1 TEST 1 secret key as PKCS#8 PEM (RFC 8410). */
const RFC8032_TEST1_PEM = `-----BEGIN PRIVATE KEY-----\n${Buffer.concat([
  Buffer.from('302e020100300506032b657004220420', 'hex'),
  Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex'),
]).toString('base64')}\n-----END PRIVATE KEY-----\n`;

const isInvalidArgument = (e: unknown) =>
  e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === 'privateKeyPem';

describe('Ed25519 (RFC 8032)', () => {
  it('agrees with every Wycheproof ed25519 known-answer case', () => {
    assert.ok(vectors.ed25519.length >= 40);
    for (const c of vectors.ed25519) {
      assert.notEqual(c.result, 'acceptable', `tcId ${c.tcId}: no acceptable ed25519 cases expected`);
      const ok = verifyEd25519(hex(c.publicKey), hex(c.msg), hex(c.sig));
      assert.equal(ok, c.result === 'valid', `tcId ${c.tcId}: ${c.comment}`);
    }
  });

  it('signs deterministically: RFC 8032 TEST 1', () => {
    assert.equal(
      Buffer.from(readEd25519PublicKey(RFC8032_TEST1_PEM)).toString('hex'),
      'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    );
    assert.equal(
      Buffer.from(signEd25519(RFC8032_TEST1_PEM, new Uint8Array(0))).toString('hex'),
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    );
  });

  it('round-trips and rejects any single-bit change (property)', () => {
    const { privateKeyPem, publicKey } = generateEd25519KeyPem();
    assert.equal(publicKey.length, 32);
    assert.deepEqual(readEd25519PublicKey(privateKeyPem), publicKey);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.nat(), fc.nat(), (msg, bitA, bitB) => {
        const sig = signEd25519(privateKeyPem, msg);
        assert.equal(sig.length, 64);
        assert.equal(verifyEd25519(publicKey, msg, sig), true);
        const badMsg = Uint8Array.from(msg);
        badMsg[(bitA >> 3) % msg.length]! ^= 1 << (bitA & 7);
        assert.equal(verifyEd25519(publicKey, badMsg, sig), false);
        const badSig = Uint8Array.from(sig);
        badSig[(bitB >> 3) % 64]! ^= 1 << (bitB & 7);
        assert.equal(verifyEd25519(publicKey, msg, badSig), false);
      }),
      { numRuns: 100 },
    );
    const other = generateEd25519KeyPem();
    assert.equal(
      verifyEd25519(other.publicKey, new Uint8Array(1), signEd25519(privateKeyPem, new Uint8Array(1))),
      false,
    );
  });

  it('never throws on malformed input, returns false', () => {
    const { privateKeyPem, publicKey } = generateEd25519KeyPem();
    const msg = new Uint8Array([1, 2, 3]);
    const sig = signEd25519(privateKeyPem, msg);
    assert.equal(verifyEd25519(publicKey.subarray(0, 31), msg, sig), false);
    assert.equal(verifyEd25519(publicKey, msg, sig.subarray(0, 63)), false);
    assert.equal(verifyEd25519(new Uint8Array(33), msg, sig), false);
    assert.equal(verifyEd25519(new Uint8Array(32).fill(0xff), msg, sig), false);
    assert.equal(verifyEd25519(null as unknown as Uint8Array, msg, sig), false);
    assert.equal(verifyEd25519(publicKey, 'abc' as unknown as Uint8Array, sig), false);
    assert.equal(verifyEd25519(publicKey, msg, undefined as unknown as Uint8Array), false);
  });

  it('refuses private keys that are not Ed25519 PEM with INVALID_ARGUMENT', () => {
    const x25519 = generateKeyPairSync('x25519')
      .privateKey.export({ format: 'pem', type: 'pkcs8' })
      .toString();
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .privateKey.export({ format: 'pem', type: 'pkcs8' })
      .toString();
    for (const pem of [x25519, ec, 'not a pem', '']) {
      assert.throws(() => signEd25519(pem, new Uint8Array(1)), isInvalidArgument);
      assert.throws(() => readEd25519PublicKey(pem), isInvalidArgument);
    }
  });
});
