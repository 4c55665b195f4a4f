export * from './alias-name.ts';
export * from './alias-table.ts';
export * from './model-card.ts';
export * from './model-diff.ts';
export * from './model-versions.ts';
export * from './registry-view.ts';
