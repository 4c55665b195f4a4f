/** Public face of src/models: the built-in model family, its trainer and the DP-SGD building blocks. */
export * from './builtin-trainer.ts';
export * from './dense-network.ts';
export * from './dp-sgd.ts';
export * from './evaluate-model.ts';
export * from './flat-parameters.ts';
export * from './initialize-weights.ts';
export * from './labeled-data.ts';
export * from './model-spec.ts';
export * from './optimizer.ts';
export * from './predict.ts';
export * from './regularization.ts';
export * from './train-locally.ts';
export * from './train-options.ts';
export * from './trainer.ts';
