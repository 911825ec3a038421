// Wire schemas of every protocol Atrium speaks. Each dialect has its own
// module; import the one you need (`@atrium/protocol/galene`).
export * as galene from './galene.ts';
