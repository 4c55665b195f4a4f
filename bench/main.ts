/** Benchmarks: `npm run bench -- <name> [--json]`. Each prints one JSON object on stdout. */
import { benchAccountant } from './accountant.ts';
import { benchAudit } from './audit.ts';
import { benchCliStartup } from './cli-startup.ts';
import { benchEval } from './eval.ts';
import { benchGovernance } from './governance.ts';
import { benchPrivacyUtility } from './privacy-utility.ts';
import { benchRound } from './round.ts';
import { benchSecAgg } from './secagg.ts';

const [name, ...rest] = process.argv.slice(2);
const benches: Record<string, (args: string[]) => Promise<void>> = {
  accountant: benchAccountant,
  audit: benchAudit,
  'cli-startup': benchCliStartup,
  eval: benchEval,
  governance: benchGovernance,
  'privacy-utility': benchPrivacyUtility,
  round: benchRound,
  secagg: benchSecAgg,
};
const run = name ? benches[name] : undefined;
if (!run) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join('|')}> [--json] [--quick]`);
  process.exit(2);
}
await run(rest);
