/**
 * The coordinator's model registry: a view of its own audit log (src/registry replays it: every model
 * version with its lineage, the alias table), rebuilt when the log grew. The registry holds no state
 * of its own, so it says exactly what an auditor replaying the log finds.
 */
import { parseLogEntry } from '../audit/index.ts';
import { buildRegistryView, type RegistryEntry, type RegistryView } from '../registry/index.ts';
import type { AuditLog } from './audit-log.ts';

export class ModelRegistry {
  private readonly audit: AuditLog;
  private cached: { size: number; last: string; entries: RegistryEntry[]; view: RegistryView } | undefined;

  constructor(audit: AuditLog) {
    this.audit = audit;
  }

  /** The parsed log entries and the registry replayed from them (cached per log size). */
  snapshot(): { entries: readonly RegistryEntry[]; view: RegistryView } {
    const size = this.audit.size;
    if (this.cached?.size !== size || this.lastBody(size) !== this.cached.last) {
      // Entries read earlier are reused only while the log still holds them (a rolled-back transaction
      // may have removed entries this view saw).
      const reuse =
        this.cached !== undefined &&
        this.cached.size <= size &&
        this.lastBody(this.cached.size) === this.cached.last;
      const entries = reuse ? [...this.cached!.entries] : [];
      const page = 10_000;
      for (let start = entries.length; start < size; start += page)
        for (const e of this.audit.entries(start, Math.min(size, start + page)))
          entries.push(parseLogEntry(e.body, `entry ${e.index}`) as unknown as RegistryEntry);
      this.cached = { size, last: this.lastBody(size), entries, view: buildRegistryView(entries) };
    }
    return { entries: this.cached.entries, view: this.cached.view };
  }

  private lastBody(size: number): string {
    if (size === 0) return '';
    const [last] = this.audit.entries(size - 1, size);
    return last ? Buffer.from(last.body).toString('base64') : '';
  }

  view(): RegistryView {
    return this.snapshot().view;
  }
}
