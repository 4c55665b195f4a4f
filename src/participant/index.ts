export * from './participant-agent.ts';
