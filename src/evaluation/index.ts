export type * from './evaluation-metrics.ts';
