/**
 * Fixed-window request limits for paths anyone can reach (enrollment): at most `perKey` requests per
 * window from one key (an address) and at most `total` per window from all keys together. The table
 * of keys is bounded without ever forgetting a live window: when it is full, only expired windows are
 * evicted (oldest first); if every entry is still live, the new key is refused rather than another
 * key's count reset. Pure: the time comes in as an argument.
 */

export interface RequestLimiterOptions {
  /** Requests one key may make per window. */
  readonly perKey: number;
  /** Requests all keys together may make per window. */
  readonly total: number;
  readonly windowMs: number;
  /** Most keys tracked at once (default 10,000). */
  readonly maxKeys?: number;
}

/** Why a request was refused, or null when it is admitted. */
export type LimitVerdict = null | 'per-key' | 'total' | 'table-full';

interface Window {
  start: number;
  count: number;
}

export class RequestLimiter {
  private readonly keys = new Map<string, Window>();
  private readonly global: Window = { start: Number.NEGATIVE_INFINITY, count: 0 };
  private readonly maxKeys: number;

  constructor(private readonly options: RequestLimiterOptions) {
    if (!(options.perKey >= 1 && options.total >= 1 && options.windowMs > 0))
      throw new RangeError('perKey, total and windowMs must be positive');
    this.maxKeys = options.maxKeys ?? 10_000;
  }

  /** Keys currently tracked (for tests and status). */
  get size(): number {
    return this.keys.size;
  }

  /** Counts a request from `key` at `now` and says whether it is admitted (null) or why not. */
  check(key: string, now: number): LimitVerdict {
    const { perKey, total, windowMs } = this.options;
    if (now - this.global.start >= windowMs) {
      this.global.start = now;
      this.global.count = 0;
    }
    const w = this.keys.get(key);
    const live = w !== undefined && now - w.start < windowMs;
    if (live && w.count >= perKey) {
      w.count++;
      return 'per-key';
    }
    if (this.global.count >= total) return 'total';
    if (!live) {
      if (w !== undefined) this.keys.delete(key);
      else if (this.keys.size >= this.maxKeys && !this.evictExpired(now)) return 'table-full';
      // Re-inserted at the end: the map stays ordered by window start, oldest first.
      this.keys.set(key, { start: now, count: 1 });
    } else w.count++;
    this.global.count++;
    return null;
  }

  /** Drops expired windows from the oldest on; true when at least one slot was freed. */
  private evictExpired(now: number): boolean {
    let freed = false;
    for (const [key, w] of this.keys) {
      if (now - w.start < this.options.windowMs) break;
      this.keys.delete(key);
      freed = true;
    }
    return freed;
  }
}
