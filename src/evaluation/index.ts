export type * from './evaluation-metrics.ts';
export * from './accumulate-evaluation.ts';
export * from './evaluation-layout.ts';
export * from './evaluation-report.ts';
export * from './evaluation-spec.ts';
export * from './finalize-evaluation.ts';
export * from './probability-bins.ts';
