export * from './messages.ts';
export * from './run-config.ts';
export * from './run-machine.ts';
export * from './blob-ref.ts';
export * from './run-privacy.ts';
export * from './data-shape.ts';
export * from './secure-sum.ts';
export * from './secure-sum-round.ts';
