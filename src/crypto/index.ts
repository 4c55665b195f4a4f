export * from './digest.ts';
export * from './seeded-rng.ts';
export * from './pki.ts';
