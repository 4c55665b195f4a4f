/**
 * The one registry of error codes (DESIGN.md §5). Expected outcomes are values; invalid input at a
 * boundary throws one `EntenteError` carrying a code from this table. HTTP status and CLI exit codes
 * are mapped from the code only at the edges (transport, cli). Messages name the field and never echo
 * keys, shares or unmasked values.
 */

export const errorCodes = {
  INVALID_ARGUMENT: { http: 400, exit: 2, summary: 'an argument or field is invalid' },
  INVALID_CONFIG: { http: 400, exit: 2, summary: 'a configuration file is invalid' },
  INVALID_MESSAGE: { http: 400, exit: 2, summary: 'a protocol message failed validation' },
  INVALID_TENSOR: { http: 422, exit: 2, summary: 'a tensor has a wrong name, shape, dtype or value' },
  INVALID_DATA: { http: 422, exit: 2, summary: 'a data file does not match its schema' },
  MALFORMED_BODY: { http: 400, exit: 2, summary: 'a binary body is malformed or truncated' },
  BODY_TOO_LARGE: { http: 413, exit: 2, summary: 'a body exceeds its size limit' },
  DIGEST_MISMATCH: { http: 422, exit: 2, summary: 'content does not match its SHA-256 address' },
  UNAUTHENTICATED: { http: 401, exit: 3, summary: 'no valid client certificate' },
  FORBIDDEN: { http: 403, exit: 3, summary: 'the caller may not do this' },
  UNKNOWN_PARTICIPANT: { http: 403, exit: 3, summary: 'the participant is not a member of the consortium' },
  NOT_FOUND: { http: 404, exit: 4, summary: 'no such object' },
  STALE_ROUND: { http: 409, exit: 5, summary: 'the message is for a round that is not open' },
  DUPLICATE_RESULT: { http: 409, exit: 5, summary: 'a result for this task was already accepted' },
  PROTOCOL_VIOLATION: {
    http: 409,
    exit: 5,
    summary: 'a peer broke the secure-aggregation protocol (refused and recorded)',
  },
  PRIVACY_BUDGET_EXCEEDED: {
    http: 409,
    exit: 5,
    summary: "the round would exceed the institution's own privacy budget (refused and recorded)",
  },
  SITE_POLICY_REFUSED: {
    http: 409,
    exit: 5,
    summary: "the task breaks the institution's own site policy (refused and recorded)",
  },
  POLICY_REFUSED: {
    http: 409,
    exit: 5,
    summary: 'the request breaks the consortium policy in force (every broken rule is named)',
  },
  SCHEMA_MISMATCH: {
    http: 409,
    exit: 5,
    summary: "sites' data schemas differ from the run's or from each other (each site and digest named)",
  },
  CONFLICT: { http: 409, exit: 5, summary: 'the request conflicts with the current state' },
  ATTEMPTS_EXHAUSTED: {
    http: 409,
    exit: 5,
    summary: "a round's secure aggregation aborted in maxAttemptsPerRound attempts; the run failed",
  },
  UNMASKING_ABORTED: {
    http: 409,
    exit: 5,
    summary:
      'a secure-aggregation attempt aborted after unmasking began; the round is not retried (run failed)',
  },
  PHASE_FAILED: {
    http: 409,
    exit: 5,
    summary:
      'too few participants could take part in a phase (refusals, tasks a site cannot execute) in maxFailuresPerPhase attempts; the run failed',
  },
  RUN_CANCELLED: { http: 409, exit: 5, summary: 'the run was cancelled (by an operator or a quorum)' },
  EVALUATION_FAILED: {
    http: 409,
    exit: 5,
    summary:
      "an evaluation plan's job failed (a blinded model's secure sum aborted in every attempt, or during unmasking)",
  },
  ROLLOUT_FAILED: {
    http: 409,
    exit: 5,
    summary:
      "a rollout's stage measurement aborted in every attempt, or during unmasking; the alias is untouched",
  },
  MONITORING_FAILED: {
    http: 409,
    exit: 5,
    summary:
      'a monitoring measurement ended without a report (its secure sum aborted in every attempt or during unmasking, or no site had recorded rows)',
  },
  RATE_LIMITED: {
    http: 429,
    exit: 6,
    summary: 'too many requests from this caller or address; try again later',
  },
  QUOTA_EXCEEDED: {
    http: 507,
    exit: 6,
    summary: "the member's storage quota for uploaded chunks is used up (refused)",
  },
  STORAGE_FULL: { http: 507, exit: 6, summary: "the coordinator's disk is full; nothing was stored" },
  PORT_IN_USE: { http: 503, exit: 6, summary: "the coordinator's port is taken by another process" },
  WORKSPACE_LOCKED: {
    http: 409,
    exit: 6,
    summary: 'another coordinator is running on this workspace (its pid is named); nothing was changed',
  },
  UNAVAILABLE: { http: 503, exit: 6, summary: 'a service is not reachable' },
  TIMEOUT: { http: 504, exit: 6, summary: 'an operation timed out' },
  STORE_CORRUPT: {
    http: 500,
    exit: 7,
    summary:
      'stored state is damaged: bytes that do not hash to their address, a damaged database, a log that disagrees with its checkpoints',
  },
  INTERNAL: { http: 500, exit: 1, summary: 'an internal error' },
} as const;

export type ErrorCode = keyof typeof errorCodes;

export class EntenteError extends Error {
  readonly code: ErrorCode;
  readonly field: string | undefined;
  constructor(code: ErrorCode, message: string, options?: { field?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EntenteError';
    this.code = code;
    this.field = options?.field;
  }
}

/** True when `code` is a registered error code (used when decoding an error from the wire). */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(errorCodes, code);
}

/** HTTP status for an error code (edge mapping, transport only). */
export function httpStatusOf(code: ErrorCode): number {
  return errorCodes[code].http;
}

/** Process exit code for an error code (edge mapping, cli only). */
export function exitCodeOf(code: ErrorCode): number {
  return errorCodes[code].exit;
}
