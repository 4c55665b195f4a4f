import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { EntenteError } from '../core/errors.ts';
import { openUnmaskedRounds } from './unmasked-rounds.ts';

const dir = mkdtempSync(join(tmpdir(), 'entente-unmasked-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const refused = (fn: () => void, pattern: RegExp): void =>
  assert.throws(
    fn,
    (e: unknown) =>
      e instanceof EntenteError &&
      e.code === 'PROTOCOL_VIOLATION' &&
      e.field === 'attempt' &&
      pattern.test(e.message),
  );

describe('unmasked rounds of a site', () => {
  it('refuses any other attempt of a round it unmasked, and allows the same attempt and other rounds', () => {
    const record = openUnmaskedRounds(join(dir, 'a.jsonl'));
    record.check('run', 1, 0);
    record.record('run', 1, 0);
    record.check('run', 1, 0); // a repeated stage of the unmasked attempt
    refused(() => record.check('run', 1, 1), /round 1 of run run was already unmasked in attempt 0/);
    refused(() => record.check('run', 1, 7), /attempt 7 is refused/);
    record.check('run', 2, 1);
    record.check('other', 1, 1);
    record.record('run', 1, 0); // idempotent
    refused(() => record.record('run', 1, 1), /already unmasked in attempt 0/);
    assert.equal(record.unmaskedAttempt('run', 1), 0);
    assert.equal(record.unmaskedAttempt('run', 2), undefined);
  });

  it('an attempt aborted before its unmasking stage is never recorded: the retry is allowed', () => {
    const record = openUnmaskedRounds(join(dir, 'b.jsonl'));
    record.check('run', 3, 0); // took part in attempt 0, which aborted before Unmasking
    record.check('run', 3, 1);
    record.record('run', 3, 1);
    refused(() => record.check('run', 3, 0), /already unmasked in attempt 1/);
    refused(() => record.check('run', 3, 2), /already unmasked in attempt 1/);
  });

  it('survives a restart (re-opened from its file)', () => {
    const path = join(dir, 'c.jsonl');
    openUnmaskedRounds(path).record('run', 4, 2);
    const reopened = openUnmaskedRounds(path);
    assert.equal(reopened.unmaskedAttempt('run', 4), 2);
    refused(() => reopened.check('run', 4, 3), /already unmasked in attempt 2/);
    assert.equal(readFileSync(path, 'utf8').trim().split('\n').length, 1);
  });

  it('refuses to start from a damaged or contradictory file (a lost record would let the attack through)', () => {
    const damaged = join(dir, 'd.jsonl');
    writeFileSync(damaged, '{"run":"run","round":1,"attempt":0,"at":1}\nnot json\n');
    assert.throws(
      () => openUnmaskedRounds(damaged),
      (e: unknown) => e instanceof EntenteError && e.code === 'INVALID_CONFIG' && /line 2/.test(e.message),
    );
    const twice = join(dir, 'e.jsonl');
    writeFileSync(
      twice,
      '{"run":"run","round":1,"attempt":0,"at":1}\n{"run":"run","round":1,"attempt":1,"at":2}\n',
    );
    assert.throws(
      () => openUnmaskedRounds(twice),
      (e: unknown) =>
        e instanceof EntenteError && e.code === 'INVALID_CONFIG' && /second unmasked/.test(e.message),
    );
  });

  it('keeps the record in memory when no file is given', () => {
    const record = openUnmaskedRounds(undefined);
    record.record('run', 1, 0);
    refused(() => record.check('run', 1, 1), /already unmasked/);
  });
});
