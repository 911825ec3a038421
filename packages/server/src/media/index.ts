// The SFU media plane: the engine-neutral API and its werift implementation.
export * from './engine.ts';
export { createWeriftEngine, type WeriftEngineOptions } from './werift/engine.ts';
export { createNativeEngine, type NativeEngineOptions } from './native/engine.ts';
export { loadNativeAddon } from './native/addon.ts';
