export * from './errors.ts';
export * from './rng.ts';
export * from './tensor.ts';
export * from './safetensors.ts';
export * from './caller-text.ts';
export * from './markup-escape.ts';
