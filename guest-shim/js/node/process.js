// node:process for flowhost guests: the global `process` (env seeded from the flow's settings).
const process = globalThis.process;

export const env = process.env;
export const argv = process.argv;
export const nextTick = process.nextTick;
export const cwd = process.cwd;
export const hrtime = process.hrtime;
export const emitWarning = process.emitWarning;
export const exit = process.exit;
export const on = process.on;
export const once = process.once;
export const off = process.off;

export default process;
