/**
 * Fast Fourier transform for the PLD accountant: an iterative radix-2 Cooley–Tukey transform on split
 * real/imaginary Float64Arrays (Cooley & Tukey 1965), linear convolution of probability vectors with
 * zero padding so nothing wraps around, and the n-fold circular self-convolution by one transform, a
 * pointwise n-th power and one inverse transform (what `scipy.fft` does inside Google dp_accounting
 * `pld/common.py` `self_convolve`). Twiddle factors are computed directly as cos/sin(2πk/N) (never by
 * recurrence), so the rounding error grows like log N. Results of the inverse transform that are
 * negative by rounding are clamped to 0: the inputs are probabilities.
 */
import { EntenteError } from '../core/errors.ts';

interface Twiddles {
  readonly cos: Float64Array;
  readonly sin: Float64Array;
}

const twiddleCache = new Map<number, Twiddles>();

function getTwiddles(size: number): Twiddles {
  const cached = twiddleCache.get(size);
  if (cached !== undefined) return cached;
  const half = size >>> 1;
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  for (let k = 0; k < half; k++) {
    const angle = (2 * Math.PI * k) / size;
    cos[k] = Math.cos(angle);
    sin[k] = Math.sin(angle);
  }
  const twiddles = { cos, sin };
  if (size >= 64) twiddleCache.set(size, twiddles);
  return twiddles;
}

/** True when n is a power of two (1, 2, 4, …). */
export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** The smallest power of two ≥ n (n ≥ 1). */
export function computeNextPowerOfTwo(n: number): number {
  if (!(Number.isSafeInteger(n) && n >= 1)) {
    throw new EntenteError('INVALID_ARGUMENT', 'n: a positive safe integer is required', { field: 'n' });
  }
  let size = 1;
  while (size < n) size *= 2;
  return size;
}

/**
 * In-place discrete Fourier transform X_k = Σ_j x_j e^{∓2πijk/N} (minus sign forward); the inverse
 * includes the 1/N factor. Both arrays must have the same power-of-two length (INVALID_ARGUMENT).
 */
export function applyFft(re: Float64Array, im: Float64Array, inverse = false): void {
  const n = re.length;
  if (im.length !== n || !isPowerOfTwo(n)) {
    throw new EntenteError('INVALID_ARGUMENT', 're: lengths must match and be a power of two', {
      field: 're',
    });
  }
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >>> 1;
    for (; j & bit; bit >>>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      const tr = re[i]!;
      re[i] = re[j]!;
      re[j] = tr;
      const ti = im[i]!;
      im[i] = im[j]!;
      im[j] = ti;
    }
  }
  const { cos, sin } = getTwiddles(n);
  const sign = inverse ? 1 : -1;
  for (let size = 2; size <= n; size *= 2) {
    const half = size >>> 1;
    const stride = n / size;
    for (let start = 0; start < n; start += size) {
      for (let j = 0, t = 0; j < half; j++, t += stride) {
        const wr = cos[t]!;
        const wi = sign * sin[t]!;
        const i0 = start + j;
        const k = i0 + half;
        const xr = re[k]!;
        const xi = im[k]!;
        const tr = xr * wr - xi * wi;
        const ti = xr * wi + xi * wr;
        const ur = re[i0]!;
        const ui = im[i0]!;
        re[i0] = ur + tr;
        im[i0] = ui + ti;
        re[k] = ur - tr;
        im[k] = ui - ti;
      }
    }
  }
  if (inverse) {
    const scale = 1 / n;
    for (let i = 0; i < n; i++) {
      re[i] = re[i]! * scale;
      im[i] = im[i]! * scale;
    }
  }
}

/** Linear convolution (a ∗ b)_k = Σ_i a_i b_{k-i}, length |a|+|b|-1, by zero-padded FFT; negatives → 0. */
export function computeConvolution(a: Float64Array, b: Float64Array): Float64Array {
  if (a.length === 0 || b.length === 0) {
    throw new EntenteError('INVALID_ARGUMENT', 'a: both inputs must be non-empty', { field: 'a' });
  }
  const outLength = a.length + b.length - 1;
  const size = computeNextPowerOfTwo(outLength);
  const aRe = new Float64Array(size);
  const aIm = new Float64Array(size);
  const bRe = new Float64Array(size);
  const bIm = new Float64Array(size);
  aRe.set(a);
  bRe.set(b);
  applyFft(aRe, aIm);
  applyFft(bRe, bIm);
  for (let i = 0; i < size; i++) {
    const r = aRe[i]! * bRe[i]! - aIm[i]! * bIm[i]!;
    aIm[i] = aRe[i]! * bIm[i]! + aIm[i]! * bRe[i]!;
    aRe[i] = r;
  }
  applyFft(aRe, aIm, true);
  const out = new Float64Array(outLength);
  for (let i = 0; i < outLength; i++) out[i] = Math.max(0, aRe[i]!);
  return out;
}

/**
 * The `times`-fold circular self-convolution of x on a ring of `size` points (size a power of two ≥
 * |x|): one FFT, z ↦ zⁿ per frequency (in polar form), one inverse FFT; negatives → 0. Entry i is
 * Σ over index sums ≡ i (mod size); the caller picks size so the mass that wraps around is negligible.
 */
export function computeCircularSelfConvolution(x: Float64Array, times: number, size: number): Float64Array {
  if (!isPowerOfTwo(size) || size < x.length) {
    throw new EntenteError('INVALID_ARGUMENT', 'size: a power of two ≥ the input length is required', {
      field: 'size',
    });
  }
  if (!(Number.isSafeInteger(times) && times >= 1)) {
    throw new EntenteError('INVALID_ARGUMENT', 'times: a positive integer is required', { field: 'times' });
  }
  const re = new Float64Array(size);
  const im = new Float64Array(size);
  re.set(x);
  if (times === 1) return re;
  applyFft(re, im);
  for (let i = 0; i < size; i++) {
    const a = re[i]!;
    const b = im[i]!;
    const magnitude = Math.sqrt(a * a + b * b) ** times;
    if (magnitude === 0) {
      re[i] = 0;
      im[i] = 0;
      continue;
    }
    const angle = times * Math.atan2(b, a);
    re[i] = magnitude * Math.cos(angle);
    im[i] = magnitude * Math.sin(angle);
  }
  applyFft(re, im, true);
  for (let i = 0; i < size; i++) re[i] = Math.max(0, re[i]!);
  return re;
}
