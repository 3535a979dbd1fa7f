// node:timers for flowhost guests: the global timers, driven by the host's event loop.
import * as promises from './timers/promises.js';

export const setTimeout = globalThis.setTimeout;
export const clearTimeout = globalThis.clearTimeout;
export const setInterval = globalThis.setInterval;
export const clearInterval = globalThis.clearInterval;
export const setImmediate = globalThis.setImmediate;
export const clearImmediate = globalThis.clearImmediate;
export { promises };

export default { setTimeout, clearTimeout, setInterval, clearInterval, setImmediate, clearImmediate, promises };
