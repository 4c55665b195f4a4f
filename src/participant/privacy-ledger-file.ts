/**
 * An institution's privacy ledger on its own disk (JSON lines, append-only, fsynced): the events its
 * records took part in. The site reads it before every round to decide whether it may take part; a
 * lost or truncated file must never make the site spend more than it thinks, so an unreadable line is
 * an error, not something to skip.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { EntenteError } from '../core/errors.ts';
import { type PrivacyEvent, checkPrivacyEvent } from '../privacy/index.ts';

export interface PrivacyLedgerFile {
  readonly events: () => PrivacyEvent[];
  readonly append: (event: PrivacyEvent) => void;
}

/** Opens (or starts) the ledger at `path`; in memory only when `path` is undefined. */
export function openPrivacyLedgerFile(path: string | undefined): PrivacyLedgerFile {
  const memory: PrivacyEvent[] = [];
  if (path && existsSync(path)) {
    const lines = readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '');
    for (const [i, line] of lines.entries()) {
      let event: PrivacyEvent;
      try {
        event = JSON.parse(line) as PrivacyEvent;
        checkPrivacyEvent(event, `${path}:${i + 1}`);
      } catch (err) {
        throw new EntenteError('INVALID_CONFIG', `${path}: line ${i + 1} is not a privacy event`, {
          field: 'privacyLedger',
          cause: err,
        });
      }
      memory.push(event);
    }
  }
  return {
    events: () => [...memory],
    append: (event) => {
      checkPrivacyEvent(event);
      if (path) {
        const fd = openSync(path, 'a', 0o600);
        try {
          writeSync(fd, `${JSON.stringify(event)}\n`);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      }
      memory.push(event);
    },
  };
}
