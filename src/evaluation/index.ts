export type * from './evaluation-metrics.ts';
export * from './evaluation-report.ts';
