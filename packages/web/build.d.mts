// Types of build.mjs, for the TypeScript that imports it (the browser tests).
export declare const WEB_DIR: string;
export declare const DIST_DIR: string;
export declare function buildReason(): string | null;
export declare function buildWebApp(options?: { verbose?: boolean }): Promise<void>;
export declare function ensureWebApp(options?: { verbose?: boolean; log?: (message: string) => void }): Promise<'up-to-date' | 'built'>;
