export * from './participant-agent.ts';
export * from './site-config.ts';
export * from './log-witness.ts';
export * from './privacy-ledger-file.ts';
export * from './enrollment.ts';
export * from './trainer-digest.ts';
