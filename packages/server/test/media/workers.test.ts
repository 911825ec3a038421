// Media workers with the JavaScript engine in worker threads: see support/workers-suite.ts.
import { workersSuite } from './support/workers-suite.ts';

await workersSuite('js', import.meta.url);
