export * from './mtls-client.ts';
export * from './mtls-server.ts';
export * from './request-limiter.ts';
