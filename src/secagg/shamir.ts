/**
 * t-of-n secret sharing (Shamir, "How to share a secret", CACM 1979) byte-wise over GF(2^8), as
 * used by secure aggregation to share each participant's self-mask seed and key-agreement secret
 * (Bonawitz et al., CCS 2017, §4). Delegates the field arithmetic to the independently audited
 * `shamir-secret-sharing` package (Privy; x⁸+x⁴+x³+x+1, random distinct x-coordinates from
 * node:crypto). A share is the secret's length in y-bytes followed by one x-coordinate byte, so at
 * most 255 shares exist per secret.
 */
import { combine, split } from 'shamir-secret-sharing';
import { EntenteError } from '../core/errors.ts';

const MAX_SHARES = 255;

function invalid(field: string, message: string, cause?: unknown): never {
  throw new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field, cause });
}

/**
 * Splits `secret` (non-empty, secret) into `shares` shares of which any `threshold` reconstruct it
 * and fewer reveal nothing. Throws INVALID_ARGUMENT unless 2 <= threshold <= shares <= 255 are
 * integers and the secret is a non-empty Uint8Array. The returned shares are secret.
 */
export async function splitSecret(
  secret: Uint8Array,
  shares: number,
  threshold: number,
): Promise<Uint8Array[]> {
  if (!(secret instanceof Uint8Array) || secret.length === 0)
    invalid('secret', 'must be a non-empty Uint8Array');
  if (!Number.isInteger(shares) || shares < 2 || shares > MAX_SHARES)
    invalid('shares', `must be an integer in [2, ${MAX_SHARES}]`);
  if (!Number.isInteger(threshold) || threshold < 2 || threshold > shares)
    invalid('threshold', 'must be an integer in [2, shares]');
  // The package checks `constructor === Uint8Array`, so hand it a plain copy (not a Buffer).
  return split(Uint8Array.from(secret), shares, threshold);
}

/**
 * Reconstructs a secret from shares made by splitSecret. With at least `threshold` shares of one
 * secret the result is that secret; with fewer it is unrelated to it (no error can tell). Throws
 * INVALID_ARGUMENT (field 'shares') for fewer than 2 or more than 255 shares, differing or too short
 * lengths, a zero or repeated x-coordinate. The result is secret.
 */
export async function combineShares(shares: readonly Uint8Array[]): Promise<Uint8Array> {
  if (!Array.isArray(shares) || shares.length < 2 || shares.length > MAX_SHARES)
    invalid('shares', `must be an array of 2 to ${MAX_SHARES} shares`);
  const length = shares[0] instanceof Uint8Array ? shares[0].length : 0;
  const seen = new Set<number>();
  const copies = shares.map((share, i) => {
    if (!(share instanceof Uint8Array) || share.length < 2 || share.length !== length)
      invalid(
        'shares',
        `share ${i} must be a Uint8Array of the same length (at least 2 bytes) as the others`,
      );
    const x = share[share.length - 1]!;
    if (x === 0 || seen.has(x)) invalid('shares', `share ${i} has a zero or repeated x-coordinate`);
    seen.add(x);
    return Uint8Array.from(share);
  });
  try {
    return await combine(copies);
  } catch (cause) {
    return invalid('shares', 'cannot be combined', cause);
  }
}
