/**
 * Tests for one-time enrollment tokens: round trip, parsing from both ends with '.' in member ids,
 * refusals that never echo the secret, digest comparison, and a fast-check round-trip property.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EntenteError } from '../core/errors.ts';
import { createEnrollmentToken, parseEnrollmentToken, verifyTokenDigest } from './enrollment-token.ts';

const FINGERPRINT = createHash('sha256').update('consortium CA').digest('hex');
const OTHER_FINGERPRINT = createHash('sha256').update('another CA').digest('hex');

/** Asserts that parsing `token` throws INVALID_ARGUMENT on 'token' without echoing `secrets`. */
function assertRefused(token: unknown, secrets: readonly string[], reason?: RegExp): void {
  assert.throws(
    () => parseEnrollmentToken(token),
    (e: unknown) => {
      assert.ok(e instanceof EntenteError, String(e));
      assert.equal(e.code, 'INVALID_ARGUMENT');
      assert.equal(e.field, 'token');
      assert.match(e.message, /^token: /);
      if (reason) assert.match(e.message, reason);
      for (const s of secrets) assert.ok(!e.message.includes(s), `message echoes a secret: ${e.message}`);
      return true;
    },
  );
}

describe('enrollment tokens', () => {
  it('round-trips: parse recovers member, secret, fingerprint and digest', () => {
    const created = createEnrollmentToken({ member: 'hospital-a', caFingerprintSha256: FINGERPRINT });
    assert.match(created.token, /^entente-enroll\.v1\.hospital-a\.[A-Za-z0-9_-]{43}\.[0-9a-f]{64}$/);
    const parsed = parseEnrollmentToken(created.token);
    assert.equal(parsed.member, 'hospital-a');
    assert.equal(parsed.caFingerprintSha256, FINGERPRINT);
    assert.equal(Buffer.from(parsed.secret, 'base64url').length, 32);
    assert.equal(created.token, `entente-enroll.v1.hospital-a.${parsed.secret}.${FINGERPRINT}`);
    const digest = createHash('sha256').update(Buffer.from(created.token, 'utf8')).digest('hex');
    assert.equal(created.tokenSha256, digest);
    assert.equal(parsed.tokenSha256, digest);
  });

  it("parses member ids containing '.', '-' and '_' from both ends", () => {
    for (const member of ['lab.eu-west.1', 'a', 'a.', 'a..b', 'x_y-z', '0.v1.z', 'a'.repeat(64)]) {
      const { token } = createEnrollmentToken({ member, caFingerprintSha256: FINGERPRINT });
      const parsed = parseEnrollmentToken(token);
      assert.equal(parsed.member, member);
      assert.equal(parsed.caFingerprintSha256, FINGERPRINT);
      assert.equal(parsed.secret.length, 43);
    }
  });

  it('creates a different secret every time', () => {
    const tokens = new Set<string>();
    for (let i = 0; i < 50; i++) {
      tokens.add(createEnrollmentToken({ member: 'same', caFingerprintSha256: FINGERPRINT }).token);
    }
    assert.equal(tokens.size, 50);
  });

  it('refuses malformed tokens without echoing the token or its secret', () => {
    const { token } = createEnrollmentToken({ member: 'hospital-a', caFingerprintSha256: FINGERPRINT });
    const { secret } = parseEnrollmentToken(token);
    const secrets = [secret, token];
    const body = `hospital-a.${secret}.${FINGERPRINT}`;
    assertRefused(`entente-enroll.v2.${body}`, secrets, /must start with/);
    assertRefused(`kubeadm.v1.${body}`, secrets, /must start with/);
    assertRefused(`Entente-enroll.v1.${body}`, secrets, /must start with/);
    assertRefused(
      `entente-enroll.v1.hospital-a.${secret.slice(0, 42)}.${FINGERPRINT}`,
      [secret.slice(0, 42)],
      /secret/,
    );
    assertRefused(`entente-enroll.v1.hospital-a.${secret}x.${FINGERPRINT}`, secrets, /secret/);
    assertRefused(`entente-enroll.v1.hospital-a.${secret.slice(0, 40)}!!!.${FINGERPRINT}`, secrets, /secret/);
    assertRefused(`entente-enroll.v1.hospital-a.${secret}.${FINGERPRINT.slice(1)}`, secrets, /fingerprint/);
    assertRefused(
      `entente-enroll.v1.hospital-a.${secret}.${FINGERPRINT.toUpperCase()}`,
      secrets,
      /fingerprint/,
    );
    assertRefused(`entente-enroll.v1.hospital-a.${secret}`, secrets, /fingerprint/);
    assertRefused(`entente-enroll.v1.Hospital-A.${secret}.${FINGERPRINT}`, secrets, /member/);
    assertRefused(`entente-enroll.v1.-lab.${secret}.${FINGERPRINT}`, secrets, /member/);
    assertRefused(`entente-enroll.v1..${secret}.${FINGERPRINT}`, secrets, /member/);
    assertRefused(`entente-enroll.v1.${'a'.repeat(65)}.${secret}.${FINGERPRINT}`, secrets, /member/);
    assertRefused(` ${token}`, secrets);
    assertRefused(`${token}\n`, secrets);
    assertRefused(`${token}.`, secrets);
    assertRefused(token.repeat(10), secrets, /longer/);
    assertRefused('', [], /empty/);
    for (const notString of [undefined, null, 42, {}, Buffer.from(token)]) {
      assertRefused(notString, secrets, /string/);
    }
  });

  it('refuses a non-canonical secret (nonzero trailing bits)', () => {
    const { token } = createEnrollmentToken({ member: 'm', caFingerprintSha256: FINGERPRINT });
    const { secret } = parseEnrollmentToken(token);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(secret.at(-1)!);
    assert.equal(last % 4, 0, '32 bytes leave the last two bits zero');
    const tweaked = secret.slice(0, 42) + alphabet[last + 1];
    assert.deepEqual(Buffer.from(tweaked, 'base64url'), Buffer.from(secret, 'base64url'), 'same bytes');
    assertRefused(`entente-enroll.v1.m.${tweaked}.${FINGERPRINT}`, [secret, tweaked], /canonical/);
  });

  it('createEnrollmentToken refuses invalid members and fingerprints, naming the field', () => {
    const cases: [unknown, unknown, string][] = [
      ['', FINGERPRINT, 'member'],
      ['Upper', FINGERPRINT, 'member'],
      ['.lead', FINGERPRINT, 'member'],
      ['sp ace', FINGERPRINT, 'member'],
      ['a'.repeat(65), FINGERPRINT, 'member'],
      [7, FINGERPRINT, 'member'],
      ['ok', FINGERPRINT.toUpperCase(), 'caFingerprintSha256'],
      ['ok', FINGERPRINT.slice(2), 'caFingerprintSha256'],
      ['ok', undefined, 'caFingerprintSha256'],
    ];
    for (const [member, caFingerprintSha256, field] of cases) {
      assert.throws(
        () =>
          createEnrollmentToken({ member, caFingerprintSha256 } as {
            member: string;
            caFingerprintSha256: string;
          }),
        (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_ARGUMENT' && e.field === field,
        `${String(member)} / ${String(caFingerprintSha256)}`,
      );
    }
  });

  it('verifyTokenDigest accepts the stored digest only', () => {
    const a = createEnrollmentToken({ member: 'hospital-a', caFingerprintSha256: FINGERPRINT });
    const b = createEnrollmentToken({ member: 'hospital-a', caFingerprintSha256: FINGERPRINT });
    assert.equal(verifyTokenDigest(a.token, a.tokenSha256), true);
    assert.equal(verifyTokenDigest(a.token, a.tokenSha256.toUpperCase()), true);
    assert.equal(verifyTokenDigest(a.token, b.tokenSha256), false);
    assert.equal(verifyTokenDigest(b.token, a.tokenSha256), false);
    const flipped = (a.tokenSha256[0] === '0' ? '1' : '0') + a.tokenSha256.slice(1);
    assert.equal(verifyTokenDigest(a.token, flipped), false);
    assert.equal(verifyTokenDigest(a.token, a.tokenSha256.slice(0, 62)), false);
    assert.equal(verifyTokenDigest(a.token, `${a.tokenSha256}00`), false);
    assert.equal(verifyTokenDigest(a.token, 'z'.repeat(64)), false);
    assert.equal(verifyTokenDigest(undefined as unknown as string, a.tokenSha256), false);
    assert.equal(verifyTokenDigest(a.token, undefined as unknown as string), false);
  });

  it('property: parse(create(x)) recovers the member and fingerprint for random valid ids', () => {
    const head = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789');
    const tail = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789._-');
    const member = fc
      .tuple(head, fc.array(tail, { maxLength: 63 }))
      .map(([first, rest]) => first + rest.join(''));
    const fingerprint = fc
      .uint8Array({ minLength: 32, maxLength: 32 })
      .map((bytes) => Buffer.from(bytes).toString('hex'));
    fc.assert(
      fc.property(member, fingerprint, (m, fp) => {
        const created = createEnrollmentToken({ member: m, caFingerprintSha256: fp });
        const parsed = parseEnrollmentToken(created.token);
        assert.equal(parsed.member, m);
        assert.equal(parsed.caFingerprintSha256, fp);
        assert.equal(parsed.tokenSha256, created.tokenSha256);
        assert.equal(verifyTokenDigest(created.token, parsed.tokenSha256), true);
      }),
      { numRuns: 300 },
    );
  });

  it('binds the fingerprint: the same member under another CA is another token', () => {
    const a = createEnrollmentToken({ member: 'm', caFingerprintSha256: FINGERPRINT });
    const swapped = a.token.replace(FINGERPRINT, OTHER_FINGERPRINT);
    assert.equal(parseEnrollmentToken(swapped).caFingerprintSha256, OTHER_FINGERPRINT);
    assert.equal(verifyTokenDigest(swapped, a.tokenSha256), false);
  });
});
