/**
 * The participant: an institution's agent. It only makes outbound connections (mutual TLS): registers,
 * long-polls for tasks, sends heartbeats, and reconnects by itself with exponential backoff. For each
 * task it fetches the model chunk by chunk, checks every chunk and the whole against their SHA-256
 * addresses, trains or evaluates locally through the `Trainer` interface, and uploads the update as a
 * chunked safetensors blob. Raw records never leave this process.
 */
import { createPublicKey, randomBytes, randomInt } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { EntenteError } from '../core/errors.ts';
import { decodeSafetensors, encodeSafetensors } from '../core/safetensors.ts';
import { type Tensor, countParameters } from '../core/tensor.ts';
import { canonicalizeJson } from '../crypto/canonical-json.ts';
import { sha256Hex } from '../crypto/digest.ts';
import { createSeededRng } from '../crypto/seeded-rng.ts';
import {
  type LabeledData,
  applyStandardization,
  computeFeatureStats,
  splitTrainTest,
} from '../data/index.ts';
import {
  type DpNoiseSource,
  type Trainer,
  builtinTrainer,
  computeDpStepsPerEpoch,
  evaluateRegression,
  isRegressionSpec,
  parseModelSpec,
} from '../models/index.ts';
import {
  type BlobRef,
  PROTOCOL_VERSION,
  SESSION_HEADER,
  type Standardization,
  type PrivacyReport,
  type SecAggSumTask,
  type SecAggTrainTask,
  buildSecureSumContext,
  encodeSecureSum,
  type TrainTask,
  type Task,
  type TaskResult,
  type DataShape,
  checkModelFitsData,
  createBlobRef,
  parseMessage,
  registerResponseSchema,
  taskSchema,
} from '../protocol/index.ts';
import {
  CLIP_INDICATOR_SEGMENT,
  ParticipantSession,
  type RingVector,
  type SecAggRoundContext,
  checkRoundContext,
  countVectorWords,
  createUniformSource,
  quantizeInto,
  writeIntegerWord,
} from '../secagg/index.ts';
import type { TlsIdentity } from '../storage/index.ts';
import {
  type PrivacyEvent,
  type SiteBudget,
  checkPrivacyBudget,
  computeLedgerEpsilon,
  createCryptoRandomBits,
  sampleSecureGaussian,
} from '../privacy/index.ts';
import { addDiscreteGaussianShare, clipL2Norm, planClientNoise, writeSignedWord } from './client-dp.ts';
import { LogWitness } from './log-witness.ts';
import { openPrivacyLedgerFile } from './privacy-ledger-file.ts';
import { type SiteConfig, checkSitePolicy } from './site-config.ts';
import { answerPlan } from './site-plan.ts';
import { createRunApprovalCheck } from './run-approval.ts';
import { isSameKey } from '../governance/index.ts';
import { checkTaskConformance, checkTaskSchemaDigest } from './task-conformance.ts';
import { computeBuiltinTrainerDigest } from './trainer-digest.ts';
import { chooseTrainingRandomness } from './training-randomness.ts';
import { openUnmaskedRounds } from './unmasked-rounds.ts';
import {
  type EvaluationAnnotations,
  type EvaluationRowsSource,
  checkPlanTask,
  computeEvaluationValues,
  computeStatisticsValues,
  toEvaluationRows,
} from './secure-sum-vector.ts';
import { type MtlsClient, createMtlsClient } from '../transport/index.ts';

export interface ParticipantOptions {
  readonly institution: string;
  readonly coordinatorUrl: string | (() => string);
  /** Its mTLS identity, or a function returning the current one (re-read after a renewal). */
  readonly identity: TlsIdentity | (() => TlsIdentity);
  /** All of this institution's records; a held-out part is kept for federated evaluation. */
  readonly data: LabeledData;
  /**
   * What its data schema declares for private evaluation (the sensitive attribute, slice names); the
   * rows' groups and slice memberships travel with the loaded data.
   */
  readonly evaluationAnnotations?: EvaluationAnnotations;
  /**
   * The rows this site evaluates on (`--eval-data`); it then trains on all of `data`. Default: a
   * held-out share of `data` (holdoutFraction).
   */
  readonly evaluationData?: LabeledData;
  /** Label classes of its data schema (declared at registration; default: the largest label + 1). */
  readonly dataClasses?: number;
  readonly holdoutFraction?: number;
  readonly log: Logger;
  readonly trainer?: Trainer;
  /**
   * Simulation only: wait this long before uploading each result (a slow institution); either one
   * delay for every task, or a delay per task kind (e.g. { 'secagg-masked-input': 4000 }).
   */
  readonly slowMs?: number | Readonly<Record<string, number>>;
  readonly pollWaitMs?: number;
  readonly maxBackoffMs?: number;
  /** The institution's Ed25519 identity (secure aggregation signs with it) and the consortium CA it trusts. */
  readonly signing?: { readonly certPem: string; readonly keyPem: string; readonly caPem: string };
  /** Append-only JSON-lines file where this site records every task it refused and why. */
  readonly journalFile?: string;
  /**
   * Witness the consortium's audit log (needs `signing`): the log's key and origin from the
   * consortium file, this site's cosigner name, and where its verified view is kept.
   */
  /** This site's own limits (site policy); tasks that break one are refused and recorded. */
  readonly site?: SiteConfig;
  /** This site's own privacy budget (per run and in total); the consortium cannot raise it. */
  readonly privacyBudget?: SiteBudget;
  /** Where this site's privacy ledger is kept (absent: memory only). */
  readonly privacyLedgerFile?: string;
  /**
   * Where this site records each (run, round) it released unmasking shares for (absent: memory only);
   * it then refuses every other attempt of that round, across restarts (unmasked-rounds.ts).
   */
  readonly unmaskedRoundsFile?: string;
  /**
   * Governed consortium (an enrolled site): take part in a run only when the audit log, which this site
   * verifies itself, shows it approved by the start-run quorum of the policy in force.
   */
  readonly requireApprovedRuns?: boolean;
  /** SHA-256 of the data schema this site's records follow (answers dry runs). */
  readonly dataSchemaDigest?: string;
  /**
   * Test instrumentation only: append the rows of every DP-SGD batch this site draws to this JSON-lines
   * file. It reveals which records were sampled, which is exactly what DP-SGD keeps secret: never set
   * it for real data.
   */
  readonly batchJournalFile?: string;
  readonly witness?: {
    readonly logKey: string;
    readonly origin: string;
    readonly witnessName: string;
    readonly stateFile?: string;
  };
}

/** A task this participant refused (protocol violation, site rule), as recorded locally. */
export interface Refusal {
  readonly at: number;
  readonly taskId: string;
  readonly kind: string;
  readonly round: number;
  readonly code: string;
  readonly field?: string | undefined;
  readonly message: string;
}

export interface ParticipantHandle {
  readonly done: Promise<void>;
  /** Tasks refused so far (also in the journal file when one is configured). */
  readonly refusals: () => readonly Refusal[];
  readonly traffic: () => { sent: number; received: number };
  stop(): Promise<void>;
}

/**
 * Codes that mean a task cannot be executed at this site as it stands (its model does not fit the
 * records, a malformed task or result): retrying the same task gives the same answer, so it is refused
 * once, with the code and reason, and the coordinator decides what the phase does without it.
 */
const CANNOT_EXECUTE: ReadonlySet<string> = new Set([
  'INVALID_ARGUMENT',
  'INVALID_CONFIG',
  'INVALID_MESSAGE',
  'INVALID_TENSOR',
  'INVALID_DATA',
  'MALFORMED_BODY',
  'BODY_TOO_LARGE',
]);

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

function toParams(s: Standardization): { mean: Float64Array; std: Float64Array } {
  return { mean: Float64Array.from(s.mean), std: Float64Array.from(s.std) };
}

export function startParticipant(options: ParticipantOptions): ParticipantHandle {
  const log = options.log;
  const trainer = options.trainer ?? builtinTrainer;
  const controller = new AbortController();
  const signal = controller.signal;
  const split = options.evaluationData
    ? { train: options.data, test: options.evaluationData }
    : splitTrainTest(
        options.data,
        options.holdoutFraction ?? 0.2,
        createSeededRng(`${options.institution}/holdout`),
      );
  const maxBackoff = options.maxBackoffMs ?? 5_000;
  let client: MtlsClient | undefined;
  let clientUrl = '';
  const trafficBase = { sent: 0, received: 0 };
  const modelCache = new Map<string, Tensor[]>();
  const sessions = new Map<string, ParticipantSession>();
  const refusals: Refusal[] = [];
  let consortium = '';
  /** What this site's records look like (declared at registration; every task's model must fit it). */
  const dataShape: DataShape = {
    features: options.data.dim,
    classes:
      options.dataClasses ??
      Math.max(
        2,
        options.data.y.reduce((m, v) => Math.max(m, v + 1), 0),
      ),
  };
  const sessionKey = (runId: string, round: number, attempt: number, phase = 'train'): string =>
    `${runId}/${round}/${attempt}/${phase}`;
  const evaluationRows: EvaluationRowsSource = toEvaluationRows(split.test, options.evaluationAnnotations);
  const witness =
    options.witness && options.signing
      ? new LogWitness({
          client: () => currentClient(),
          institution: options.institution,
          logKey: options.witness.logKey,
          origin: options.witness.origin,
          witnessName: options.witness.witnessName,
          witnessKeyPem: options.signing.keyPem,
          stateFile: options.witness.stateFile,
          log,
          now: () => Date.now(),
        })
      : undefined;
  const ledger = openPrivacyLedgerFile(options.privacyLedgerFile);
  const unmasked = openUnmaskedRounds(options.unmaskedRoundsFile);
  /**
   * The noised update this site built for each secure-aggregation round still open, by `run/round`: a
   * retried attempt (the earlier one aborted before unmasking) sends it again instead of training and
   * spending privacy again, when nothing that shapes it changed (computeUpdateKey). Memory only: after
   * a restart the site trains again and charges the ledger again. Reuse is safe only because this site
   * contributes to at most one unmasked sum per round (unmasked-rounds.ts).
   */
  const updateCache = new Map<
    string,
    { key: string; vector: RingVector; privacy: PrivacyReport | undefined; attempt: number }
  >();
  const checkRunApproved = witness
    ? createRunApprovalCheck({ witness, client: () => currentClient() })
    : undefined;
  const noiseBits = createCryptoRandomBits();
  /** DP noise from node:crypto through the discrete-Gaussian lattice sampler (privacy/secure-gaussian.ts). */
  const secureNoise: DpNoiseSource = (out, std) => {
    out.set(sampleSecureGaussian(std, noiseBits, out.length));
  };

  /**
   * Before training: what this round would cost this site's records, and whether its own budget allows
   * it. A round without differential privacy has unbounded ε: a site with a budget refuses it.
   */
  function planPrivacy(
    task: {
      runId: string;
      round: number;
      train: TrainTask['train'];
    },
    attempt?: number,
  ): PrivacyEvent | undefined {
    const dp = task.train.dp;
    const proposed: PrivacyEvent | undefined = dp
      ? {
          run: task.runId,
          round: task.round,
          mechanism: 'subsampled-gaussian',
          noiseMultiplier: dp.noiseMultiplier,
          samplingRate: dp.samplingRate,
          steps: task.train.epochs * computeDpStepsPerEpoch(dp.samplingRate),
          neighbouring: 'add-remove-record',
          ...(attempt === undefined ? {} : { attempt }),
        }
      : undefined;
    return enforceBudget(proposed);
  }

  /** Refuses (PRIVACY_BUDGET_EXCEEDED) when this site's own budget does not allow `proposed`. */
  function enforceBudget(proposed: PrivacyEvent | undefined): PrivacyEvent | undefined {
    const budget = options.privacyBudget;
    if (!budget) return proposed;
    if (!proposed) {
      throw new EntenteError(
        'PRIVACY_BUDGET_EXCEEDED',
        'train.dp: the round has no differential privacy (ε unbounded) and this site has a privacy budget',
        { field: 'train.dp' },
      );
    }
    const verdict = checkPrivacyBudget({ ledger: ledger.events(), proposed, budget });
    if (!verdict.ok)
      throw new EntenteError('PRIVACY_BUDGET_EXCEEDED', `privacy: ${verdict.reason}`, { field: 'train.dp' });
    return proposed;
  }

  /** Records the event (before the update leaves the site) and reports what the ledger now says. */
  function spendPrivacy(event: PrivacyEvent | undefined): PrivacyReport | undefined {
    if (!event) return undefined;
    ledger.append(event);
    const budget = options.privacyBudget;
    const delta = budget?.perRun?.delta ?? budget?.total?.delta ?? 1e-5;
    const events = ledger.events();
    return {
      event:
        event.mechanism === 'zcdp'
          ? { mechanism: 'zcdp', rho: event.rho!, neighbouring: event.neighbouring }
          : {
              mechanism: 'subsampled-gaussian',
              noiseMultiplier: event.noiseMultiplier!,
              samplingRate: event.samplingRate!,
              steps: event.steps!,
              neighbouring: event.neighbouring,
            },
      epsilonRun: computeLedgerEpsilon(
        events.filter((e) => e.run === event.run),
        delta,
      ).epsilon,
      epsilonTotal: computeLedgerEpsilon(events, delta).epsilon,
      delta,
    };
  }

  /**
   * Local training with the randomness training-randomness.ts chooses: reproducible from the task seed
   * only without differential privacy; otherwise from a CSPRNG of this site alone.
   */
  function trainWithPrivateRandomness(
    task: TrainTask | SecAggTrainTask,
    spec: ReturnType<typeof parseModelSpec>,
    weights: Tensor[],
    data: LabeledData,
  ): ReturnType<Trainer['train']> {
    const batches: number[][] = [];
    const record = options.batchJournalFile ? (rows: Int32Array) => batches.push([...rows]) : undefined;
    const { rng, sources } = chooseTrainingRandomness(
      { seed: task.seed, train: task.train, clientDp: 'clientDp' in task ? task.clientDp : undefined },
      secureNoise,
      record,
    );
    const out = trainer.train(spec, weights, data, { ...task.train }, rng, sources);
    if (options.batchJournalFile && batches.length > 0) {
      const line = {
        run: task.runId,
        round: task.round,
        attempt: 'attempt' in task ? task.attempt : 0,
        seed: task.seed,
        count: data.count,
        batches,
      };
      appendFileSync(options.batchJournalFile, `${JSON.stringify(line)}\n`, { mode: 0o600 });
    }
    return out;
  }

  /** Everything that shapes this site's noised update of a secure-aggregation round, as one digest. */
  function computeUpdateKey(task: SecAggTrainTask, context: SecAggRoundContext): string {
    return sha256Hex(
      Buffer.from(
        canonicalizeJson({
          model: task.model.sha256,
          modelSpec: task.modelSpec,
          train: task.train,
          standardization: task.standardization ?? null,
          dataSchemaDigest: task.dataSchemaDigest ?? null,
          clientDp: task.clientDp ?? null,
          quantization: context.quantization,
          segments: context.segments,
          maxWeight: context.maxWeight,
          // Client-level DP: each share's noise variance is σ²/t, so the threshold shapes the update.
          threshold: task.clientDp ? context.threshold : null,
        }),
        'utf8',
      ),
    );
  }

  const journal = (event: string, fields: Record<string, unknown>): void => {
    if (options.journalFile)
      appendFileSync(options.journalFile, `${JSON.stringify({ event, at: Date.now(), ...fields })}\n`, {
        mode: 0o600,
      });
  };

  /**
   * Before anything else in a secure-aggregation round: the identity keys this site will check its peers'
   * adverts against, from its own verified copy of the audit log (never from a certificate the CA next to
   * the coordinator could mint). Refuses (PROTOCOL_VIOLATION) without a verified log, when the log pins
   * another key for this site (someone re-enrolled as it), or when a cohort member has no pinned key.
   */
  async function pinnedKeysFor(
    cohort: readonly string[],
    ownKeyPem: string,
  ): Promise<ReadonlyMap<string, Uint8Array>> {
    if (!checkRunApproved)
      throw new EntenteError(
        'PROTOCOL_VIOLATION',
        'secagg: this site verifies no audit log, so it has no pinned identity keys to check peers against',
        { field: 'secagg' },
      );
    const keys = await checkRunApproved.pinnedKeys();
    const spki = createPublicKey(ownKeyPem).export({ format: 'der', type: 'spki' });
    if (!isSameKey(keys.get(options.institution), new Uint8Array(spki.subarray(12))))
      throw new EntenteError(
        'PROTOCOL_VIOLATION',
        `identity: the audit log does not pin this site's identity key for ${options.institution} (another key was enrolled under its name)`,
        { field: 'identity' },
      );
    const missing = cohort.filter((m) => !keys.has(m));
    if (missing.length > 0)
      throw new EntenteError(
        'PROTOCOL_VIOLATION',
        `secagg.cohort: ${missing.slice(0, 5).join(', ')} ${missing.length === 1 ? 'has' : 'have'} no identity key pinned in the audit log this site verified (not admitted members)`,
        { field: 'secagg.cohort' },
      );
    return keys;
  }

  /** Before training: the model must be the one the audit log records (when this site witnesses the log). */
  async function checkModelInLog(task: {
    runId: string;
    model: BlobRef;
    modelLog?: { index: number } | undefined;
  }) {
    if (!witness) return;
    if (!task.modelLog) {
      throw new EntenteError(
        'PROTOCOL_VIOLATION',
        'modelLog: the task does not say where the log records its model',
        {
          field: 'modelLog',
        },
      );
    }
    await witness.checkModel({ index: task.modelLog.index, run: task.runId, modelSha256: task.model.sha256 });
  }

  let clientCert = '';
  /** This process's session: the coordinator refuses a second live process of the same institution. */
  const session = randomBytes(18).toString('base64url');
  /**
   * The client for the coordinator's current URL. Throws UNAVAILABLE while no coordinator is recorded
   * in the workspace (stopped or restarting): callers back off and retry.
   */
  const currentClient = (): MtlsClient => {
    const url =
      typeof options.coordinatorUrl === 'function' ? options.coordinatorUrl() : options.coordinatorUrl;
    const identity = typeof options.identity === 'function' ? options.identity() : options.identity;
    // A new URL, or a renewed certificate (participant rotate): connect afresh with it.
    if (!client || url !== clientUrl || identity.certPem !== clientCert) {
      if (client) {
        trafficBase.sent += client.traffic.sent;
        trafficBase.received += client.traffic.received;
        void client.close().catch(() => {});
      }
      client = createMtlsClient({
        baseUrl: url,
        ...identity,
        maxResponseBytes: 8 * 1024 * 1024,
        headers: { [SESSION_HEADER]: session },
      });
      clientUrl = url;
      clientCert = identity.certPem;
    }
    return client;
  };

  let failures = 0;
  const backoff = async (err: unknown): Promise<void> => {
    failures++;
    const base = Math.min(maxBackoff, 100 * 2 ** Math.min(failures, 10));
    const wait = base / 2 + randomInt(Math.max(1, Math.floor(base / 2)));
    log.warn({ code: (err as EntenteError).code, retryInMs: Math.round(wait) }, (err as Error).message);
    await sleep(wait, signal);
  };

  /** Retries `fn` on UNAVAILABLE (coordinator down or restarting) until it succeeds or we stop. */
  async function withRetry<T>(fn: () => Promise<T>): Promise<T | undefined> {
    for (;;) {
      if (signal.aborted) return undefined;
      try {
        const out = await fn();
        failures = 0;
        return out;
      } catch (err) {
        if (
          err instanceof EntenteError &&
          (err.code === 'UNAVAILABLE' || err.code === 'TIMEOUT' || err.code === 'INTERNAL')
        ) {
          await backoff(err);
          continue;
        }
        throw err;
      }
    }
  }

  async function fetchModel(ref: BlobRef, spec: ReturnType<typeof parseModelSpec>): Promise<Tensor[]> {
    const cached = modelCache.get(ref.sha256);
    if (cached) return cached;
    const parts: Buffer[] = [];
    for (const [i, c] of ref.chunks.entries()) {
      const bytes = await currentClient().getBytes(`/v1/blobs/${c.sha256}`, c.bytes);
      if (bytes.length !== c.bytes || sha256Hex(bytes) !== c.sha256) {
        throw new EntenteError('DIGEST_MISMATCH', `model.chunks.${i} does not match its address`, {
          field: `model.chunks.${i}`,
        });
      }
      parts.push(bytes);
    }
    const all = Buffer.concat(parts);
    if (sha256Hex(all) !== ref.sha256)
      throw new EntenteError('DIGEST_MISMATCH', 'model does not match model.sha256', {
        field: 'model.sha256',
      });
    const weights = decodeSafetensors(all, { expected: trainer.describeLayout(spec) }).weights;
    modelCache.clear();
    modelCache.set(ref.sha256, weights);
    return weights;
  }

  /** Stage advertise-keys: train, clip and quantize the weighted delta, then create the session and advert. */
  async function computeSecAggTrain(
    task: SecAggTrainTask,
  ): Promise<{ result: TaskResult; chunks: Uint8Array[] }> {
    const signing = options.signing;
    if (!signing) {
      throw new EntenteError(
        'PROTOCOL_VIOLATION',
        'secagg: this participant has no identity key to sign with',
        {
          field: 'secagg',
        },
      );
    }
    if (task.secagg.consortium !== consortium) {
      throw new EntenteError('PROTOCOL_VIOLATION', 'secagg.consortium: not the consortium this site joined', {
        field: 'secagg.consortium',
      });
    }
    const spec = parseModelSpec(task.modelSpec);
    const layout = trainer.describeLayout(spec);
    const segs = task.secagg.segments;
    if (
      segs.length !== layout.length + 1 + (task.clientDp?.indicatorNoiseStd ? 1 : 0) ||
      (task.clientDp?.indicatorNoiseStd && segs[layout.length]!.name !== CLIP_INDICATOR_SEGMENT) ||
      layout.some((t, i) => segs[i]!.name !== t.name || segs[i]!.lengthWords !== countParameters([t]))
    ) {
      throw new EntenteError('PROTOCOL_VIOLATION', 'secagg.segments: do not match the model layout', {
        field: 'secagg.segments',
      });
    }
    const context: SecAggRoundContext = {
      ...task.secagg,
      runId: task.runId,
      round: task.round,
      baseModelSha256: task.model.sha256,
      options: task.clientDp ? { ...task.train, clientDp: task.clientDp } : task.train,
    };
    checkRoundContext(context);
    const pinned = await pinnedKeysFor(context.cohort, signing.keyPem);
    await checkModelInLog(task);
    const roundKey = `${task.runId}/${task.round}`;
    const updateKey = computeUpdateKey(task, context);
    const cached = updateCache.get(roundKey);
    let vector: RingVector;
    let privacy: PrivacyReport | undefined;
    let trained: { meanLoss: number; numExamples: number } | undefined;
    if (cached && cached.key === updateKey) {
      // A retried attempt of a round not unmasked yet, with everything that shapes the update unchanged:
      // the noised update of the earlier attempt is sent again (masked afresh), so nothing new is spent.
      vector = cached.vector.slice();
      privacy = cached.privacy;
      journal('update-reused', {
        runId: task.runId,
        round: task.round,
        attempt: task.attempt,
        trainedFor: cached.attempt,
      });
      log.info(
        { run: task.runId, round: task.round, attempt: task.attempt, trainedFor: cached.attempt },
        'retried attempt: reusing the update trained for an earlier attempt (no new training, no new privacy spend)',
      );
    } else {
      const built = await buildUpdate();
      vector = built.vector;
      privacy = built.spent ? { ...built.spent, chargedAttempt: task.attempt } : undefined;
      trained = built.out;
      for (const k of updateCache.keys()) if (k.startsWith(`${task.runId}/`)) updateCache.delete(k);
      updateCache.set(roundKey, { key: updateKey, vector: vector.slice(), privacy, attempt: task.attempt });
    }
    /** Trains (charging the ledger first), then clips, quantizes and noises the weighted delta. */
    async function buildUpdate() {
      const base = await fetchModel(task.model, spec);
      const std = task.standardization ? toParams(task.standardization) : undefined;
      const data = std ? applyStandardization(split.train, std) : split.train;
      const words = countVectorWords(context);
      const clientNoise = task.clientDp
        ? planClientNoise(task.clientDp, context, segs[layout.length]!.offsetWords)
        : undefined;
      const privacyEvent = clientNoise
        ? enforceBudget({
            run: task.runId,
            round: task.round,
            mechanism: 'zcdp',
            rho: clientNoise.rho,
            neighbouring: 'add-remove-institution',
            attempt: task.attempt,
          })
        : planPrivacy(task, task.attempt);
      const out = trainWithPrivateRandomness(task, spec, base, data);
      const spent = spendPrivacy(privacyEvent);
      // Client-level DP: every institution counts once (weight 1) and its whole update is clipped to C.
      const weight = clientNoise ? 1 : Math.min(out.numExamples, context.maxWeight);
      const ratio = clientNoise ? 1 : weight / context.maxWeight;
      const deltas = out.weights.map((t, i) => {
        const before = base[i]!.data;
        const delta = new Float32Array(t.data.length);
        for (let j = 0; j < delta.length; j++) delta[j] = (t.data[j]! - before[j]!) * ratio;
        return delta;
      });
      const normBeforeClip = clientNoise ? clipL2Norm(deltas, task.clientDp!.clipNorm) : 0;
      const vector: RingVector =
        context.quantization.ringBits === 32 ? new Uint32Array(words) : new BigUint64Array(words);
      const uniform = createUniformSource();
      let clipped = 0;
      for (const [i, delta] of deltas.entries())
        clipped += quantizeInto(delta, vector, segs[i]!.offsetWords, context.quantization, uniform).clipped;
      if (clientNoise) {
        const tensorWords = segs[layout.length]!.offsetWords;
        addDiscreteGaussianShare(vector, tensorWords, clientNoise.shareVariance, noiseBits, 0);
        if (clientNoise.indicator) {
          // Adaptive clipping: 2b−1 (b: this update needed no clipping) plus this site's share of its noise.
          const at = segs[layout.length]!.offsetWords;
          writeSignedWord(vector, at, normBeforeClip <= task.clientDp!.clipNorm ? 1 : -1);
          addDiscreteGaussianShare(vector, 1, clientNoise.indicator.shareVariance, noiseBits, at);
        }
      }
      writeIntegerWord(vector, segs.at(-1)!.offsetWords, weight);
      if (clipped > 0) {
        log.warn(
          {
            run: task.runId,
            round: task.round,
            clipped,
            of: words - 1,
            clipRange: context.quantization.clipRange,
          },
          'update values were clipped before secure aggregation (reported to this site only)',
        );
      }
      return { vector, spent, out };
    }
    const { session, advert } = ParticipantSession.create({
      context,
      self: options.institution,
      identityKeyPem: signing.keyPem,
      // Peers are checked against the keys pinned in this site's own verified copy of the log only.
      pinnedKeyOf: (member) => pinned.get(member),
      input: vector,
    });
    for (const key of sessions.keys()) if (key.startsWith(`${task.runId}/`)) sessions.delete(key);
    sessions.set(sessionKey(task.runId, task.round, task.attempt), session);
    log.info(
      {
        run: task.runId,
        round: task.round,
        attempt: task.attempt,
        ...(trained ? { trainLoss: trained.meanLoss, examples: trained.numExamples } : { reused: true }),
      },
      'update ready; keys advertised for secure aggregation',
    );
    return {
      result: {
        kind: 'secagg-train',
        runId: task.runId,
        round: task.round,
        attempt: task.attempt,
        advert,
        ...(privacy ? { privacy } : {}),
      },
      chunks: [],
    };
  }

  /**
   * Stage advertise-keys of a secure sum (statistics or evaluation): derive the round context from the
   * task as the coordinator did, compute this site's sums from its own rows, encode them, then create the
   * session and its signed advert. Nothing is revealed in the clear.
   */
  async function computeSecAggSum(
    task: SecAggSumTask,
  ): Promise<{ result: TaskResult; chunks: Uint8Array[] }> {
    const signing = options.signing;
    if (!signing)
      throw new EntenteError(
        'PROTOCOL_VIOLATION',
        'secagg: this participant has no identity key to sign with',
        {
          field: 'secagg',
        },
      );
    if (task.secagg.consortium !== consortium)
      throw new EntenteError('PROTOCOL_VIOLATION', 'secagg.consortium: not the consortium this site joined', {
        field: 'secagg.consortium',
      });
    const context = buildSecureSumContext(task);
    if (task.plan) {
      // An evaluation plan's job: only a plan the verified log shows approved, exactly as approved.
      if (!checkRunApproved)
        throw new EntenteError(
          'PROTOCOL_VIOLATION',
          'governance: this site needs the audit log to check plans',
          {
            field: 'plan',
          },
        );
      checkPlanTask(task, await checkRunApproved.approvedPlan(task.plan.digest), options.dataSchemaDigest);
    }
    const pinned = await pinnedKeysFor(context.cohort, signing.keyPem);
    const std = task.standardization ? toParams(task.standardization) : undefined;
    let values: Float64Array;
    if (task.phase === 'statistics') {
      const stats = computeStatisticsValues(task, split.train);
      values = stats.values;
      if (stats.clipped > 0)
        log.warn(
          { run: task.runId, clipped: stats.clipped, maxAbsFeature: task.maxAbsFeature },
          'feature values were clipped before the statistics sum (reported to this site only)',
        );
    } else {
      if (!task.model)
        throw new EntenteError('INVALID_MESSAGE', 'model: an evaluation sum names its model', {
          field: 'model',
        });
      const spec = parseModelSpec(task.modelSpec);
      checkModelFitsData(spec, dataShape, options.institution);
      if (!task.plan)
        await checkModelInLog({ runId: task.runId, model: task.model, modelLog: task.modelLog });
      const weights = await fetchModel(task.model, spec);
      values = computeEvaluationValues(task, spec, weights, evaluationRows, std);
    }
    const { session, advert } = ParticipantSession.create({
      context,
      self: options.institution,
      identityKeyPem: signing.keyPem,
      pinnedKeyOf: (member) => pinned.get(member),
      input: encodeSecureSum(task.secureSum, values),
    });
    sessions.set(sessionKey(task.runId, task.round, task.attempt, task.phase), session);
    log.info(
      { run: task.runId, round: task.round, attempt: task.attempt, phase: task.phase },
      'sums ready; keys advertised for the secure sum',
    );
    return {
      result: { kind: 'secagg-sum', runId: task.runId, round: task.round, attempt: task.attempt, advert },
      chunks: [],
    };
  }

  async function computeSecAggStage(
    task: Exclude<
      Task,
      { kind: 'statistics' | 'train' | 'evaluate' | 'secagg-train' | 'secagg-sum' | 'plan' }
    >,
  ): Promise<{ result: TaskResult; chunks: Uint8Array[] }> {
    const key = sessionKey(task.runId, task.round, task.attempt, task.phase);
    const session = sessions.get(key);
    if (!session) {
      throw new EntenteError(
        'PROTOCOL_VIOLATION',
        'attempt: no secure-aggregation session of this site for it',
        {
          field: 'attempt',
        },
      );
    }
    const base = { runId: task.runId, round: task.round, attempt: task.attempt };
    try {
      if (task.kind === 'secagg-share-keys') {
        const out = await session.shareKeys(task.adverts);
        return { result: { ...base, kind: 'secagg-share-keys', shares: out.shares }, chunks: [] };
      }
      if (task.kind === 'secagg-masked-input') {
        const out = session.maskInput(task.shares);
        const bytes = new Uint8Array(out.masked.buffer, out.masked.byteOffset, out.masked.byteLength);
        const { ref, chunks } = createBlobRef(bytes);
        return {
          result: { ...base, kind: 'secagg-masked-input', maskedInput: ref, signature: out.sign(ref.sha256) },
          chunks,
        };
      }
      if (task.kind === 'secagg-consistency-check') {
        const out = session.signSurvivors(task.survivors);
        return {
          result: { ...base, kind: 'secagg-consistency-check', signature: out.signature },
          chunks: [],
        };
      }
      const out = session.unmask(task);
      // Durably noted before the shares leave: no other attempt of this round will be served.
      unmasked.record(task.runId, task.round, task.attempt, task.phase);
      if (!task.phase) updateCache.delete(`${task.runId}/${task.round}`);
      return {
        result: {
          ...base,
          kind: 'secagg-unmasking',
          selfSeedShares: [...out.selfSeedShares],
          maskingKeyShares: [...out.maskingKeyShares],
        },
        chunks: [],
      };
    } catch (err) {
      // A session that saw a protocol violation takes no further part in the round.
      if (err instanceof EntenteError && err.code === 'PROTOCOL_VIOLATION') sessions.delete(key);
      throw err;
    }
  }

  /** The site's own limits, checked before any data is touched. */
  function enforceSitePolicy(task: Task): void {
    checkTaskSchemaDigest(task, options.dataSchemaDigest);
    const site = options.site;
    if (!site) return;
    if (
      task.kind !== 'statistics' &&
      task.kind !== 'train' &&
      task.kind !== 'evaluate' &&
      task.kind !== 'secagg-train' &&
      task.kind !== 'secagg-sum'
    )
      return;
    const modelKind =
      'modelSpec' in task && task.modelSpec && typeof task.modelSpec === 'object'
        ? String((task.modelSpec as { kind?: unknown }).kind)
        : undefined;
    checkSitePolicy(site, {
      kind: task.kind,
      secureAggregation: task.kind === 'secagg-train' || task.kind === 'secagg-sum',
      cohortSize:
        task.kind === 'secagg-train' || task.kind === 'secagg-sum' ? task.secagg.cohort.length : undefined,
      modelKind,
      trainerId: trainer.id,
      trainerDigest: trainer === builtinTrainer ? computeBuiltinTrainerDigest() : undefined,
      dataSchemaDigest: task.dataSchemaDigest,
    });
  }

  async function compute(task: Task): Promise<{ result: TaskResult; chunks: Uint8Array[] }> {
    if (task.kind === 'plan') {
      // A dry run: answered from this site's own policy, ledger and schema; no data is touched.
      const answer = answerPlan({
        institution: options.institution,
        config: task.config,
        cohortSize: task.cohortSize,
        site: options.site,
        budget: options.privacyBudget,
        ledger: ledger.events(),
        trainerId: trainer.id,
        trainerDigest: trainer === builtinTrainer ? computeBuiltinTrainerDigest() : undefined,
        dataSchemaDigest: options.dataSchemaDigest,
        dataShape,
      });
      journal('plan-answered', { runId: task.runId, go: answer.go });
      return { result: { kind: 'plan', runId: task.runId, round: task.round, ...answer }, chunks: [] };
    }
    enforceSitePolicy(task);
    if (
      options.requireApprovedRuns &&
      (task.kind === 'statistics' ||
        task.kind === 'train' ||
        task.kind === 'evaluate' ||
        task.kind === 'secagg-train' ||
        (task.kind === 'secagg-sum' && !task.plan))
    ) {
      if (!checkRunApproved)
        throw new EntenteError(
          'PROTOCOL_VIOLATION',
          'governance: this site needs the audit log to check runs',
          {
            field: 'run',
          },
        );
      // Before any data is touched: the log must show this run approved by the policy's quorum.
      await checkRunApproved.check(task.runId);
      // And the task must carry the settings the quorum approved, not others.
      checkTaskConformance(task, checkRunApproved.approvedConfig(task.runId)!);
    }
    if (task.kind === 'train' || task.kind === 'evaluate' || task.kind === 'secagg-train')
      // A model that does not fit this site's records cannot be executed here: said once, as a refusal.
      checkModelFitsData(parseModelSpec(task.modelSpec), dataShape, options.institution);
    if (
      task.kind === 'secagg-train' ||
      task.kind === 'secagg-sum' ||
      task.kind === 'secagg-share-keys' ||
      task.kind === 'secagg-masked-input' ||
      task.kind === 'secagg-consistency-check' ||
      task.kind === 'secagg-unmasking'
    ) {
      // At most one unmasked sum per (run, round, phase): no stage of another attempt of a round this
      // site already unmasked, not even training (which would spend privacy for nothing).
      unmasked.check(task.runId, task.round, task.attempt, task.phase);
    }
    if (task.kind === 'secagg-train') return computeSecAggTrain(task);
    if (task.kind === 'secagg-sum') return computeSecAggSum(task);
    if (
      task.kind === 'secagg-share-keys' ||
      task.kind === 'secagg-masked-input' ||
      task.kind === 'secagg-consistency-check' ||
      task.kind === 'secagg-unmasking'
    ) {
      return computeSecAggStage(task);
    }
    if (task.kind === 'statistics') {
      const s = computeFeatureStats(split.train);
      return {
        result: {
          kind: 'statistics',
          runId: task.runId,
          round: task.round,
          count: s.count,
          sum: [...s.sum],
          sumSquares: [...s.sumSquares],
        },
        chunks: [],
      };
    }
    const spec = parseModelSpec(task.modelSpec);
    const weights = await fetchModel(task.model, spec);
    const std = task.standardization ? toParams(task.standardization) : undefined;
    if (task.kind === 'evaluate') {
      await checkModelInLog(task);
      const holdout = std ? applyStandardization(split.test, std) : split.test;
      if (isRegressionSpec(spec)) {
        // A linear model: MSE as the loss, and the sums the coordinator combines into MAE, RMSE and R².
        const m = evaluateRegression(spec, weights, holdout);
        const { numExamples: _n, ...sums } = m.sums;
        return {
          result: {
            kind: 'evaluate',
            runId: task.runId,
            round: task.round,
            numExamples: m.numExamples,
            loss: m.mse,
            regression: sums,
          },
          chunks: [],
        };
      }
      const r = trainer.evaluate(spec, weights, holdout);
      return {
        result: {
          kind: 'evaluate',
          runId: task.runId,
          round: task.round,
          numExamples: r.numExamples,
          loss: r.loss,
          accuracy: r.accuracy,
        },
        chunks: [],
      };
    }
    await checkModelInLog(task);
    const train = std ? applyStandardization(split.train, std) : split.train;
    const privacyEvent = planPrivacy(task);
    const out = trainWithPrivateRandomness(task, spec, weights, train);
    const privacy = spendPrivacy(privacyEvent);
    const bytes = encodeSafetensors(out.weights, {
      run: task.runId,
      round: String(task.round),
      institution: options.institution,
    });
    const { ref, chunks } = createBlobRef(bytes);
    return {
      result: {
        kind: 'train',
        runId: task.runId,
        round: task.round,
        update: ref,
        numExamples: out.numExamples,
        trainLoss: out.meanLoss,
        ...(privacy ? { privacy } : {}),
      },
      chunks,
    };
  }

  async function refuse(task: Task, err: EntenteError): Promise<void> {
    const refusal: Refusal = {
      at: Date.now(),
      taskId: task.taskId,
      kind: task.kind,
      round: task.round,
      code: err.code,
      field: err.field,
      message: err.message,
    };
    refusals.push(refusal);
    log.warn({ task: task.taskId, code: err.code, field: err.field }, `task refused: ${err.message}`);
    journal('task-refused', { ...refusal });
    await withRetry(() =>
      currentClient().postJson(
        `/v1/tasks/${encodeURIComponent(task.taskId)}/result`,
        {
          kind: 'refusal',
          runId: task.runId,
          round: task.round,
          code: err.code,
          ...(err.field ? { field: err.field.slice(0, 200) } : {}),
          message: err.message.slice(0, 1000),
        },
        30_000,
      ),
    );
    if (
      options.requireApprovedRuns &&
      err.code === 'PROTOCOL_VIOLATION' &&
      err.message.startsWith('governance:')
    )
      await raiseGovernanceIncident(err.message);
  }

  /** A broken rule seen in the log is raised as an incident (once per finding): new rounds pause for all. */
  const raisedIncidents = new Set<string>();
  async function raiseGovernanceIncident(message: string): Promise<void> {
    const finding = message.replace(/^governance: /, '');
    if (raisedIncidents.has(finding)) return;
    raisedIncidents.add(finding);
    const reason = `${options.institution} found in the audit log: ${finding}`.slice(0, 2000);
    journal('incident-raised', { reason });
    await withRetry(() => currentClient().postJson('/v1/incidents', { reason }, 30_000));
  }

  async function handle(task: Task): Promise<void> {
    log.info({ task: task.taskId, kind: task.kind, round: task.round }, 'task received');
    let computed: { result: TaskResult; chunks: Uint8Array[] };
    try {
      computed = await compute(task);
    } catch (err) {
      if (
        err instanceof EntenteError &&
        (err.code === 'PROTOCOL_VIOLATION' ||
          err.code === 'PRIVACY_BUDGET_EXCEEDED' ||
          err.code === 'SITE_POLICY_REFUSED' ||
          CANNOT_EXECUTE.has(err.code))
      ) {
        await refuse(task, err);
        return;
      }
      if (!(err instanceof EntenteError)) {
        // Not a coded outcome: the trainer or a decoder failed on this task; the same task fails again.
        await refuse(
          task,
          new EntenteError(
            'INTERNAL',
            `the task failed at this site: ${String((err as Error)?.message ?? err).slice(0, 300)}`,
          ),
        );
        return;
      }
      throw err;
    }
    const { result, chunks } = computed;
    const delayMs = typeof options.slowMs === 'number' ? options.slowMs : (options.slowMs?.[task.kind] ?? 0);
    if (delayMs > 0) await sleep(delayMs, signal);
    try {
      await withRetry(async () => {
        for (const c of chunks) await currentClient().putBytes(`/v1/blobs/${sha256Hex(c)}`, c, 120_000);
        await currentClient().postJson(
          `/v1/tasks/${encodeURIComponent(task.taskId)}/result`,
          result,
          120_000,
        );
      });
    } catch (err) {
      // The coordinator refused this result for good (its shape, not the moment): computing it again
      // would give the same answer, so the task is reported once as one this site cannot execute.
      if (err instanceof EntenteError && CANNOT_EXECUTE.has(err.code)) {
        await refuse(
          task,
          new EntenteError(err.code, `the coordinator refused its result: ${err.message}`, {
            ...(err.field ? { field: err.field } : {}),
          }),
        );
        return;
      }
      throw err;
    }
    log.info({ task: task.taskId }, 'result accepted');
    // Commitments of training rounds are followed until the log closes their round; those of secure sums
    // (statistics, evaluation) are logged with their phase and not followed yet.
    if (witness && result.kind === 'secagg-masked-input' && !('phase' in task && task.phase)) {
      witness.recordCommitment({
        run: result.runId,
        round: result.round,
        attempt: result.attempt,
        sha256: result.maskedInput.sha256,
      });
    } else if (witness && result.kind === 'train') {
      witness.recordCommitment({
        run: result.runId,
        round: result.round,
        attempt: 0,
        sha256: result.update.sha256,
      });
    }
  }

  async function loop(): Promise<void> {
    const registered = await withRetry(() =>
      currentClient().postJson('/v1/participants/register', {
        protocol: PROTOCOL_VERSION,
        trainers: [trainer.id],
        software: 'entente/0.1.0',
        ...(options.dataSchemaDigest ? { dataSchemaDigest: options.dataSchemaDigest } : {}),
        data: dataShape,
      }),
    );
    if (!registered) return;
    const info = parseMessage(registerResponseSchema, registered.body, 'register');
    consortium = info.consortium;
    log.info({ consortium: info.consortium }, 'registered');
    // Best effort: a missed heartbeat (coordinator down, or no endpoint recorded while it restarts) is
    // made up by the next one; the poll loop below notices and backs off.
    const heartbeat = setInterval(() => {
      void (async () => currentClient().postJson('/v1/heartbeat', {}, 5_000))().catch((err: unknown) =>
        log.debug({ code: (err as EntenteError).code }, `heartbeat not delivered: ${(err as Error).message}`),
      );
    }, info.heartbeatMs);
    /** False after a failed attempt: the next poll is then not woken by the checkpoint that failed. */
    let witnessOk = true;
    /** Witnesses the newest checkpoint; a split view or rollback stops this site for good. */
    const witnessLog = async (): Promise<void> => {
      if (!witness || signal.aborted) return;
      try {
        await witness.cosignPending();
        witnessOk = true;
      } catch (err) {
        witnessOk = false;
        if (witness.halted) {
          log.error(
            { code: 'PROTOCOL_VIOLATION' },
            `audit log incident, this site stops taking part: ${witness.halted}`,
          );
          journal('incident', { kind: 'audit-log', message: witness.halted });
          throw err;
        }
        log.warn(
          { code: (err as EntenteError).code },
          `could not witness the audit log: ${(err as Error).message}`,
        );
        await sleep(1_000, signal); // a short pause before polling again
      }
    };
    try {
      while (!signal.aborted) {
        await witnessLog();
        let task: Task | undefined;
        try {
          const waitMs = options.pollWaitMs ?? 20_000;
          // The newest checkpoint this site is done with (cosigned or refused): only a newer one, when
          // there is no task, ends the wait. After a failed attempt the coordinator's current one counts
          // as seen (the parameter is left out), so the site retries when a newer one appears or after
          // its next task, never in a loop on the same one.
          const seen = witness && witnessOk ? `&checkpoint=${witness.witnessedSize}` : '';
          const r = await currentClient().getJson(`/v1/tasks/next?waitMs=${waitMs}${seen}`, waitMs + 10_000);
          failures = 0;
          if (r.status === 204 || r.body === null) continue;
          task = parseMessage(taskSchema, r.body, 'task');
        } catch (err) {
          if (signal.aborted) break;
          if (err instanceof EntenteError && (err.code === 'UNAVAILABLE' || err.code === 'TIMEOUT')) {
            await backoff(err);
            continue;
          }
          // Not a member, or another live process of this institution took its place: stop, coded.
          if (err instanceof EntenteError && (err.code === 'UNKNOWN_PARTICIPANT' || err.code === 'CONFLICT'))
            throw err;
          await backoff(err);
          continue;
        }
        try {
          await handle(task);
        } catch (err) {
          if (
            err instanceof EntenteError &&
            (err.code === 'DUPLICATE_RESULT' || err.code === 'STALE_ROUND')
          ) {
            log.info({ task: task.taskId, code: err.code }, 'task no longer needs a result');
            continue;
          }
          log.error(
            { task: task.taskId, code: (err as EntenteError).code },
            `task failed: ${(err as Error).message}`,
          );
          await sleep(1_000, signal);
        }
      }
    } finally {
      clearInterval(heartbeat);
    }
  }

  const done = loop().finally(async () => {
    await client?.close().catch(() => {});
  });
  return {
    done,
    refusals: () => [...refusals],
    traffic: () => ({
      sent: trafficBase.sent + (client?.traffic.sent ?? 0),
      received: trafficBase.received + (client?.traffic.received ?? 0),
    }),
    async stop() {
      controller.abort();
      await client?.destroy().catch(() => {});
      await done.catch(() => {});
    },
  };
}
