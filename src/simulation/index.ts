export * from './demo.ts';
export * from './process-federation.ts';
export type { DemoSummary } from './demo-summary.ts';
