export * from './csv.ts';
export * from './dirichlet.ts';
export type * from './labeled-data.ts';
export * from './load-table.ts';
export * from './partition.ts';
export * from './schema.ts';
export * from './split.ts';
export * from './standardize.ts';
