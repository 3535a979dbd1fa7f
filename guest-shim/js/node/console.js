// node:console for flowhost guests: the global console, whose lines go to the host's log.
export default globalThis.console;
export const log = (...args) => globalThis.console.log(...args);
export const info = (...args) => globalThis.console.info(...args);
export const warn = (...args) => globalThis.console.warn(...args);
export const error = (...args) => globalThis.console.error(...args);
export const debug = (...args) => globalThis.console.debug(...args);
export const trace = (...args) => globalThis.console.trace(...args);
export const dir = (...args) => globalThis.console.dir(...args);
