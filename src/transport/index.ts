export * from './mtls-client.ts';
export * from './mtls-server.ts';
