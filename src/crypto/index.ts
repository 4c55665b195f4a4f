export * from './digest.ts';
export * from './seeded-rng.ts';
export * from './pki.ts';
export * from './canonical-bytes.ts';
export * from './signatures.ts';
export * from './canonical-json.ts';
export * from './certificate-request.ts';
export * from './enrollment-token.ts';
