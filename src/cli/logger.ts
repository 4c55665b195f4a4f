/** Process logger: pino, pretty when stderr is a terminal, JSON lines otherwise; always on stderr. */
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export function createLogger(name: string, level = process.env.ENTENTE_LOG_LEVEL ?? 'info'): Logger {
  const redact = { paths: ['*.keyPem', '*.key', '*.privateKey', 'identity'], censor: '[secret]' };
  if (process.stderr.isTTY) {
    return pino({ name, level, redact }, pretty({ colorize: true, destination: 2, sync: true }));
  }
  return pino({ name, level, redact }, pino.destination({ fd: 2, sync: true }));
}
