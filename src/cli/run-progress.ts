/**
 * `entente run start --wait`: follows a run until it stops running, polling GET /v1/runs/:runId. On a
 * terminal it draws a progress bar for the run with a live line (round, phase, cohort, survivors, last
 * loss/accuracy, ε, elapsed) and prints a permanent line as each round finishes (cli-progress); on a
 * pipe or file it prints only the plain line per finished round, never redrawing.
 */
import { SingleBar } from 'cli-progress';
import type { MtlsClient } from '../transport/index.ts';
import { type RunView, collectRoundMetrics, formatRoundLine, isRoundFinished } from './run-view.ts';

export interface FollowOptions {
  /** Where progress goes; undefined prints none (e.g. --json on a pipe). */
  stream: NodeJS.WriteStream | undefined;
  pollMs?: number;
}

type LiveView = RunView & { cohort?: string[]; received?: string[] };

/** Polls until the run is no longer running; returns its final view. */
export async function followRun(client: MtlsClient, runId: string, options: FollowOptions): Promise<RunView> {
  const path = `/v1/runs/${encodeURIComponent(runId)}`;
  const stream = options.stream;
  const printed = new Set<number>();
  let bar: SingleBar | undefined;
  const emit = (line: string): void => {
    // Over the bar's line: the bar is drawn again below it at its next render.
    if (bar) {
      stream!.cursorTo(0);
      stream!.clearLine(0);
    }
    stream?.write(`${line}\n`);
  };
  try {
    for (;;) {
      const view = (await client.getJson<LiveView>(path)).body!;
      for (const r of view.rounds)
        if (!printed.has(r.round) && isRoundFinished(view, r)) {
          printed.add(r.round);
          emit(formatRoundLine(view, r));
        }
      if (stream?.isTTY) {
        const rows = collectRoundMetrics(view);
        const lastLoss = rows.filter((m) => m.loss !== null).at(-1);
        const lastAccuracy = rows.filter((m) => m.accuracy !== null).at(-1);
        const epsilon = rows.filter((m) => m.epsilon !== null).at(-1)?.epsilon;
        const payload = {
          round: view.round,
          phase: view.status === 'running' ? view.phase : view.status,
          cohort: view.cohort?.length ?? 0,
          survivors: view.received?.length ?? 0,
          loss: lastLoss?.loss?.toFixed(4) ?? '-',
          accuracy: lastAccuracy?.accuracy?.toFixed(4) ?? '-',
          epsilon: epsilon === undefined || epsilon === null ? '-' : epsilon.toFixed(3),
          elapsed: `${((Date.now() - view.createdAt) / 1000).toFixed(0)}s`,
        };
        if (!bar) {
          bar = new SingleBar({
            stream,
            hideCursor: true,
            clearOnComplete: false,
            format:
              '{bar} {value}/{total} rounds | round {round} {phase} | cohort {cohort} survivors {survivors} | loss {loss} accuracy {accuracy} | ε {epsilon} | {elapsed}',
          });
          bar.start(view.totalRounds, printed.size, payload);
        } else bar.update(printed.size, payload);
      }
      if (view.status !== 'running') return view;
      await new Promise((res) => setTimeout(res, options.pollMs ?? 500));
    }
  } finally {
    bar?.stop();
  }
}
