/**
 * A site's monitoring sums of one model on its own disk: `<site>/monitoring/<model sha256>.json`,
 * written whole through a temporary file that is fsynced and renamed (then the directory fsynced), so
 * a crash leaves the previous file or the new one. It holds counts only (evaluation/monitoring-layout.ts):
 * never a row, a feature value or a prediction of one row. `participant serve` and `participant score`
 * add to the same file; a file whose spec or model differs from the model being served is refused.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { EntenteError } from '../core/errors.ts';
import { listFeatureColumns } from '../data/index.ts';
import {
  MONITORING_FORMAT,
  type MonitoringLayout,
  type MonitoringSpec,
  accumulateMonitoring,
  checkMonitoringSums,
  createMonitoringLayout,
  createMonitoringSums,
  monitoringSlice,
} from '../evaluation/index.ts';
import { countClasses } from '../models/index.ts';
import {
  type WorkspaceLock,
  acquireWorkspaceLock,
  ensurePrivateDir,
  writePrivateFile,
} from '../storage/index.ts';
import type { ScoringModel } from './scoring-model.ts';

const MAX_MONITORING_FILE_BYTES = 64 * 1024 * 1024;

const monitoringFileSchema = z
  .object({
    format: z.literal(MONITORING_FORMAT),
    model: z.string().regex(/^[0-9a-f]{64}$/),
    spec: z.object({
      numFeatures: z.number().int(),
      numClasses: z.number().int(),
      featureBins: z.number().int(),
      scoreBins: z.number().int(),
    }),
    inputColumns: z.array(z.string()),
    classes: z.array(z.string()),
    sums: z.record(z.string(), z.array(z.number())),
    updatedAt: z.string(),
  })
  .strict();
export type MonitoringFile = z.infer<typeof monitoringFileSchema>;

/** The monitoring spec of a classifier: one histogram per model input column, default bins. */
export function monitoringSpecOf(model: ScoringModel): MonitoringSpec {
  return {
    numFeatures: listFeatureColumns(model.schema).length,
    numClasses: countClasses(model.spec),
    featureBins: 16,
    scoreBins: 10,
  };
}

export function monitoringFilePath(site: string, sha256: string): string {
  return join(site, 'monitoring', `${sha256}.json`);
}

/** The sums vector of a parsed file, checked against its layout (INVALID_DATA naming the file). */
export function parseMonitoringFile(
  value: unknown,
  what: string,
): { file: MonitoringFile; layout: MonitoringLayout; sums: Float64Array } {
  const parsed = monitoringFileSchema.safeParse(value);
  if (!parsed.success)
    throw new EntenteError(
      'INVALID_DATA',
      `${what}: not an entente monitoring file (${parsed.error.issues[0]!.path.join('.') || 'format'})`,
      { field: what },
    );
  const file = parsed.data;
  let layout: MonitoringLayout;
  try {
    layout = createMonitoringLayout(file.spec);
  } catch (e) {
    if (!(e instanceof EntenteError)) throw e;
    throw new EntenteError('INVALID_DATA', `${what}: ${e.message}`, { field: what });
  }
  const sums = createMonitoringSums(layout);
  for (const s of layout.segments) {
    const values = file.sums[s.name];
    if (values === undefined || values.length !== s.length)
      throw new EntenteError('INVALID_DATA', `${what}: sums.${s.name} must have ${s.length} counts`, {
        field: what,
      });
    sums.set(values, s.offset);
  }
  if (Object.keys(file.sums).length !== layout.segments.length)
    throw new EntenteError('INVALID_DATA', `${what}: sums has an unknown segment`, { field: what });
  checkMonitoringSums(layout, sums, what);
  return { file, layout, sums };
}

/** Reads a monitoring file named on the command line (INVALID_ARGUMENT if unreadable, INVALID_DATA if malformed). */
export function readMonitoringFile(path: string, flag: string) {
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > MAX_MONITORING_FILE_BYTES)
      throw new EntenteError('INVALID_DATA', `${flag}: larger than a monitoring file can be`, {
        field: flag,
      });
    text = bytes.toString('utf8');
  } catch (e) {
    if (e instanceof EntenteError) throw e;
    throw new EntenteError('INVALID_ARGUMENT', `${flag}: cannot read ${path}`, { field: flag });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new EntenteError('INVALID_DATA', `${flag}: ${path} is not JSON`, { field: flag });
  }
  return parseMonitoringFile(value, flag);
}

/** The in-memory sums of one model at one site, loaded from and flushed to its file. */
export class MonitoringRecorder {
  readonly layout: MonitoringLayout;
  readonly sums: Float64Array;
  readonly path: string;
  private dirty = false;
  private readonly lock: WorkspaceLock;

  /**
   * Takes `<file>.lock` (O_EXCL, pid; a lock whose process is gone is taken over), so one process at a
   * time adds to a model's sums at a site: WORKSPACE_LOCKED while another serve or score holds it.
   */
  constructor(
    private readonly model: ScoringModel,
    site: string,
    now: number,
  ) {
    this.layout = createMonitoringLayout(monitoringSpecOf(model));
    this.path = monitoringFilePath(site, model.sha256);
    this.sums = createMonitoringSums(this.layout);
    try {
      ensurePrivateDir(join(this.path, '..'));
    } catch {
      throw new EntenteError('INVALID_ARGUMENT', `--site: cannot create ${join(this.path, '..')}`, {
        field: 'site',
      });
    }
    try {
      this.lock = acquireWorkspaceLock(`${this.path}.lock`, { now });
    } catch (e) {
      if (e instanceof EntenteError && e.code === 'WORKSPACE_LOCKED')
        throw new EntenteError(
          'WORKSPACE_LOCKED',
          `--site: another entente process records this model's monitoring sums here (${this.path}.lock); stop it first`,
          { field: 'site' },
        );
      throw e;
    }
    try {
      if (existsSync(this.path)) {
        const previous = readMonitoringFile(this.path, 'monitoring');
        if (previous.file.model !== model.sha256 || previous.layout.length !== this.layout.length)
          throw new EntenteError('INVALID_DATA', `monitoring: ${this.path} records another model or layout`, {
            field: 'monitoring',
          });
        this.sums.set(previous.sums);
      }
    } catch (e) {
      this.lock.release();
      throw e;
    }
  }

  /** Releases the lock (after a last flush by the caller). Idempotent. */
  close(): void {
    this.lock.release();
  }

  get rows(): number {
    return this.sums[0]!;
  }

  /** Adds one scored batch (model inputs, class probabilities, labels or −1, request latency). */
  record(batch: Parameters<typeof accumulateMonitoring>[2]): void {
    accumulateMonitoring(this.layout, this.sums, batch);
    this.dirty = true;
  }

  /** Writes the file if anything changed since the last flush (fsync of the file and its directory). */
  flush(now: Date): boolean {
    if (!this.dirty) return false;
    const dir = join(this.path, '..');
    const sums: Record<string, number[]> = {};
    for (const s of this.layout.segments)
      sums[s.name] = Array.from(monitoringSlice(this.layout, this.sums, s.name as never));
    const file: MonitoringFile = {
      format: MONITORING_FORMAT,
      model: this.model.sha256,
      spec: { ...this.layout.spec },
      inputColumns: listFeatureColumns(this.model.schema),
      classes: [...this.model.classNames],
      sums,
      updatedAt: now.toISOString(),
    };
    try {
      writePrivateFile(this.path, `${JSON.stringify(file)}\n`);
      const fd = openSync(dir, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw code === 'ENOSPC'
        ? new EntenteError('STORAGE_FULL', `--site: no space left for ${this.path}`, { field: 'site' })
        : new EntenteError('INVALID_ARGUMENT', `--site: cannot write ${this.path} (${code ?? 'error'})`, {
            field: 'site',
          });
    }
    this.dirty = false;
    return true;
  }
}
