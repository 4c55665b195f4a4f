/**
 * Refusals of a member's requests enter the permanent audit log in bounded number: per member and
 * window, the first few are recorded in full (evidence with their message) and the rest only counted;
 * when the window ends, one summary gives the count of every code (all refusals of the window). So a
 * member sending a million bad requests adds at most `fullPerWindow` + 1 entries per window. Pure:
 * the time comes in as an argument.
 */

export interface RefusalSummary {
  readonly participant: string;
  /** First and last refusal of the window (ms since the epoch). */
  readonly from: number;
  readonly to: number;
  /** Refusals of the window by code (those recorded in full included). */
  readonly counts: Readonly<Record<string, number>>;
  /** How many of them were recorded in full. */
  readonly recordedInFull: number;
}

interface Window {
  start: number;
  last: number;
  full: number;
  counts: Map<string, number>;
}

export class RefusalSummarizer {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly options: {
      /** Length of a member's window (ms). */
      readonly windowMs: number;
      /** Refusals per member and window recorded in full before the rest are only counted. */
      readonly fullPerWindow: number;
    },
  ) {}

  /**
   * Counts a refusal of `participant` with `code` at `now`; true when it is to be recorded in full.
   * Summaries of windows that ended are taken with `due` (call it before `note` for the same time).
   */
  note(participant: string, code: string, now: number): boolean {
    let w = this.windows.get(participant);
    if (!w) {
      w = { start: now, last: now, full: 0, counts: new Map() };
      this.windows.set(participant, w);
    }
    w.last = Math.max(w.last, now);
    w.counts.set(code, (w.counts.get(code) ?? 0) + 1);
    if (w.full < this.options.fullPerWindow) {
      w.full++;
      return true;
    }
    return false;
  }

  /**
   * The summaries of windows that ended by `now` (all windows when `all`), removed from the table. A
   * window whose refusals were all recorded in full needs no summary and yields none.
   */
  due(now: number, all = false): RefusalSummary[] {
    const out: RefusalSummary[] = [];
    for (const [participant, w] of this.windows) {
      if (!all && now - w.start < this.options.windowMs) continue;
      this.windows.delete(participant);
      const total = [...w.counts.values()].reduce((a, b) => a + b, 0);
      if (total === w.full) continue;
      const codes = [...w.counts.keys()].sort();
      out.push({
        participant,
        from: w.start,
        to: w.last,
        counts: Object.fromEntries(codes.map((c) => [c, w.counts.get(c)!])),
        recordedInFull: w.full,
      });
    }
    return out;
  }
}
