export * from './messages.ts';
export * from './run-config.ts';
export * from './run-machine.ts';
export * from './blob-ref.ts';
