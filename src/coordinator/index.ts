export * from './coordinator-server.ts';
export * from './run-engine.ts';
export * from './doctor.ts';
