/** Types of scripts/build-cli.mjs (the CLI bundle), for the TypeScript tests that call it. */
export declare const ROOT: string;
export declare const CLI_SOURCE: string;
export declare const CLI_BUNDLE: string;
export declare function computeFingerprint(root?: string): string;
export declare function buildCliBundle(fingerprint?: string): Promise<string>;
export declare function ensureCliBundle(): Promise<string>;
export declare function runCliBundle(): void;
