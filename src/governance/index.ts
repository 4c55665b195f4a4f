export * from './policy.ts';
export * from './proposal.ts';
export * from './quorum.ts';
export * from './report.ts';
export * from './run-check.ts';
export * from './verify-trail.ts';
export * from './identity-key.ts';
export * from './evaluation-plan.ts';
