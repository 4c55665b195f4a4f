/**
 * Noise calibration: the smallest Gaussian noise multiplier z whose (ε, δ) after `steps` Poisson-
 * subsampled steps is within a target ε, by the RDP accountant (rdp.ts + rdp-conversion.ts) or the PLD
 * accountant (pld.ts). The search is the one of Opacus `opacus/accountants/utils.py`
 * `get_noise_multiplier` (bracket [0, 20], doubling the upper end while ε is above the target, then
 * bisection, returning the upper end so the result always meets the target), stopped, as dp_accounting's
 * `mechanism_calibration.calibrate_dp_mechanism` does, on the width of the bracket: here 1e-4 relative
 * to z. With `epsilonTolerance` it stops instead when target - ε(z) ≤ epsilonTolerance and uses Opacus's
 * strict comparison, which reproduces Opacus's numbers exactly (vector v23: 1.3562 at ε = 8).
 */
import { EntenteError } from '../core/errors.ts';
import { computePldEpsilon } from './pld.ts';
import { computeRdp, DEFAULT_RDP_ORDERS, type FractionalSeries } from './rdp.ts';
import { convertRdpToEpsilon } from './rdp-conversion.ts';

/** Above this z the budget is considered unreachable (Opacus MAX_SIGMA). */
const MAX_NOISE_MULTIPLIER = 1e6;
const RELATIVE_TOLERANCE = 1e-4;
const MAX_BISECTIONS = 200;

function fail(field: string, message: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

export type AccountantKind = 'rdp' | 'pld';

/** The ε of `steps` Poisson-subsampled Gaussian steps at noise multiplier z, by the chosen accountant. */
export function computeGaussianEpsilon(input: {
  accountant: AccountantKind;
  noiseMultiplier: number;
  samplingRate: number;
  steps: number;
  delta: number;
  orders?: readonly number[];
  fractionalSeries?: FractionalSeries;
  valueDiscretizationInterval?: number;
}): number {
  const { accountant, noiseMultiplier, samplingRate, steps, delta } = input;
  if (accountant === 'pld') {
    return computePldEpsilon({
      samplingRate,
      noiseMultiplier,
      steps,
      delta,
      ...(input.valueDiscretizationInterval === undefined
        ? {}
        : { valueDiscretizationInterval: input.valueDiscretizationInterval }),
    });
  }
  if (accountant !== 'rdp') fail('accountant', "must be 'rdp' or 'pld'");
  const orders = input.orders ?? DEFAULT_RDP_ORDERS;
  const rdp = computeRdp({
    samplingRate,
    noiseMultiplier,
    steps,
    orders,
    ...(input.fractionalSeries === undefined ? {} : { fractionalSeries: input.fractionalSeries }),
  });
  return convertRdpToEpsilon({ orders, rdp, delta }).epsilon;
}

/**
 * Smallest noise multiplier z (to 1e-4 relative) whose ε at (samplingRate, steps, delta) is ≤
 * targetEpsilon; the returned z always meets the target. `accountant` chooses RDP (`orders`, default
 * dp_accounting's) or PLD. If the target is met without noise (no steps, or q = 0) returns 0.
 * Throws INVALID_ARGUMENT naming the field, also when even z = 1e6 does not meet the target.
 */
export function calibrateNoiseMultiplier(input: {
  accountant: 'rdp' | 'pld';
  targetEpsilon: number;
  delta: number;
  samplingRate: number;
  steps: number;
  orders?: readonly number[];
  fractionalSeries?: FractionalSeries;
  /** Opacus stopping rule: stop once target - ε(z) ≤ epsilonTolerance (Opacus default 0.01). */
  epsilonTolerance?: number;
  valueDiscretizationInterval?: number;
}): number {
  const { targetEpsilon, delta, samplingRate, steps, epsilonTolerance } = input;
  if (input.accountant !== 'rdp' && input.accountant !== 'pld') fail('accountant', "must be 'rdp' or 'pld'");
  if (typeof targetEpsilon !== 'number' || !(targetEpsilon > 0) || !Number.isFinite(targetEpsilon))
    fail('targetEpsilon', 'must be a finite number > 0');
  if (typeof delta !== 'number' || !(delta > 0 && delta < 1)) fail('delta', 'must be in (0, 1)');
  if (typeof samplingRate !== 'number' || !(samplingRate >= 0 && samplingRate <= 1))
    fail('samplingRate', 'must be in [0, 1]');
  if (!Number.isSafeInteger(steps) || steps < 0) fail('steps', 'must be an integer ≥ 0');
  if (epsilonTolerance !== undefined && !(epsilonTolerance > 0 && Number.isFinite(epsilonTolerance)))
    fail('epsilonTolerance', 'must be a finite number > 0');
  if (steps === 0 || samplingRate === 0) return 0;

  const epsilonAt = (z: number) => computeGaussianEpsilon({ ...input, noiseMultiplier: z });
  let low = 0;
  let high = 20;
  let epsilonHigh = epsilonAt(high);
  while (epsilonHigh > targetEpsilon) {
    high *= 2;
    if (high > MAX_NOISE_MULTIPLIER)
      fail('targetEpsilon', `not reachable with a noise multiplier ≤ ${MAX_NOISE_MULTIPLIER}`);
    epsilonHigh = epsilonAt(high);
  }
  for (let i = 0; i < MAX_BISECTIONS; i++) {
    if (
      epsilonTolerance === undefined
        ? high - low <= RELATIVE_TOLERANCE * high
        : targetEpsilon - epsilonHigh <= epsilonTolerance
    )
      break;
    const mid = (low + high) / 2;
    const epsilonMid = epsilonAt(mid);
    const meets = epsilonTolerance === undefined ? epsilonMid <= targetEpsilon : epsilonMid < targetEpsilon;
    if (meets) {
      high = mid;
      epsilonHigh = epsilonMid;
    } else low = mid;
  }
  return high;
}
