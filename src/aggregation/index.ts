/** Federated strategies (FedAvg, FedProx, FedAvgM, FedAdagrad, FedAdam, FedYogi) and the streaming weighted sum. */
export * from './evaluation-aggregation.ts';
export * from './participant-selection.ts';
export * from './strategy.ts';
export * from './strategy-config.ts';
export * from './weighted-sum.ts';
export * from './site-evaluation-figures.ts';
