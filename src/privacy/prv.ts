/**
 * PRV accountant for the Poisson-subsampled Gaussian: numerical composition of privacy loss random
 * variables (Gopi, Lee, Wutschitz, "Numerical Composition of Differential Privacy", NeurIPS 2021,
 * arXiv:2106.02848). Reproduces Opacus `PRVAccountant.get_epsilon` (opacus/accountants/prv.py and
 * opacus/accountants/analysis/prv/{prvs.py, domain.py, compose.py}); our own code, same method:
 *  - PRV: Y = log(P(x)/Q(x)), x ~ P, P = (1−q)·N(0,σ²) + q·N(1,σ²), Q = N(0,σ²). For t > log(1−q),
 *    z = log((e^t − 1 + q)/q) and F(t) = q·Φ((σ²z − ½)/σ) + (1−q)·Φ((σ²z + ½)/σ) (paper Prop. B4). We
 *    keep F and 1 − F each with full relative accuracy (Opacus forms 1 − erfc terms).
 *  - Domain (Remark 5.6): L = max(RDP ε of T steps at δ_err/4, RDP ε of one step at δ_err/(8T), ε_err)
 *    + 3 with Opacus's RDP accountant (its orders, signed fractional series, Balle et al. 2020
 *    conversion); mesh = ε_err/√(T·log(12/δ_err)/2); grid −K·mesh … (K+1)·mesh, N = 2K + 2, K = ⌈L/mesh⌉.
 *  - Discretisation: the PRV truncated to [t_min, t_max], renormalised; bin i holds the mass of
 *    [t_i − dt/2, t_i + dt/2); the grid is shifted by (continuous − discrete mean). The continuous mean
 *    ∫₀^{t_max} S − ∫_{t_min}^0 F comes from adaptive Gauss–Kronrod (Opacus: scipy `quad`, same
 *    breakpoints ±10^{−5..−1}).
 *  - Composition: FFT, T-th power, inverse FFT. Opacus uses a ring of N points and rolls; we use a
 *    power-of-two ring M ≥ N and read the same window (only tail mass beyond ±L wraps differently).
 *    The powers that matter are formed from accurately summed coefficients (see computeAccuratePower):
 *    a T-th power multiplies rounding error by T, which moves ε by ~1e-6 at T = 5·10^4 otherwise.
 *  - ε: d1_i = Σ_{j≥i} p_j, d2_i = Σ_{j≥i} p_j e^{−t_j}, δ(t_i) = d1_i − e^{t_i}·d2_i; i is the first
 *    grid point with δ(t_i) ≤ δ*, ε(δ*) = log((d1_i − δ*)/d2_i). lower = ε(δ + δ_err) − ε_err,
 *    estimate = ε(δ), upper = ε(δ − δ_err) + ε_err (what Opacus returns). Opacus refuses grids with
 *    eps(long double)·N > δ − δ_err; we compute in float64 and use Number.EPSILON (stricter).
 */
import { EntenteError } from '../core/errors.ts';
import { applyFft, computeNextPowerOfTwo } from './fft.ts';
import { computeNormalCdf } from './normal.ts';
import { convertRdpToEpsilon } from './rdp-conversion.ts';
import { computeRdp, OPACUS_RDP_ORDERS } from './rdp.ts';

/** Largest grid this module builds (points); beyond it raise epsError or lower steps. */
export const MAX_PRV_GRID_POINTS = 2 ** 23;

/** A grid t_i = tMin + i·(tMax − tMin)/(size − 1), i = 0..size−1 (size even). */
export interface PrvDomain {
  readonly tMin: number;
  readonly tMax: number;
  readonly size: number;
}

/** A discrete PRV: pmf[i] is the mass at grid point i of `domain`. */
export interface DiscretePrv {
  readonly pmf: Float64Array;
  readonly domain: PrvDomain;
  /** Mean shift applied to one step's grid (composition multiplies it by the number of steps). */
  readonly shift: number;
}

export interface PrvEpsilon {
  readonly epsilonLower: number;
  readonly epsilonEstimate: number;
  readonly epsilonUpper: number;
}

function fail(field: string, message: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

/** Grid point i (numpy `linspace` arithmetic: i·step + start, last point exactly tMax). */
function computeGridPoint(d: PrvDomain, i: number): number {
  return i === d.size - 1 ? d.tMax : i * ((d.tMax - d.tMin) / (d.size - 1)) + d.tMin;
}

/**
 * [F(t), 1 − F(t)] of the one-step PRV of the Poisson-subsampled Gaussian (paper Prop. B4), each with
 * full relative accuracy in its small tail. Requires 0 < q ≤ 1, σ > 0.
 */
export function computeSubsampledGaussianPrvCdf(t: number, samplingRate: number, noiseMultiplier: number) {
  const q = samplingRate;
  const sigma = noiseMultiplier;
  if (t === Number.POSITIVE_INFINITY) return [1, 0] as const;
  const base = Math.expm1(t) + q; // e^t − (1 − q)
  if (!(base > 0)) return [0, 1] as const;
  const z = q === 1 ? t : Math.log(base) - Math.log(q);
  const a = (sigma * sigma * z - 0.5) / sigma;
  const b = (sigma * sigma * z + 0.5) / sigma;
  const lowA = computeNormalCdf(-Math.abs(a)); // Φ(−|a|)
  const lowB = computeNormalCdf(-Math.abs(b));
  const cdf = q * (a < 0 ? lowA : 1 - lowA) + (1 - q) * (b < 0 ? lowB : 1 - lowB);
  const survival = q * (a < 0 ? 1 - lowA : lowA) + (1 - q) * (b < 0 ? 1 - lowB : lowB);
  return [cdf, survival] as const;
}

/**
 * Opacus `compute_safe_domain_size` (paper Remark 5.6): max(RDP ε of all `steps` at δ_err/4, RDP ε of
 * one step at δ_err/(8·steps), epsError) + 3, with Opacus's orders and signed fractional series.
 */
export function computePrvSafeDomainSize(input: {
  samplingRate: number;
  noiseMultiplier: number;
  steps: number;
  epsError: number;
  deltaError: number;
}): number {
  const { samplingRate, noiseMultiplier, steps, epsError, deltaError } = input;
  const rdpEpsilon = (count: number, delta: number) =>
    convertRdpToEpsilon({
      orders: OPACUS_RDP_ORDERS,
      rdp: computeRdp({
        samplingRate,
        noiseMultiplier,
        steps: count,
        orders: OPACUS_RDP_ORDERS,
        fractionalSeries: 'signed',
      }),
      delta,
    }).epsilon;
  const all = rdpEpsilon(steps, deltaError / 4);
  const one = rdpEpsilon(1, deltaError / (8 * steps));
  return Math.max(all, one, epsError) + 3;
}

/** Opacus `Domain.create_aligned(−L, L, mesh)`: grid points on multiples of mesh, size made even. */
export function createAlignedPrvDomain(halfWidth: number, mesh: number): PrvDomain {
  if (!(halfWidth > 0 && Number.isFinite(halfWidth))) fail('halfWidth', 'must be a finite number > 0');
  if (!(mesh > 0 && Number.isFinite(mesh))) fail('mesh', 'must be a finite number > 0');
  const tMin = Math.floor(-halfWidth / mesh) * mesh;
  let tMax = Math.ceil(halfWidth / mesh) * mesh;
  let size = Math.round((tMax - tMin) / mesh) + 1;
  if (size % 2 === 1) {
    size += 1;
    tMax += mesh;
  }
  if (size > MAX_PRV_GRID_POINTS) {
    fail('epsError', `the PRV grid needs ${size} points (> 2^23); raise epsError or lower steps`);
  }
  return { tMin, tMax, size };
}

// Gauss–Kronrod 15-point nodes (non-negative half) and weights; 7-point Gauss weights on odd nodes.
const XK = [
  0.9914553711208126, 0.9491079123427585, 0.8648644233597691, 0.7415311855993945, 0.5860872354676911,
  0.4058451513773972, 0.20778495500789848, 0,
];
const WK = [
  0.022935322010529224, 0.06309209262997856, 0.10479001032225019, 0.14065325971552592, 0.1690047266392679,
  0.19035057806478542, 0.20443294007529889, 0.20948214108472782,
];
const WG = [0.1294849661688697, 0.27970539148927664, 0.3818300505051189, 0.4179591836734694];

function applyKronrod(f: (t: number) => number, a: number, b: number): [value: number, error: number] {
  const c = (a + b) / 2;
  const h = (b - a) / 2;
  const fc = f(c);
  let kronrod = WK[7]! * fc;
  let gauss = WG[3]! * fc;
  for (let k = 0; k < 7; k++) {
    const pair = f(c - h * XK[k]!) + f(c + h * XK[k]!);
    kronrod += WK[k]! * pair;
    if (k % 2 === 1) gauss += WG[(k - 1) / 2]! * pair;
  }
  return [kronrod * h, Math.abs((kronrod - gauss) * h)];
}

/** ∫_a^b f by globally adaptive G7/K15 bisection until the summed |K − G| ≤ tolerance (≤ 2001 pieces). */
function integrateAdaptive(f: (t: number) => number, a: number, b: number, tolerance: number): number {
  if (!(b > a)) return 0;
  const pieces: [number, number, number, number][] = [[a, b, ...applyKronrod(f, a, b)]];
  for (let round = 0; round < 2000; round++) {
    let total = 0;
    let worst = 0;
    for (let i = 0; i < pieces.length; i++) {
      total += pieces[i]![3];
      if (pieces[i]![3] > pieces[worst]![3]) worst = i;
    }
    if (total <= tolerance) break;
    const [lo, hi] = pieces[worst]!;
    const mid = (lo + hi) / 2;
    pieces[worst] = [lo, mid, ...applyKronrod(f, lo, mid)];
    pieces.push([mid, hi, ...applyKronrod(f, mid, hi)]);
  }
  return pieces.reduce((sum, p) => sum + p[2], 0);
}

/**
 * Opacus `discretize(TruncatedPrivacyRandomVariable(prv, tMin, tMax), domain)`: bin masses of the
 * truncated, renormalised PRV, the grid shifted so the discrete mean equals the continuous one.
 * Throws INTERNAL when the shift reaches half a grid step (Opacus raises there too).
 */
export function createDiscretePrv(
  samplingRate: number,
  noiseMultiplier: number,
  domain: PrvDomain,
): DiscretePrv {
  const { tMin, tMax, size } = domain;
  const dist = (t: number) => computeSubsampledGaussianPrvCdf(t, samplingRate, noiseMultiplier);
  const cdfMin = dist(tMin)[0];
  const survivalMax = dist(tMax)[1];
  const mass = 1 - survivalMax - cdfMin;
  // Truncated, renormalised [F, 1 − F]; F_tr = 0 below tMin and 1 from tMax on (Opacus's truncation).
  const truncated = (t: number): readonly [number, number] => {
    if (t < tMin) return [0, 1];
    if (t >= tMax) return [1, 0];
    const [cdf, survival] = dist(t);
    return [(cdf - cdfMin) / mass, (survival - survivalMax) / mass];
  };
  const dt = (tMax - tMin) / (size - 1);
  const pmf = new Float64Array(size);
  let prev: readonly [number, number] = [0, 1];
  let meanDiscrete = 0;
  let compensation = 0; // Neumaier summation of Σ t_i·p_i
  for (let i = 0; i < size; i++) {
    const t = computeGridPoint(domain, i);
    const next = truncated(t + dt / 2);
    // Bin mass from whichever of F, 1 − F is the small one here: full relative accuracy in both tails.
    const p = t <= 0 ? next[0] - prev[0] : prev[1] - next[1];
    pmf[i] = p;
    prev = next;
    const term = t * p;
    const sum = meanDiscrete + term;
    compensation +=
      Math.abs(meanDiscrete) >= Math.abs(term) ? meanDiscrete - sum + term : term - sum + meanDiscrete;
    meanDiscrete = sum;
  }
  meanDiscrete += compensation;
  // Continuous mean of the truncated PRV: ∫₀^{tMax} S_tr − ∫_{tMin}^0 F_tr, split where F turns on and
  // at ±10^{−5..−1} (Opacus's breakpoints), where the loss changes fastest for small q.
  const start = Math.max(tMin, Math.log1p(-samplingRate));
  const steps = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1];
  const lower = [start, ...steps.map((s) => -s).reverse(), 0].filter((x) => x >= start);
  const upper = [0, ...steps, tMax];
  let meanContinuous = 0;
  for (let k = 0; k + 1 < upper.length; k++) {
    meanContinuous += integrateAdaptive((t) => truncated(t)[1], upper[k]!, upper[k + 1]!, 1e-13);
  }
  for (let k = 0; k + 1 < lower.length; k++) {
    meanContinuous -= integrateAdaptive((t) => truncated(t)[0], lower[k]!, lower[k + 1]!, 1e-13);
  }
  const shift = meanContinuous - meanDiscrete;
  if (!(Math.abs(shift) < dt / 2)) {
    throw new EntenteError('INTERNAL', 'prv: discrete mean differs from the continuous mean by ≥ dt/2');
  }
  return { pmf, domain: { tMin: tMin + shift, tMax: tMax + shift, size }, shift };
}

/** cos(2πm/M) for m ∈ [0, M) from angles ≤ π/2 by symmetry (sin(2πm/M) = cos(2π(m − M/4)/M)). */
function createCosTable(ring: number): Float64Array {
  const cos = new Float64Array(ring);
  const quarter = ring / 4;
  for (let m = 0; m <= quarter; m++) cos[m] = Math.cos((2 * Math.PI * m) / ring);
  for (let m = quarter + 1; m <= ring / 2; m++) cos[m] = -cos[ring / 2 - m]!;
  for (let m = ring / 2 + 1; m < ring; m++) cos[m] = cos[ring - m]!;
  return cos;
}

/** Exact a·a as hi + lo (Dekker/Veltkamp; no FMA in JavaScript). */
function computeSquareExact(a: number): [number, number] {
  const hi = a * a;
  const c = 134217729 * a;
  const ah = c - (c - a);
  const al = a - ah;
  return [hi, al * al - (hi - ah * ah - 2 * ah * al)];
}

/**
 * Y_k^T for a ring coefficient whose power still matters. Raising to the power T multiplies relative
 * error by T (at T = 5·10^4 the plain FFT value moves the tail sums behind δ(ε) by ~1e-11, ε by ~1e-6),
 * so Y_k = Σ_j p_j e^{−2πik(j−c)/M} is summed directly (Neumaier, accurate twiddles) around the grid
 * centre c and kept as a double-double; |Y|^T = exp(T/2·log1p(|Y|² − 1)) with |Y|² − 1 formed exactly;
 * the phase T·arg Y is small, and the centring phase e^{−2πik·cT/M} is applied exactly by table.
 */
function computeAccuratePower(
  pmf: Float64Array,
  cos: Float64Array,
  k: number,
  centre: number,
  steps: number,
): [number, number] {
  const ring = cos.length;
  const mask = ring - 1;
  const quarter = ring / 4;
  let sumRe = 0;
  let errRe = 0;
  let sumIm = 0;
  let errIm = 0;
  let m = (ring - ((k * centre) % ring)) & mask;
  for (let j = 0; j < pmf.length; j++, m = (m + k) & mask) {
    const a = pmf[j]! * cos[m]!;
    const b = -pmf[j]! * cos[(m - quarter) & mask]!;
    let t = sumRe + a;
    errRe += Math.abs(sumRe) >= Math.abs(a) ? sumRe - t + a : a - t + sumRe;
    sumRe = t;
    t = sumIm + b;
    errIm += Math.abs(sumIm) >= Math.abs(b) ? sumIm - t + b : b - t + sumIm;
    sumIm = t;
  }
  const reHi = sumRe + errRe;
  const reLo = errRe - (reHi - sumRe);
  const imHi = sumIm + errIm;
  const imLo = errIm - (imHi - sumIm);
  const [re2, re2Lo] = computeSquareExact(reHi);
  const [im2, im2Lo] = computeSquareExact(imHi);
  const head = re2 - 1; // exact for re2 ∈ [1/2, 2]; otherwise |Y| is far from 1 and 1 ulp is harmless
  const sum = head + im2;
  const sumLo = Math.abs(head) >= im2 ? head - sum + im2 : im2 - sum + head;
  const normMinusOne = sum + (sumLo + re2Lo + im2Lo + 2 * (reHi * reLo + imHi * imLo));
  const magnitude = Math.exp((steps / 2) * Math.log1p(normMinusOne));
  const angle = Math.atan2(imHi, reHi) + (reHi * imLo - imHi * reLo) / (re2 + im2);
  const phase = steps * angle;
  const turn = (k * (((centre % ring) * (steps % ring)) % ring)) % ring; // e^{−2πi·turn/M}
  const cr = cos[turn]!;
  const ci = -cos[(turn - quarter) & mask]!;
  const pr = magnitude * Math.cos(phase);
  const pi = magnitude * Math.sin(phase);
  return [pr * cr - pi * ci, pr * ci + pi * cr];
}

/**
 * Opacus `_compose_fourier`: the `steps`-fold composition of a discrete PRV on an aligned grid
 * (tMin = −K·dt, size = 2K + 2), on the same grid shifted by (steps − 1)·shift. One FFT, X_k ↦ X_k^T in
 * polar form (by computeAccuratePower wherever T·|X_k|^T ≥ 1, i.e. where the plain value could err by
 * more than ~1e-15; at most 10^8/N coefficients, largest first), one inverse FFT. Tiny negative outputs
 * are rounding noise and are kept, as in Opacus: clamping them would bias the tail sums behind δ(ε).
 */
export function composeDiscretePrv(dprv: DiscretePrv, steps: number): DiscretePrv {
  if (!(Number.isSafeInteger(steps) && steps >= 1)) fail('steps', 'must be a positive integer');
  const { size } = dprv.domain;
  const ring = computeNextPowerOfTwo(size);
  const centre = size / 2 - 1; // K: grid index of t = 0 before the mean shift
  const re = new Float64Array(ring);
  const im = new Float64Array(ring);
  re.set(dprv.pmf);
  if (steps > 1) {
    applyFft(re, im);
    const picked: [number, number][] = [];
    for (let k = 0; k <= ring / 2; k++) {
      const weight = steps * Math.hypot(re[k]!, im[k]!) ** steps;
      if (weight >= 1) picked.push([k, weight]);
    }
    picked.sort((a, b) => b[1] - a[1]);
    picked.length = Math.min(picked.length, Math.max(1, Math.floor(1e8 / size)));
    for (let i = 0; i < ring; i++) {
      const magnitude = Math.hypot(re[i]!, im[i]!) ** steps;
      const angle = steps * Math.atan2(im[i]!, re[i]!);
      re[i] = magnitude * Math.cos(angle);
      im[i] = magnitude * Math.sin(angle);
    }
    const cos = createCosTable(ring);
    for (const [k] of picked) {
      const [x, y] = computeAccuratePower(dprv.pmf, cos, k, centre, steps);
      re[k] = x;
      im[k] = y;
      if (k > 0 && k < ring / 2) {
        re[ring - k] = x;
        im[ring - k] = -y;
      }
    }
    applyFft(re, im, true);
  }
  // Index sum s of `steps` grid indices ↔ loss steps·tMin + s·dt; output index j holds s = (steps−1)·K + j.
  const base = (((steps - 1) % ring) * (centre % ring)) % ring;
  const pmf = new Float64Array(size);
  for (let j = 0; j < size; j++) pmf[j] = re[(base + j) % ring]!;
  const move = dprv.shift * (steps - 1);
  const domain = { tMin: dprv.domain.tMin + move, tMax: dprv.domain.tMax + move, size };
  return { pmf, domain, shift: dprv.shift * steps };
}

/** Opacus `DiscretePRV.compute_epsilon(delta, deltaError, epsError)`: lower, estimate, upper ε. */
export function computeDiscretePrvEpsilon(
  dprv: DiscretePrv,
  delta: number,
  deltaError: number,
  epsError: number,
): PrvEpsilon {
  const { pmf, domain } = dprv;
  const n = domain.size;
  if (Number.EPSILON * n > delta - deltaError) {
    fail('delta', 'float64 rounding on this grid dominates δ − deltaError; raise delta or epsError');
  }
  const d1 = new Float64Array(n);
  const d2 = new Float64Array(n);
  const negDelta = new Float64Array(n);
  let s1 = 0;
  let s2 = 0;
  for (let i = n - 1; i >= 0; i--) {
    const t = computeGridPoint(domain, i);
    s1 += pmf[i]!;
    s2 += pmf[i]! * Math.exp(-t);
    d1[i] = s1;
    d2[i] = s2;
    negDelta[i] = Math.exp(t) * s2 - s1;
  }
  const find = (target: number) => {
    let lo = 0; // numpy searchsorted(negDelta, −target, 'left')
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (negDelta[mid]! < -target) lo = mid + 1;
      else hi = mid;
    }
    if (lo <= 0 || lo >= n) {
      throw new EntenteError('INTERNAL', 'prv: δ is outside the range this grid can resolve');
    }
    return Math.log((d1[lo]! - target) / d2[lo]!);
  };
  return {
    epsilonLower: find(delta + deltaError) - epsError,
    epsilonEstimate: find(delta),
    epsilonUpper: find(delta - deltaError) + epsError,
  };
}

/**
 * ε of `steps` Poisson-subsampled Gaussian steps at `delta` by the PRV accountant (Opacus
 * `PRVAccountant.get_epsilon` returns `epsilonUpper`). Defaults: epsError = 0.01, deltaError = δ/1000.
 * samplingRate ∈ [0, 1] (0 → all zero), noiseMultiplier > 0, steps ≥ 0 integer (0 → all zero),
 * delta ∈ (0, 1), epsError > 0, deltaError ∈ (0, delta). Throws INVALID_ARGUMENT naming the field.
 */
export function computePrvEpsilon(input: {
  samplingRate: number;
  noiseMultiplier: number;
  steps: number;
  delta: number;
  epsError?: number;
  deltaError?: number;
}): PrvEpsilon {
  const { samplingRate, noiseMultiplier, steps, delta } = input;
  if (typeof samplingRate !== 'number' || !(samplingRate >= 0 && samplingRate <= 1))
    fail('samplingRate', 'must be in [0, 1]');
  if (typeof noiseMultiplier !== 'number' || !(noiseMultiplier > 0 && Number.isFinite(noiseMultiplier)))
    fail('noiseMultiplier', 'must be a finite number > 0');
  if (!(Number.isSafeInteger(steps) && steps >= 0)) fail('steps', 'must be a non-negative integer');
  if (typeof delta !== 'number' || !(delta > 0 && delta < 1)) fail('delta', 'must be in (0, 1)');
  const epsError = input.epsError ?? 0.01;
  const deltaError = input.deltaError ?? delta / 1000;
  if (typeof epsError !== 'number' || !(epsError > 0 && Number.isFinite(epsError)))
    fail('epsError', 'must be a finite number > 0');
  if (typeof deltaError !== 'number' || !(deltaError > 0 && deltaError < delta))
    fail('deltaError', 'must be in (0, delta)');
  if (steps === 0 || samplingRate === 0) return { epsilonLower: 0, epsilonEstimate: 0, epsilonUpper: 0 };
  const halfWidth = computePrvSafeDomainSize({ samplingRate, noiseMultiplier, steps, epsError, deltaError });
  const mesh = epsError / Math.sqrt((steps * Math.log(12 / deltaError)) / 2);
  const domain = createAlignedPrvDomain(halfWidth, mesh);
  const composed = composeDiscretePrv(createDiscretePrv(samplingRate, noiseMultiplier, domain), steps);
  return computeDiscretePrvEpsilon(composed, delta, deltaError, epsError);
}
