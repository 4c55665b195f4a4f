/**
 * A participant process for the benchmark: the real participant agent (mutual TLS, long poll, chunked
 * uploads) with a synthetic trainer that returns the received model plus a fixed offset, so the figures
 * measure the system, not training. Usage: tsx bench/synthetic-participant.ts <workspace> <institution>
 */
import pino from 'pino';
import type { Tensor } from '../src/core/index.ts';
import { builtinTrainer, type Trainer } from '../src/models/index.ts';
import { startParticipant } from '../src/participant/index.ts';
import { openWorkspace } from '../src/storage/index.ts';

const [workspace, institution] = process.argv.slice(2);
if (!workspace || !institution) throw new Error('usage: synthetic-participant <workspace> <institution>');
const ws = openWorkspace(workspace);

const synthetic: Trainer = {
  id: 'bench/synthetic@1',
  describeLayout: (spec) => builtinTrainer.describeLayout(spec),
  initializeWeights: (spec, rng) => builtinTrainer.initializeWeights(spec, rng),
  train: (_spec, weights) => {
    const out: Tensor[] = weights.map((t) => {
      const data = new Float32Array(t.data.length);
      for (let i = 0; i < data.length; i++) data[i] = t.data[i]! + 0.001;
      return { name: t.name, shape: [...t.shape], data };
    });
    return { weights: out, numExamples: 100, meanLoss: 0.5, steps: 1 };
  },
  evaluate: () => ({ loss: 0.5, accuracy: 0.5, numExamples: 10 }),
};

const data = {
  x: new Float32Array(20),
  y: new Int32Array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1]),
  count: 10,
  dim: 2,
  featureNames: ['a', 'b'],
};
const handle = startParticipant({
  institution,
  coordinatorUrl: () => ws.readEndpoint(),
  identity: ws.institutionIdentity(institution),
  data,
  trainer: synthetic,
  log: pino({ level: 'warn' }, pino.destination(2)),
});
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.on(sig, () => void handle.stop().finally(() => process.exit(0)));
await handle.done;
