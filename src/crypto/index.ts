export * from './digest.ts';
export * from './seeded-rng.ts';
