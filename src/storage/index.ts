export * from './blob-store.ts';
export * from './sqlite-store.ts';
export * from './workspace.ts';
export * from './governance-store.ts';
export * from './site-dir.ts';
export * from './file-modes.ts';
export * from './workspace-lock.ts';
