/**
 * Fixed-point encoding of model updates into the secure-aggregation ring Z_2^ringBits (Bonawitz et
 * al., CCS 2017, §3: inputs are vectors over Z_R), two's complement for negative values. Each value
 * is clipped to [-clipRange, clipRange], multiplied by `scale` and rounded stochastically (floor of
 * value·scale + u, u uniform from a CSPRNG), which makes the encoding unbiased; the sum of
 * participants' encodings divided by `scale` then estimates the sum of the clipped inputs within
 * participants/scale per coordinate. The ring is sized from the number of participants so the sum
 * cannot wrap (DESIGN.md §4), and so that every sum is an exact float64 integer when read back.
 */
import { EntenteError } from '../core/errors.ts';
import type { UniformSource } from './csprng.ts';
import type { RingVector } from './mask-stream.ts';

/** clipRange > 0 and scale > 0 (a power of two keeps value·scale exact). */
export interface QuantizationParams {
  readonly ringBits: 32 | 64;
  readonly clipRange: number;
  readonly scale: number;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const LO = LITTLE_ENDIAN_HOST ? 0 : 1;
const HI = 1 - LO;
const TWO_32 = 4294967296;
const UNIFORM_BATCH = 16384;
/** Largest magnitude a sum may reach: below the ring's sign bit and exact in float64. */
const LIMIT_BY_RING = { 32: 2n ** 31n, 64: 2n ** 53n } as const;

function invalid(field: string, message: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

function checkParams(params: QuantizationParams, field = 'params'): void {
  if (params.ringBits !== 32 && params.ringBits !== 64) invalid(`${field}.ringBits`, 'must be 32 or 64');
  if (!(Number.isFinite(params.clipRange) && params.clipRange > 0))
    invalid(`${field}.clipRange`, 'must be a positive finite number');
  if (!(Number.isFinite(params.scale) && params.scale > 0))
    invalid(`${field}.scale`, 'must be a positive finite number');
}

function checkRing(vector: RingVector, ringBits: 32 | 64, field: string): void {
  const ok = ringBits === 32 ? vector instanceof Uint32Array : vector instanceof BigUint64Array;
  if (!ok)
    invalid(
      field,
      `must be a ${ringBits === 32 ? 'Uint32Array' : 'BigUint64Array'} for ringBits ${ringBits}`,
    );
}

function ringBitsOf(vector: RingVector): 32 | 64 {
  if (vector instanceof Uint32Array) return 32;
  if (vector instanceof BigUint64Array) return 64;
  return invalid('sum', 'must be a Uint32Array or BigUint64Array');
}

/** Upper bound on |q| for one quantized value: ceil(clipRange·scale) + 1, or Infinity when not exact. */
function maxQuantizedMagnitude(params: QuantizationParams): number {
  const bound = Math.ceil(params.clipRange * params.scale) + 1;
  return Number.isSafeInteger(bound) ? bound : Number.POSITIVE_INFINITY;
}

/** True when `count` values of magnitude <= `magnitude` sum to below the ring's limit. */
function fitsRing(count: number, magnitude: number, ringBits: 32 | 64): boolean {
  if (!Number.isFinite(magnitude)) return false;
  return BigInt(count) * BigInt(Math.ceil(magnitude)) < LIMIT_BY_RING[ringBits];
}

/**
 * Writes q = floor(clip(v, -c, c)·scale + u) mod 2^ringBits for each value into out[offset + i],
 * with u uniform in [0, 1) at 2^-32 resolution from `uniform` (so the rounding bias is below
 * 2^-32/scale). Returns how many values had |v| > clipRange. Throws INVALID_TENSOR (field
 * 'values[i]') for NaN or ±Infinity before writing anything; INVALID_ARGUMENT when `out` does not
 * match ringBits, the segment does not fit, or one quantized value could not be represented.
 */
export function quantizeInto(
  values: Float32Array,
  out: RingVector,
  offset: number,
  params: QuantizationParams,
  uniform: UniformSource,
): { clipped: number } {
  checkParams(params);
  checkRing(out, params.ringBits, 'out');
  if (!(values instanceof Float32Array)) invalid('values', 'must be a Float32Array');
  if (!Number.isInteger(offset) || offset < 0 || offset + values.length > out.length)
    invalid('offset', 'values must fit in out from offset');
  if (!fitsRing(1, maxQuantizedMagnitude(params), params.ringBits))
    invalid('params.scale', 'clipRange·scale does not fit the ring');
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]!)) {
      const field = `values[${i}]`;
      throw new EntenteError('INVALID_TENSOR', `${field}: must be finite`, { field });
    }
  }
  const { clipRange, scale } = params;
  const limbs32 = out instanceof Uint32Array ? out : null;
  const limbs64 =
    out instanceof BigUint64Array ? new Int32Array(out.buffer, out.byteOffset, out.length * 2) : null;
  const u = new Uint32Array(Math.min(UNIFORM_BATCH, values.length));
  let clipped = 0;
  for (let start = 0; start < values.length; start += u.length) {
    const n = Math.min(u.length, values.length - start);
    uniform.fillUint32(n === u.length ? u : u.subarray(0, n));
    for (let j = 0; j < n; j++) {
      let v = values[start + j]!;
      if (v > clipRange) {
        v = clipRange;
        clipped++;
      } else if (v < -clipRange) {
        v = -clipRange;
        clipped++;
      }
      const t = v * scale;
      const floor = Math.floor(t);
      // floor(t + u) with u = w / 2^32: round up iff u >= 1 - frac(t), i.e. with probability frac(t).
      const q = floor + (u[j]! >= (1 - (t - floor)) * TWO_32 ? 1 : 0);
      const at = offset + start + j;
      if (limbs32 !== null) {
        limbs32[at] = q; // ToUint32: two's complement modulo 2^32
      } else {
        const hi = Math.floor(q / TWO_32);
        limbs64![2 * at + LO] = q - hi * TWO_32;
        limbs64![2 * at + HI] = hi;
      }
    }
  }
  return { clipped };
}

/** Signed value of word `index` of a ring vector (two's complement). Throws INVALID_ARGUMENT for an
 *  index outside the vector, or (ring 2^64) a value beyond ±2^53 that a number cannot hold exactly. */
export function readSignedWord(sum: RingVector, index: number): number {
  const ringBits = ringBitsOf(sum);
  if (!Number.isInteger(index) || index < 0 || index >= sum.length)
    invalid('index', 'must be inside the vector');
  if (ringBits === 32) return (sum as Uint32Array)[index]! | 0;
  const limbs = new Int32Array(sum.buffer, sum.byteOffset + index * 8, 2);
  const value = limbs[HI]! * TWO_32 + (limbs[LO]! >>> 0);
  if (Math.abs(value) > Number.MAX_SAFE_INTEGER)
    invalid('sum', `word ${index} exceeds the exact integer range`);
  return value;
}

/** Writes the non-negative integer `value` into out[index] exactly. Throws INVALID_ARGUMENT unless
 *  value < 2^31 (ring 2^32) or value <= 2^53 - 1 (ring 2^64), so readSignedWord gives it back. */
export function writeIntegerWord(out: RingVector, index: number, value: number): void {
  const ringBits = ringBitsOf(out);
  if (!Number.isInteger(index) || index < 0 || index >= out.length)
    invalid('index', 'must be inside the vector');
  if (!Number.isSafeInteger(value) || value < 0 || BigInt(value) >= LIMIT_BY_RING[ringBits])
    invalid('value', `must be a non-negative integer below the ring's exact range`);
  if (ringBits === 32) {
    (out as Uint32Array)[index] = value;
  } else {
    const limbs = new Int32Array(out.buffer, out.byteOffset + index * 8, 2);
    const hi = Math.floor(value / TWO_32);
    limbs[LO] = value - hi * TWO_32;
    limbs[HI] = hi;
  }
}

/**
 * Reads words [offset, offset + length) as signed two's-complement integers divided by scale.
 * Exact integers up to the capacity checkRingCapacity allows; defaults read the whole vector.
 */
export function dequantizeSum(
  sum: RingVector,
  params: QuantizationParams,
  offset = 0,
  length: number = sum.length - offset,
): Float64Array {
  checkParams(params);
  checkRing(sum, params.ringBits, 'sum');
  if (!Number.isInteger(offset) || offset < 0 || offset > sum.length)
    invalid('offset', 'must be inside the vector');
  if (!Number.isInteger(length) || length < 0 || offset + length > sum.length)
    invalid('length', 'segment must lie inside the vector');
  const out = new Float64Array(length);
  const { scale } = params;
  if (sum instanceof Uint32Array) {
    const words = new Int32Array(sum.buffer, sum.byteOffset + offset * 4, length);
    for (let i = 0; i < length; i++) out[i] = words[i]! / scale;
  } else {
    const limbs = new Int32Array(sum.buffer, sum.byteOffset + offset * 8, length * 2);
    for (let i = 0; i < length; i++)
      out[i] = (limbs[2 * i + HI]! * TWO_32 + (limbs[2 * i + LO]! >>> 0)) / scale;
  }
  return out;
}

/**
 * Refuses a configuration whose sum could wrap or lose exactness: requires
 * maxParticipants·(ceil(clipRange·scale)+1) < 2^(ringBits-1) and maxParticipants·maxWeight <
 * 2^(ringBits-1), where for ringBits 64 the limit is 2^53 (sums must be exact float64 integers).
 * Throws INVALID_CONFIG with field 'secureAggregation.scale' or 'secureAggregation.maxWeight'
 * (or the name of an invalid parameter).
 */
export function checkRingCapacity(input: {
  maxParticipants: number;
  maxWeight: number;
  params: QuantizationParams;
}): void {
  const { maxParticipants, maxWeight, params } = input;
  const config = (field: string, message: string): never => {
    const name = `secureAggregation.${field}`;
    throw new EntenteError('INVALID_CONFIG', `${name}: ${message}`, { field: name });
  };
  if (!Number.isSafeInteger(maxParticipants) || maxParticipants < 1)
    config('maxParticipants', 'must be a positive integer');
  if (!(Number.isFinite(maxWeight) && maxWeight >= 0))
    config('maxWeight', 'must be a non-negative finite number');
  if (params.ringBits !== 32 && params.ringBits !== 64) config('ringBits', 'must be 32 or 64');
  if (!(Number.isFinite(params.clipRange) && params.clipRange > 0))
    config('clipRange', 'must be a positive finite number');
  if (!(Number.isFinite(params.scale) && params.scale > 0))
    config('scale', 'must be a positive finite number');
  if (!fitsRing(maxParticipants, maxQuantizedMagnitude(params), params.ringBits))
    config(
      'scale',
      `too large: the sum of ${maxParticipants} inputs could wrap the ${params.ringBits}-bit ring`,
    );
  if (!fitsRing(maxParticipants, maxWeight, params.ringBits))
    config(
      'maxWeight',
      `too large: the sum of ${maxParticipants} weights could wrap the ${params.ringBits}-bit ring`,
    );
}

/** The largest power-of-two scale that passes checkRingCapacity. Throws INVALID_CONFIG (as
 *  checkRingCapacity) when not even scale 1 does. */
export function chooseQuantizationScale(input: {
  maxParticipants: number;
  maxWeight: number;
  ringBits: 32 | 64;
  clipRange: number;
}): number {
  const { maxParticipants, maxWeight, ringBits, clipRange } = input;
  const at = (scale: number) => ({ maxParticipants, maxWeight, params: { ringBits, clipRange, scale } });
  checkRingCapacity(at(1));
  let exponent = 0;
  for (;;) {
    const next = 2 ** (exponent + 1);
    try {
      checkRingCapacity(at(next));
    } catch {
      return 2 ** exponent;
    }
    exponent++;
  }
}

/** Per-coordinate bound on |dequantized sum − sum of clipped inputs| for `participants` inputs under
 *  a configuration that passes checkRingCapacity: each stochastic rounding errs by less than 1/scale.
 *  Exact for power-of-two scales (chooseQuantizationScale's); another scale adds the float64 rounding
 *  of value·scale (relative 2^-53). Throws INVALID_ARGUMENT for a non-positive participant count. */
export function computeDequantizationErrorBound(participants: number, params: QuantizationParams): number {
  if (!Number.isSafeInteger(participants) || participants < 1)
    invalid('participants', 'must be a positive integer');
  checkParams(params);
  return participants / params.scale;
}
