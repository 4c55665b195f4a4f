export * from './demo.ts';
export * from './process-federation.ts';
