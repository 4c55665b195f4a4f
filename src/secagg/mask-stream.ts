/**
 * The mask generator of secure aggregation (Bonawitz et al., CCS 2017, §4: PRG(seed) expanded to the
 * length of the input vector, added for the self mask and ± for pairwise masks so that they cancel
 * in the sum). The PRG is the AES-128-CTR keystream (NIST SP 800-38A §6.5) with a zero initial
 * counter block: safe because every key is derived (HKDF, key-agreement.ts) for exactly one stream.
 * The keystream is read as little-endian uint32 words (ring Z_2^32) or uint64 words (ring Z_2^64)
 * and added or subtracted elementwise modulo the ring. Keystream is produced in 64 KiB chunks from one
 * reused zero buffer so memory stays flat whatever the vector length.
 */
import { type Cipher, createCipheriv } from 'node:crypto';
import { EntenteError } from '../core/errors.ts';

/** A vector over Z_2^32 (Uint32Array) or Z_2^64 (BigUint64Array). */
export type RingVector = Uint32Array | BigUint64Array;

const CHUNK_BYTES = 64 * 1024;
const AES_128_KEY_BYTES = 16;
const ZERO_IV = new Uint8Array(16);
const ZEROS = new Uint8Array(CHUNK_BYTES);
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** Position of the low / high 32-bit limb of a uint64 inside a Uint32Array view of host memory. */
const LO = LITTLE_ENDIAN_HOST ? 0 : 1;
const HI = 1 - LO;

function invalid(field: string, message: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

/** The 32-bit limbs of a ring vector (one per uint32 word, two per uint64 word in host order). */
function limbsOf(vector: RingVector): Int32Array {
  const perWord = vector instanceof Uint32Array ? 1 : 2;
  return new Int32Array(vector.buffer, vector.byteOffset, vector.length * perWord);
}

/** Next `byteLength` keystream bytes as 32-bit words (little-endian interpretation, Int32 bit patterns). */
function nextKeystreamWords(cipher: Cipher, byteLength: number): Int32Array {
  const output = cipher.update(byteLength === CHUNK_BYTES ? ZEROS : ZEROS.subarray(0, byteLength));
  if (!LITTLE_ENDIAN_HOST) output.swap32();
  // Buffer#slice would be a view: copy into a fresh (aligned) ArrayBuffer if the output is unaligned.
  const block = (output.byteOffset & 3) === 0 ? output : new Uint8Array(output);
  return new Int32Array(block.buffer, block.byteOffset, block.byteLength >>> 2);
}

/**
 * target[offsetWords + i] += sign * stream[i] (mod 2^32 or 2^64) for i in [0, lengthWords), where
 * stream is the AES-128-CTR keystream under `key16` starting at counter 0. Defaults mask the whole
 * array. `key16` is secret. Throws INVALID_ARGUMENT for a key that is not 16 bytes, a sign other
 * than ±1, or a segment outside the array.
 */
export function applyMaskStream(
  target: RingVector,
  key16: Uint8Array,
  sign: 1 | -1,
  offsetWords = 0,
  lengthWords: number = target.length - offsetWords,
): void {
  const is32 = target instanceof Uint32Array;
  if (!is32 && !(target instanceof BigUint64Array))
    invalid('target', 'must be a Uint32Array or BigUint64Array');
  if (!(key16 instanceof Uint8Array) || key16.length !== AES_128_KEY_BYTES)
    invalid('key16', 'must be 16 bytes');
  if (sign !== 1 && sign !== -1) invalid('sign', 'must be 1 or -1');
  if (!Number.isInteger(offsetWords) || offsetWords < 0 || offsetWords > target.length)
    invalid('offsetWords', 'must be an integer inside the vector');
  if (!Number.isInteger(lengthWords) || lengthWords < 0 || offsetWords + lengthWords > target.length)
    invalid('lengthWords', 'segment must lie inside the vector');
  if (lengthWords === 0) return;
  const cipher = createCipheriv('aes-128-ctr', key16, ZERO_IV);
  const perWord = is32 ? 1 : 2;
  // 32-bit limbs viewed as Int32: `(a + b) | 0` stays in V8's int32 fast path and is exact mod 2^32.
  const limbs = limbsOf(target).subarray(offsetWords * perWord, (offsetWords + lengthWords) * perWord);
  let pos = 0;
  let remainingBytes = limbs.length * 4;
  while (remainingBytes > 0) {
    const n = Math.min(remainingBytes, CHUNK_BYTES);
    const k = nextKeystreamWords(cipher, n);
    const segment = limbs.subarray(pos, pos + k.length);
    if (is32) {
      if (sign === 1) addWords32(segment, k);
      else subtractWords32(segment, k);
    } else if (sign === 1) addWords64(segment, k);
    else subtractWords64(segment, k);
    pos += k.length;
    remainingBytes -= n;
  }
  cipher.final();
}

/** t += s mod 2^32, same length. Unrolled by 16: this loop is the benchmarked hot path. */
function addWords32(t: Int32Array, s: Int32Array): void {
  const m = t.length;
  const m16 = m & ~15;
  let j = 0;
  for (; j < m16; j += 16) {
    t[j] = (t[j]! + s[j]!) | 0;
    t[j + 1] = (t[j + 1]! + s[j + 1]!) | 0;
    t[j + 2] = (t[j + 2]! + s[j + 2]!) | 0;
    t[j + 3] = (t[j + 3]! + s[j + 3]!) | 0;
    t[j + 4] = (t[j + 4]! + s[j + 4]!) | 0;
    t[j + 5] = (t[j + 5]! + s[j + 5]!) | 0;
    t[j + 6] = (t[j + 6]! + s[j + 6]!) | 0;
    t[j + 7] = (t[j + 7]! + s[j + 7]!) | 0;
    t[j + 8] = (t[j + 8]! + s[j + 8]!) | 0;
    t[j + 9] = (t[j + 9]! + s[j + 9]!) | 0;
    t[j + 10] = (t[j + 10]! + s[j + 10]!) | 0;
    t[j + 11] = (t[j + 11]! + s[j + 11]!) | 0;
    t[j + 12] = (t[j + 12]! + s[j + 12]!) | 0;
    t[j + 13] = (t[j + 13]! + s[j + 13]!) | 0;
    t[j + 14] = (t[j + 14]! + s[j + 14]!) | 0;
    t[j + 15] = (t[j + 15]! + s[j + 15]!) | 0;
  }
  for (; j < m; j++) t[j] = (t[j]! + s[j]!) | 0;
}

/** t -= s mod 2^32, same length. */
function subtractWords32(t: Int32Array, s: Int32Array): void {
  const m = t.length;
  const m16 = m & ~15;
  let j = 0;
  for (; j < m16; j += 16) {
    t[j] = (t[j]! - s[j]!) | 0;
    t[j + 1] = (t[j + 1]! - s[j + 1]!) | 0;
    t[j + 2] = (t[j + 2]! - s[j + 2]!) | 0;
    t[j + 3] = (t[j + 3]! - s[j + 3]!) | 0;
    t[j + 4] = (t[j + 4]! - s[j + 4]!) | 0;
    t[j + 5] = (t[j + 5]! - s[j + 5]!) | 0;
    t[j + 6] = (t[j + 6]! - s[j + 6]!) | 0;
    t[j + 7] = (t[j + 7]! - s[j + 7]!) | 0;
    t[j + 8] = (t[j + 8]! - s[j + 8]!) | 0;
    t[j + 9] = (t[j + 9]! - s[j + 9]!) | 0;
    t[j + 10] = (t[j + 10]! - s[j + 10]!) | 0;
    t[j + 11] = (t[j + 11]! - s[j + 11]!) | 0;
    t[j + 12] = (t[j + 12]! - s[j + 12]!) | 0;
    t[j + 13] = (t[j + 13]! - s[j + 13]!) | 0;
    t[j + 14] = (t[j + 14]! - s[j + 14]!) | 0;
    t[j + 15] = (t[j + 15]! - s[j + 15]!) | 0;
  }
  for (; j < m; j++) t[j] = (t[j]! - s[j]!) | 0;
}

const SIGN_BIT = -0x80000000;

/** t += s mod 2^64 on 32-bit limbs (t in host limb order, s little-endian limb order), same length.
 *  Unsigned compare of int32 bit patterns: (a ^ SIGN_BIT) < (b ^ SIGN_BIT). */
function addWords64(t: Int32Array, s: Int32Array): void {
  for (let j = 0; j + 1 < t.length; j += 2) {
    const a = t[j + LO]!;
    const lo = (a + s[j]!) | 0;
    t[j + LO] = lo;
    const carry = (lo ^ SIGN_BIT) < (a ^ SIGN_BIT) ? 1 : 0;
    t[j + HI] = (t[j + HI]! + s[j + 1]! + carry) | 0;
  }
}

/** t -= s mod 2^64 on 32-bit limbs, as addWords64. */
function subtractWords64(t: Int32Array, s: Int32Array): void {
  for (let j = 0; j + 1 < t.length; j += 2) {
    const a = t[j + LO]!;
    const b = s[j]!;
    t[j + LO] = (a - b) | 0;
    const borrow = (a ^ SIGN_BIT) < (b ^ SIGN_BIT) ? 1 : 0;
    t[j + HI] = (t[j + HI]! - s[j + 1]! - borrow) | 0;
  }
}

function checkSameShape(target: RingVector, source: RingVector): void {
  const sameType =
    (target instanceof Uint32Array && source instanceof Uint32Array) ||
    (target instanceof BigUint64Array && source instanceof BigUint64Array);
  if (!sameType) invalid('source', 'must have the same ring (array type) as target');
  if (target.length !== source.length) invalid('source', 'must have the same length as target');
}

/** Limbs of a uint64 source in little-endian limb order (what addWords64 expects of its source). */
function sourceLimbsLE(source: BigUint64Array): Int32Array {
  const limbs = limbsOf(source);
  if (LITTLE_ENDIAN_HOST) return limbs;
  const copy = new Int32Array(limbs.length);
  for (let i = 0; i + 1 < limbs.length; i += 2) {
    copy[i] = limbs[i + 1]!;
    copy[i + 1] = limbs[i]!;
  }
  return copy;
}

/** target += source (mod ring), elementwise. Same array type and length, or INVALID_ARGUMENT. */
export function addRingVectors(target: RingVector, source: RingVector): void {
  checkSameShape(target, source);
  if (target instanceof Uint32Array) addWords32(limbsOf(target), limbsOf(source));
  else addWords64(limbsOf(target), sourceLimbsLE(source as BigUint64Array));
}

/** target -= source (mod ring), elementwise. Same array type and length, or INVALID_ARGUMENT. */
export function subtractRingVectors(target: RingVector, source: RingVector): void {
  checkSameShape(target, source);
  if (target instanceof Uint32Array) subtractWords32(limbsOf(target), limbsOf(source));
  else subtractWords64(limbsOf(target), sourceLimbsLE(source as BigUint64Array));
}

/** One mask stream: its AES-128 key (secret) and whether it is added or subtracted. */
export interface MaskStream {
  readonly key16: Uint8Array;
  readonly sign: 1 | -1;
}

/**
 * Applies many mask streams to one segment at once: target[offset + i] += Σ sign_k · stream_k[i].
 * Same result as calling `applyMaskStream` for each, but chunk-major (every stream's next 64 KiB,
 * then one pass over that part of the target), with streams of the same sign folded four at a time,
 * so the target is read and written once per four streams instead of once per stream. This is the
 * participant's and the coordinator's hot path (benchmarked against raw AES-128-CTR).
 */
export function applyMaskStreams(
  target: RingVector,
  streams: readonly MaskStream[],
  offsetWords = 0,
  lengthWords: number = target.length - offsetWords,
): void {
  if (!(target instanceof Uint32Array)) {
    // The 64-bit ring has carries between limbs: keep the one-stream-at-a-time path.
    for (const s of streams) applyMaskStream(target, s.key16, s.sign, offsetWords, lengthWords);
    return;
  }
  for (const [i, s] of streams.entries()) {
    if (!(s.key16 instanceof Uint8Array) || s.key16.length !== AES_128_KEY_BYTES)
      invalid(`streams.${i}.key16`, 'must be 16 bytes');
    if (s.sign !== 1 && s.sign !== -1) invalid(`streams.${i}.sign`, 'must be 1 or -1');
  }
  if (!Number.isInteger(offsetWords) || offsetWords < 0 || offsetWords > target.length)
    invalid('offsetWords', 'must be an integer inside the vector');
  if (!Number.isInteger(lengthWords) || lengthWords < 0 || offsetWords + lengthWords > target.length)
    invalid('lengthWords', 'segment must lie inside the vector');
  if (lengthWords === 0 || streams.length === 0) return;
  const limbs = limbsOf(target).subarray(offsetWords, offsetWords + lengthWords);
  const plus = streams
    .filter((s) => s.sign === 1)
    .map((s) => createCipheriv('aes-128-ctr', s.key16, ZERO_IV));
  const minus = streams
    .filter((s) => s.sign === -1)
    .map((s) => createCipheriv('aes-128-ctr', s.key16, ZERO_IV));
  const chunkWords = CHUNK_BYTES / 4;
  for (let pos = 0; pos < limbs.length; pos += chunkWords) {
    const t = limbs.subarray(pos, Math.min(limbs.length, pos + chunkWords));
    const bytes = t.length * 4;
    applyGroup(t, plus, bytes, 1);
    applyGroup(t, minus, bytes, -1);
  }
  for (const c of [...plus, ...minus]) c.final();
}

function applyGroup(t: Int32Array, ciphers: readonly Cipher[], bytes: number, sign: 1 | -1): void {
  let k = 0;
  for (; k + 4 <= ciphers.length; k += 4) {
    const a = nextKeystreamWords(ciphers[k]!, bytes);
    const b = nextKeystreamWords(ciphers[k + 1]!, bytes);
    const c = nextKeystreamWords(ciphers[k + 2]!, bytes);
    const d = nextKeystreamWords(ciphers[k + 3]!, bytes);
    if (sign === 1) addFour32(t, a, b, c, d);
    else subtractFour32(t, a, b, c, d);
  }
  for (; k < ciphers.length; k++) {
    const s = nextKeystreamWords(ciphers[k]!, bytes);
    if (sign === 1) addWords32(t, s);
    else subtractWords32(t, s);
  }
}

/** t += a + b + c + d (mod 2^32); all at least t.length long. Intermediate sums stay below 2^53. */
function addFour32(t: Int32Array, a: Int32Array, b: Int32Array, c: Int32Array, d: Int32Array): void {
  const m = t.length;
  const m4 = m & ~3;
  let j = 0;
  for (; j < m4; j += 4) {
    t[j] = (t[j]! + a[j]! + b[j]! + c[j]! + d[j]!) | 0;
    t[j + 1] = (t[j + 1]! + a[j + 1]! + b[j + 1]! + c[j + 1]! + d[j + 1]!) | 0;
    t[j + 2] = (t[j + 2]! + a[j + 2]! + b[j + 2]! + c[j + 2]! + d[j + 2]!) | 0;
    t[j + 3] = (t[j + 3]! + a[j + 3]! + b[j + 3]! + c[j + 3]! + d[j + 3]!) | 0;
  }
  for (; j < m; j++) t[j] = (t[j]! + a[j]! + b[j]! + c[j]! + d[j]!) | 0;
}

/** t -= a + b + c + d (mod 2^32). */
function subtractFour32(t: Int32Array, a: Int32Array, b: Int32Array, c: Int32Array, d: Int32Array): void {
  const m = t.length;
  const m4 = m & ~3;
  let j = 0;
  for (; j < m4; j += 4) {
    t[j] = (t[j]! - a[j]! - b[j]! - c[j]! - d[j]!) | 0;
    t[j + 1] = (t[j + 1]! - a[j + 1]! - b[j + 1]! - c[j + 1]! - d[j + 1]!) | 0;
    t[j + 2] = (t[j + 2]! - a[j + 2]! - b[j + 2]! - c[j + 2]! - d[j + 2]!) | 0;
    t[j + 3] = (t[j + 3]! - a[j + 3]! - b[j + 3]! - c[j + 3]! - d[j + 3]!) | 0;
  }
  for (; j < m; j++) t[j] = (t[j]! - a[j]! - b[j]! - c[j]! - d[j]!) | 0;
}
