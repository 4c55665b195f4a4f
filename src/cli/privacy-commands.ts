import { type Command, Option } from 'commander';
import { computeClientDpRho, parseRunConfig, projectRunEpsilon } from '../protocol/index.ts';
import { EntenteError } from '../core/errors.ts';
import { readStructuredFile } from './read-file.ts';
import { calibrateNoiseMultiplier, computeGaussianEpsilon } from '../privacy/calibrate.ts';
import { computeRdp, DEFAULT_RDP_ORDERS } from '../privacy/rdp.ts';
import { convertRdpToEpsilon } from '../privacy/rdp-conversion.ts';

type AccountantKind = 'rdp' | 'pld';

function invalid(flag: string, message: string): never {
  throw new EntenteError('INVALID_ARGUMENT', `${flag}: ${message}`, { field: flag.slice(2) });
}

const NUMBER = /^[+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;

function parseNumber(text: string, flag: string, check: (x: number) => boolean, rule: string): number {
  const value = Number(text);
  if (!NUMBER.test(text.trim()) || !Number.isFinite(value) || !check(value)) invalid(flag, `must be ${rule}`);
  return value;
}

const parseDelta = (text: string) =>
  parseNumber(text, '--delta', (x) => x > 0 && x < 1, 'a number in (0, 1)');
const parseRate = (text: string) =>
  parseNumber(text, '--sampling-rate', (x) => x >= 0 && x <= 1, 'a number in [0, 1] (1 = no sampling)');
const parseSteps = (text: string) =>
  parseNumber(text, '--steps', (x) => Number.isSafeInteger(x) && x >= 0, 'an integer ≥ 0');

function parseOrders(text: string | undefined, accountant: AccountantKind): readonly number[] {
  if (text === undefined) return DEFAULT_RDP_ORDERS;
  if (accountant !== 'rdp') invalid('--orders', 'only applies to --accountant rdp');
  const parts = text.split(',').map((s) => s.trim());
  if (parts.some((p) => p === '')) invalid('--orders', 'must be a comma-separated list of orders > 1');
  return parts.map((p) =>
    p === 'inf' ? Number.POSITIVE_INFINITY : parseNumber(p, '--orders', (x) => x > 1, 'orders > 1'),
  );
}

const accountantOption = () =>
  new Option('--accountant <kind>', 'privacy accountant').choices(['rdp', 'pld']).makeOptionMandatory();

/** Adds `privacy epsilon` and `privacy calibrate` under `entente privacy` (created if absent); returns it. */
export function registerPrivacyCommands(program: Command): Command {
  const privacy =
    program.commands.find((c) => c.name() === 'privacy') ??
    program.command('privacy').description('differential-privacy accounting');

  privacy
    .command('epsilon')
    .description('ε of Poisson-subsampled Gaussian steps (DP-SGD / DP-FedAvg) at a given δ')
    .addOption(accountantOption())
    .requiredOption('--noise-multiplier <z>', 'noise standard deviation / clipping norm (> 0)')
    .requiredOption('--sampling-rate <q>', 'Poisson sampling rate per step (1 = no sampling)')
    .requiredOption('--steps <t>', 'number of steps (rounds)')
    .requiredOption('--delta <d>', 'target δ')
    .option('--orders <list>', 'RDP orders, comma-separated (default: dp_accounting defaults)')
    .option('--json', 'print one JSON object')
    .action(
      (opts: {
        accountant: AccountantKind;
        noiseMultiplier: string;
        samplingRate: string;
        steps: string;
        delta: string;
        orders?: string;
        json?: boolean;
      }) => {
        const noiseMultiplier = parseNumber(
          opts.noiseMultiplier,
          '--noise-multiplier',
          (x) => x > 0,
          'a number > 0',
        );
        const samplingRate = parseRate(opts.samplingRate);
        const steps = parseSteps(opts.steps);
        const delta = parseDelta(opts.delta);
        const orders = parseOrders(opts.orders, opts.accountant);
        let epsilon: number;
        let order: number | undefined;
        if (opts.accountant === 'rdp') {
          const rdp = computeRdp({ samplingRate, noiseMultiplier, steps, orders });
          ({ epsilon, order } = convertRdpToEpsilon({ orders, rdp, delta }));
        } else {
          epsilon = computeGaussianEpsilon({
            accountant: 'pld',
            noiseMultiplier,
            samplingRate,
            steps,
            delta,
          });
        }
        if (opts.json) {
          // JSON has no Infinity: an unbounded ε prints as null.
          const out = {
            epsilon: Number.isFinite(epsilon) ? epsilon : null,
            delta,
            accountant: opts.accountant,
            ...(order === undefined ? {} : { order }),
          };
          console.log(JSON.stringify(out));
        } else {
          const at = order === undefined ? '' : `, best order ${order}`;
          console.log(`ε = ${epsilon} at δ = ${delta} (${opts.accountant} accountant${at})`);
        }
      },
    );

  privacy
    .command('calibrate')
    .description('smallest noise multiplier whose ε after the given steps is within a target ε')
    .addOption(accountantOption())
    .requiredOption('--target-epsilon <e>', 'target ε (> 0)')
    .requiredOption('--delta <d>', 'target δ')
    .requiredOption('--sampling-rate <q>', 'Poisson sampling rate per step (1 = no sampling)')
    .requiredOption('--steps <t>', 'number of steps (rounds)')
    .option('--orders <list>', 'RDP orders, comma-separated (default: dp_accounting defaults)')
    .option('--json', 'print one JSON object')
    .action(
      (opts: {
        accountant: AccountantKind;
        targetEpsilon: string;
        delta: string;
        samplingRate: string;
        steps: string;
        orders?: string;
        json?: boolean;
      }) => {
        const targetEpsilon = parseNumber(
          opts.targetEpsilon,
          '--target-epsilon',
          (x) => x > 0,
          'a number > 0',
        );
        const delta = parseDelta(opts.delta);
        const samplingRate = parseRate(opts.samplingRate);
        const steps = parseSteps(opts.steps);
        const orders = parseOrders(opts.orders, opts.accountant);
        const noiseMultiplier = calibrateNoiseMultiplier({
          accountant: opts.accountant,
          targetEpsilon,
          delta,
          samplingRate,
          steps,
          ...(opts.accountant === 'rdp' ? { orders } : {}),
        });
        if (opts.json) console.log(JSON.stringify({ noiseMultiplier }));
        else
          console.log(
            `noise multiplier ${noiseMultiplier} gives ε ≤ ${targetEpsilon} at δ = ${delta} (${opts.accountant} accountant)`,
          );
      },
    );
  privacy
    .command('plan')
    .description('the ε each institution would have spent after each round of a run configuration')
    .argument('<run-config>', 'run configuration (YAML or JSON)')
    .option('--delta <d>', 'δ at which to state ε', '1e-5')
    .option(
      '--institutions <list>',
      'institution ids, comma-separated (default: one line for every institution)',
    )
    .option('--json', 'print one JSON object')
    .action((file: string, opts: { delta: string; institutions?: string; json?: boolean }) => {
      const delta = parseDelta(opts.delta);
      const config = parseRunConfig(readStructuredFile(file, 'run-config'));
      const dp = config.train.dp;
      const cdp = config.clientDp;
      const cdpRho = computeClientDpRho(config);
      const institutions = opts.institutions
        ? opts.institutions.split(',').map((x) => x.trim())
        : ['each institution'];
      const rounds = projectRunEpsilon(config, delta);
      if (opts.json) {
        console.log(
          JSON.stringify({
            run: config.id,
            accountant: 'rdp',
            delta,
            dp: dp ?? null,
            clientDp: cdp ?? null,
            institutions,
            rounds,
          }),
        );
        return;
      }
      if (cdp) {
        console.log(
          `run ${config.id}: client-level DP (distributed discrete Gaussian under secure aggregation), noise multiplier ${cdp.noiseMultiplier}, clip ${cdp.clipNorm}: ρ = ${cdpRho.toFixed(4)} per round for each institution as a whole; ε at δ = ${delta}`,
        );
        for (const r of rounds)
          console.log(`  after round ${String(r.round).padStart(4)}  ε = ${r.epsilon!.toFixed(4)}`);
        return;
      }
      if (!dp) {
        console.log(
          `run ${config.id}: no differential privacy (train.dp absent): ε is unbounded for every institution`,
        );
        return;
      }
      console.log(
        `run ${config.id}: sample-level DP-SGD, noise multiplier ${dp.noiseMultiplier}, q = ${dp.samplingRate}, clip ${dp.clipNorm}; ε at δ = ${delta} (RDP accountant), the same for ${institutions.join(', ')} (each site adds its earlier runs to its total)`,
      );
      for (const r of rounds)
        console.log(`  after round ${String(r.round).padStart(4)}  ε = ${r.epsilon!.toFixed(4)}`);
    });
  return privacy;
}
