// Wire schemas of every protocol Atrium speaks. Each dialect has its own
// module; import the one you need (`@atrium/protocol/galene`,
// `@atrium/protocol/camus`, `@atrium/protocol/rtcpool`,
// `@atrium/protocol/colibri`).
export * as galene from './galene.ts';
export * as camus from './camus.ts';
export * as rtcpool from './rtcpool.ts';
export * as colibri from './colibri.ts';
