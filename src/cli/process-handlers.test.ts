/** Tests for the last-resort process handlers: a coded line and the code's exit status, no stack trace. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exitCodeOf } from '../core/errors.ts';

const HANDLERS = fileURLToPath(new URL('./process-handlers.ts', import.meta.url));
const ERRORS = fileURLToPath(new URL('../core/errors.ts', import.meta.url));

/** Runs `body` in a fresh process with the handlers installed. */
function run(body: string): { status: number | null; stderr: string } {
  const script = `
    import { installProcessHandlers } from ${JSON.stringify(HANDLERS)};
    import { EntenteError } from ${JSON.stringify(ERRORS)};
    installProcessHandlers();
    ${body}
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  return { status: r.status, stderr: r.stderr };
}

describe('process handlers', () => {
  it('an EntenteError thrown from a timer exits with its code', () => {
    const r = run(
      "setTimeout(() => { throw new EntenteError('UNAVAILABLE', 'no running coordinator recorded'); }, 1);",
    );
    assert.equal(r.status, exitCodeOf('UNAVAILABLE'));
    assert.equal(r.stderr, 'entente: UNAVAILABLE: no running coordinator recorded\n');
  });

  it('an unhandled rejection of a plain error is INTERNAL, exit 1', () => {
    const r = run("Promise.reject(new TypeError('x is not a function'));");
    assert.equal(r.status, exitCodeOf('INTERNAL'));
    assert.equal(r.stderr, 'entente: INTERNAL: x is not a function\n');
  });
});
