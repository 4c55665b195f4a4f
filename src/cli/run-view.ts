/**
 * What the CLI shows of a run and of the coordinator: per-round metrics (one row per round and phase)
 * from the coordinator's run view (GET /v1/runs/:runId), as CSV, JSON or a table; the one-line summary
 * of a finished round; and the readable `entente status` tables. Pure functions of the views.
 */
import { safeCallerText } from '../core/caller-text.ts';

/** The parts of GET /v1/runs/:runId the CLI reads. */
export interface RunView {
  id: string;
  status: string;
  phase: string;
  round: number;
  totalRounds: number;
  createdAt: number;
  finishedAt: number | null;
  config: { rounds?: number; evaluate?: boolean; model?: unknown; dataSchemaDigest?: string };
  model: { sha256: string; bytes: number } | null;
  standardization: { mean: number[]; std: number[] } | null;
  /** Why a run failed (status `failed`), else null. */
  failure?: { code: string; round: number; attempt: number; message: string } | null;
  secureAggregation: {
    round: number;
    /** train, statistics or evaluate (absent from views of older coordinators: train). */
    phase?: string;
    attempt: number;
    cohort: string[];
    survivors: string[] | null;
    outcome: string;
  }[];
  rounds: RoundView[];
}

export interface RoundView {
  round: number;
  trainCohort?: number;
  evalCohort?: number;
  evaluators?: number;
  epsilon?: number | null;
  contributors: string[];
  trainExamples: number | null;
  trainLoss: number | null;
  evalExamples: number | null;
  evalLoss: number | null;
  evalAccuracy: number | null;
  modelOut: string | null;
  startedAt: number | null;
  trainedAt: number | null;
  evaluatedAt: number | null;
}

/** One phase of one round. `epsilon` is the largest ε any institution reported for this run after the round. */
export interface RoundMetrics {
  round: number;
  phase: 'train' | 'evaluate';
  cohort: number;
  survivors: number;
  examples: number | null;
  loss: number | null;
  accuracy: number | null;
  epsilon: number | null;
  wallMs: number | null;
}

export const METRICS_COLUMNS = [
  'round',
  'phase',
  'cohort',
  'survivors',
  'examples',
  'loss',
  'accuracy',
  'epsilon',
  'wallMs',
] as const satisfies readonly (keyof RoundMetrics)[];

/** The per-round metrics of a run: a train row per round, then its evaluate row once one was opened. */
export function collectRoundMetrics(view: RunView): RoundMetrics[] {
  const out: RoundMetrics[] = [];
  for (const r of view.rounds) {
    // Under secure aggregation the cohort is that of the round's last attempt.
    const attempt = view.secureAggregation
      .filter((a) => a.round === r.round && (a.phase ?? 'train') === 'train')
      .at(-1);
    out.push({
      round: r.round,
      phase: 'train',
      cohort: attempt ? attempt.cohort.length : (r.trainCohort ?? r.contributors.length),
      survivors: r.contributors.length,
      examples: r.trainExamples,
      loss: r.trainLoss,
      accuracy: null,
      epsilon: r.epsilon ?? null,
      wallMs: r.startedAt !== null && r.trainedAt !== null ? r.trainedAt - r.startedAt : null,
    });
    if ((r.evalCohort ?? 0) > 0 || r.evaluatedAt !== null)
      out.push({
        round: r.round,
        phase: 'evaluate',
        cohort: r.evalCohort ?? r.evaluators ?? 0,
        survivors: r.evaluators ?? 0,
        examples: r.evalExamples,
        loss: r.evalLoss,
        accuracy: r.evalAccuracy,
        epsilon: r.epsilon ?? null,
        wallMs: r.trainedAt !== null && r.evaluatedAt !== null ? r.evaluatedAt - r.trainedAt : null,
      });
  }
  return out;
}

/** RFC 4180 CSV with a header line; empty cells for unknown values; numbers in full precision. */
export function formatMetricsCsv(rows: readonly RoundMetrics[]): string {
  const lines = [METRICS_COLUMNS.join(',')];
  for (const row of rows)
    lines.push(METRICS_COLUMNS.map((c) => (row[c] === null ? '' : String(row[c]))).join(','));
  return `${lines.join('\n')}\n`;
}

const fixed = (x: number | null | undefined, digits = 4): string =>
  x === null || x === undefined ? '-' : x.toFixed(digits);
const seconds = (ms: number | null): string => (ms === null ? '-' : `${(ms / 1000).toFixed(1)}s`);

/** Columns padded to their widest cell (the first row is the header). */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => cell.padEnd(widths[c]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function formatMetricsTable(rows: readonly RoundMetrics[]): string {
  return formatTable([
    ['round', 'phase', 'cohort', 'survivors', 'examples', 'loss', 'accuracy', 'ε', 'wall'],
    ...rows.map((m) => [
      String(m.round),
      m.phase,
      String(m.cohort),
      String(m.survivors),
      m.examples === null ? '-' : String(m.examples),
      fixed(m.loss),
      fixed(m.accuracy),
      fixed(m.epsilon, 3),
      seconds(m.wallMs),
    ]),
  ]);
}

/** True when round `r` will change no more: evaluated, or trained and the run has moved past it. */
export function isRoundFinished(view: RunView, r: RoundView): boolean {
  if (r.evaluatedAt !== null) return true;
  if (r.trainedAt === null) return false;
  return view.config.evaluate === false || view.round > r.round || view.status !== 'running';
}

/** One plain line for a finished round: cohort, survivors, losses, accuracy, ε, time since the run began. */
export function formatRoundLine(view: RunView, r: RoundView): string {
  const rows = collectRoundMetrics({ ...view, rounds: [r] });
  const train = rows.find((m) => m.phase === 'train')!;
  const evaluate = rows.find((m) => m.phase === 'evaluate');
  const end = r.evaluatedAt ?? r.trainedAt;
  const parts = [
    `round ${r.round}/${view.totalRounds}`,
    `train cohort ${train.cohort} survivors ${train.survivors} loss ${fixed(train.loss)}`,
    ...(evaluate
      ? [
          `evaluate cohort ${evaluate.cohort} survivors ${evaluate.survivors} loss ${fixed(evaluate.loss)} accuracy ${fixed(evaluate.accuracy)}`,
        ]
      : []),
    `ε ${fixed(train.epsilon, 3)}`,
    `elapsed ${seconds(end === null ? null : end - view.createdAt)}`,
  ];
  return parts.join(' | ');
}

/** The parts of GET /v1/status the CLI reads. */
export interface StatusView {
  consortium: string;
  paused: boolean;
  participants: { id: string; registered: boolean; lastSeenMsAgo: number | null; available: boolean }[];
  runs: { id: string; status: string }[];
  events: {
    at: number;
    kind: string;
    participant: string | null;
    run_id: string | null;
    round: number | null;
    code: string | null;
    message: string;
  }[];
}

/** `entente status` without --json: members, runs, then the newest events. */
export function formatStatus(status: StatusView, eventsShown = 10): string {
  const out = [`consortium ${status.consortium}${status.paused ? ' (PAUSED: an incident is open)' : ''}`, ''];
  out.push(
    formatTable([
      ['member', 'registered', 'available', 'last seen'],
      ...status.participants.map((p) => [
        p.id,
        p.registered ? 'yes' : 'no',
        p.available ? 'yes' : 'no',
        p.lastSeenMsAgo === null ? 'never' : `${(p.lastSeenMsAgo / 1000).toFixed(1)}s ago`,
      ]),
    ]),
    '',
  );
  out.push(
    status.runs.length === 0
      ? 'no runs'
      : formatTable([['run', 'status'], ...status.runs.map((r) => [r.id, r.status])]),
  );
  const events = status.events.slice(0, eventsShown);
  if (events.length > 0) {
    out.push('', `newest ${events.length} of ${status.events.length} events:`);
    out.push(
      formatTable([
        ['time', 'kind', 'member', 'run', 'code', 'message'],
        ...events.map((e) => [
          new Date(e.at).toISOString(),
          e.kind,
          e.participant ?? '-',
          e.run_id === null ? '-' : `${e.run_id}${e.round === null ? '' : ` r${e.round}`}`,
          e.code ?? '-',
          safeCallerText(e.message, 80),
        ]),
      ]),
    );
  }
  return out.join('\n');
}

/** `entente status --run ID` without --json: the run's state, then its per-round metrics. */
export function formatRunStatus(view: RunView): string {
  const failure = view.failure
    ? ` (${view.failure.code} in round ${view.failure.round}: ${safeCallerText(view.failure.message, 200)})`
    : '';
  const head = `run ${view.id}: ${view.status}, ${view.status === 'running' ? `round ${view.round}/${view.totalRounds}, phase ${view.phase}` : `${view.rounds.length} rounds`}${failure}`;
  const rows = collectRoundMetrics(view);
  return rows.length === 0 ? `${head}\nno round finished yet` : `${head}\n\n${formatMetricsTable(rows)}`;
}
