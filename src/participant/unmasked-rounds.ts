/**
 * The rounds this site has released unmasking shares for, on its own disk (JSON lines, append-only,
 * fsynced before the shares leave). Secure aggregation (Bonawitz et al. CCS 2017) hides one update
 * only while a round is unmasked once: if a coordinator ran a complete attempt, then another attempt
 * of the same round with a different cohort, the two unmasked sums would differ by exactly the updates
 * of the members not in both, so it could subtract its way to one site's update. A site therefore
 * contributes to at most one unmasked sum per (run, round): once it answered the Unmasking stage of
 * one attempt it refuses every stage of any other attempt of that round, across restarts. An attempt
 * it took part in that was aborted before its Unmasking stage released nothing and may be retried.
 * A lost record would let the attack through, so an unreadable line stops the site from starting.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { EntenteError } from '../core/errors.ts';

export interface UnmaskedRounds {
  /** The attempt of (run, round) this site released unmasking shares for, if any. */
  unmaskedAttempt(run: string, round: number, phase?: SumPhase): number | undefined;
  /**
   * Throws PROTOCOL_VIOLATION (field 'attempt') when (run, round) was already unmasked in an attempt
   * other than `attempt`; the same attempt (a repeated stage of the unmasked attempt) passes.
   */
  check(run: string, round: number, attempt: number, phase?: SumPhase): void;
  /** Records durably that (run, round) is unmasked in `attempt`; call before the shares leave. */
  record(run: string, round: number, attempt: number, phase?: SumPhase): void;
}

/** Which sum of a round: its training delta (the default), or its statistics or evaluation sum. */
export type SumPhase = 'train' | 'statistics' | 'evaluate' | 'rollout' | 'monitor';

interface Line {
  readonly run: string;
  readonly round: number;
  readonly attempt: number;
  readonly at: number;
  /** Absent for a training round (lines written before sums of other phases existed). */
  readonly phase?: SumPhase;
}

const keyOf = (run: string, round: number, phase: SumPhase = 'train'): string =>
  `${run}\u0000${round}\u0000${phase}`;

function isLine(v: unknown): v is Line {
  const l = v as Line;
  return (
    l !== null &&
    typeof l === 'object' &&
    typeof l.run === 'string' &&
    l.run.length > 0 &&
    Number.isSafeInteger(l.round) &&
    l.round >= 0 &&
    Number.isSafeInteger(l.attempt) &&
    l.attempt >= 0 &&
    (l.phase === undefined ||
      l.phase === 'train' ||
      l.phase === 'statistics' ||
      l.phase === 'evaluate' ||
      l.phase === 'rollout' ||
      l.phase === 'monitor')
  );
}

/**
 * Opens (or starts) the record at `path`; in memory only when `path` is undefined. Throws
 * INVALID_CONFIG naming the line when the file holds a line that is not a record, or two different
 * attempts for one round.
 */
export function openUnmaskedRounds(path: string | undefined, now: () => number = Date.now): UnmaskedRounds {
  const unmasked = new Map<string, number>();
  if (path && existsSync(path)) {
    const lines = readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '');
    for (const [i, text] of lines.entries()) {
      let line: unknown;
      try {
        line = JSON.parse(text);
      } catch {
        line = undefined;
      }
      if (!isLine(line))
        throw new EntenteError('INVALID_CONFIG', `${path}: line ${i + 1} is not an unmasked-round record`, {
          field: 'unmaskedRounds',
        });
      const seen = unmasked.get(keyOf(line.run, line.round, line.phase));
      if (seen !== undefined && seen !== line.attempt)
        throw new EntenteError(
          'INVALID_CONFIG',
          `${path}: line ${i + 1} records a second unmasked attempt of run ${line.run} round ${line.round}`,
          { field: 'unmaskedRounds' },
        );
      unmasked.set(keyOf(line.run, line.round, line.phase), line.attempt);
    }
  }
  const unmaskedAttempt = (run: string, round: number, phase?: SumPhase): number | undefined =>
    unmasked.get(keyOf(run, round, phase));
  return {
    unmaskedAttempt,
    check(run, round, attempt, phase) {
      const done = unmaskedAttempt(run, round, phase);
      if (done !== undefined && done !== attempt)
        throw new EntenteError(
          'PROTOCOL_VIOLATION',
          `attempt: round ${round} of run ${run} was already unmasked in attempt ${done}; this site contributes to at most one unmasked sum per round, so attempt ${attempt} is refused`,
          { field: 'attempt' },
        );
    },
    record(run, round, attempt, phase) {
      const done = unmaskedAttempt(run, round, phase);
      if (done === attempt) return;
      if (done !== undefined)
        throw new EntenteError(
          'PROTOCOL_VIOLATION',
          `attempt: round ${round} of run ${run} was already unmasked in attempt ${done}`,
          { field: 'attempt' },
        );
      if (path) {
        const fd = openSync(path, 'a', 0o600);
        try {
          const line: Line = {
            run,
            round,
            attempt,
            at: now(),
            ...(phase && phase !== 'train' ? { phase } : {}),
          };
          writeSync(fd, `${JSON.stringify(line)}\n`);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      }
      unmasked.set(keyOf(run, round, phase), attempt);
    },
  };
}
