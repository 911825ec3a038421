// Media workers with the native engine in worker processes: see support/workers-suite.ts.
import { workersSuite } from './support/workers-suite.ts';

await workersSuite('native', import.meta.url);
