export * from './policy.ts';
export * from './proposal.ts';
export * from './quorum.ts';
