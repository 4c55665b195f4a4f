/**
 * The coordinator's port: the one a previous start of the workspace was served on (kept in the state
 * directory, since enrolled sites keep the URL they enrolled with), a probe that the port is free
 * before anything is opened, and why listening failed as an error code (PORT_IN_USE naming the
 * remembered port, INVALID_ARGUMENT for a privileged port or a foreign host).
 */
import { readFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { EntenteError } from '../core/errors.ts';

/** The port a previous start of this workspace's coordinator was served on, if recorded. */
export function readRememberedPort(path: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const port = (JSON.parse(text) as { port?: unknown }).port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65_535)
    throw new EntenteError('INVALID_CONFIG', `${path}: port must be an integer from 1 to 65535`, {
      field: 'port',
    });
  return port;
}

function portInUse(port: number, remembered: boolean, cause: unknown): EntenteError {
  return new EntenteError(
    'PORT_IN_USE',
    remembered
      ? `port: ${port} is in use by another process; it is the port this workspace's coordinator was served on before, which enrolled sites use; free it, or pass --port (sites must then be given the new URL)`
      : `port: ${port} is in use by another process`,
    { field: 'port', cause },
  );
}

/**
 * Why the coordinator cannot listen, as an error code: a taken port (PORT_IN_USE), a port that needs
 * privileges or a host that is not an address of this machine (INVALID_ARGUMENT); anything else as is.
 */
export function listenError(err: unknown, port: number, remembered: boolean): unknown {
  const code = (err as { code?: unknown }).code;
  if (code === 'EADDRINUSE') return portInUse(port, remembered, err);
  if (code === 'EACCES')
    return new EntenteError(
      'INVALID_ARGUMENT',
      `port: ${port} needs privileges here; choose one above 1023, or 0`,
      {
        field: 'port',
        cause: err,
      },
    );
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return new EntenteError('INVALID_ARGUMENT', 'host: not an address of this machine', {
      field: 'host',
      cause: err,
    });
  return err;
}

/** Throws PORT_IN_USE when `port` cannot be bound on `host` now. */
export async function assertPortFree(host: string, port: number, remembered: boolean): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, port, remembered)));
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}
