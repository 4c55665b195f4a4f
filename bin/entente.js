#!/usr/bin/env node
// Entry point of the `entente` command: runs the CLI in this process from dist/entente.cjs, the bundle that
// scripts/build-cli.mjs makes from src/ (rebuilt first whenever a source file changed), or from the
// TypeScript sources through tsx's loader when esbuild or a writable dist/ is missing. Failures outside the
// CLI's own handling print one line, `entente: INTERNAL: message`, never a stack trace.
import { ensureCliBundle, runCliBundle } from '../scripts/build-cli.mjs';

function fail(err) {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`entente: INTERNAL: ${message.split('\n')[0]}\n`);
  process.exit(1);
}
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

/** True when the bundle is up to date; false when it cannot be built here (no esbuild, read-only install). */
async function bundleReady() {
  try {
    await ensureCliBundle();
    return true;
  } catch (err) {
    // A compile error in src/ is reported as esbuild found it (file:line: text), without a trace.
    const first = err?.errors?.[0];
    if (first) {
      const at = first.location ? `${first.location.file}:${first.location.line}: ` : '';
      throw new Error(`cannot build the CLI: ${at}${first.text}`);
    }
    if (err?.code === 'ERR_MODULE_NOT_FOUND' || err?.code === 'EACCES' || err?.code === 'EROFS') return false;
    throw err;
  }
}

try {
  if (await bundleReady()) runCliBundle();
  else {
    const { register } = await import('tsx/esm/api');
    register();
    await import(new URL('../src/cli/main.ts', import.meta.url).href);
  }
} catch (err) {
  fail(err);
}
