/** Private evaluation: metrics computed from additive sums that sites add up (secure aggregation). */
export * from './accumulate-evaluation.ts';
export * from './evaluation-layout.ts';
export type * from './evaluation-metrics.ts';
export * from './evaluation-spec.ts';
export * from './finalize-evaluation.ts';
export * from './probability-bins.ts';
