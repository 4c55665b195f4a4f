/**
 * Last-resort handlers for a long-running `entente` process: an exception nothing caught, or a promise
 * rejection nothing handled, ends the process with `entente: CODE: message` on stderr and the exit code
 * of its error code (INTERNAL, exit 1, for anything that is not an EntenteError), never a stack trace.
 */
import { EntenteError, exitCodeOf } from '../core/errors.ts';

/** The line printed for `err` and the exit code it maps to. */
export function describeFatal(err: unknown): { line: string; exitCode: number } {
  if (err instanceof EntenteError)
    return { line: `entente: ${err.code}: ${err.message}`, exitCode: exitCodeOf(err.code) };
  const message = err instanceof Error ? err.message : String(err);
  return { line: `entente: INTERNAL: ${message}`, exitCode: exitCodeOf('INTERNAL') };
}

let installed = false;

export function installProcessHandlers(): void {
  if (installed) return;
  installed = true;
  const fatal = (err: unknown): void => {
    const { line, exitCode } = describeFatal(err);
    process.stderr.write(`${line}\n`);
    process.exit(exitCode);
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
}
