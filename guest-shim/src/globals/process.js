// The parts of Node's `process` beyond what the prelude defines (`env`, `argv`, `nextTick`)
// that packages touch in passing: `cwd`, `hrtime`, `emitWarning` and the emitter methods (which
// accept listeners and never call them: a flow has no process signals or exit).
(function processExtras() {
  'use strict';

  const process = globalThis.process;
  if (process === null || typeof process !== 'object') return;

  const self = () => process;
  function hrtime(previous) {
    const ns = BigInt(Math.round(performance.now() * 1e6));
    let seconds = Number(ns / 1000000000n);
    let nanos = Number(ns % 1000000000n);
    if (Array.isArray(previous)) {
      seconds -= previous[0];
      nanos -= previous[1];
      if (nanos < 0) {
        seconds -= 1;
        nanos += 1e9;
      }
    }
    return [seconds, nanos];
  }
  hrtime.bigint = () => BigInt(Math.round(performance.now() * 1e6));

  Object.assign(process, {
    title: 'flowhost',
    pid: 1,
    ppid: 0,
    execArgv: [],
    exitCode: undefined,
    cwd: () => '/',
    hrtime,
    emitWarning(warning, ...rest) {
      const text = typeof warning === 'string' ? warning : warning?.message;
      const type = typeof rest[0] === 'string' ? rest[0] : rest[0]?.type ?? 'Warning';
      console.warn(`(flowhost) ${type}: ${text}`);
    },
    exit(code) {
      throw new Error(`process.exit(${code ?? ''}) is not available in a flow`);
    },
    on: self,
    once: self,
    off: self,
    addListener: self,
    removeListener: self,
    removeAllListeners: self,
    prependListener: self,
    emit: () => false,
    listeners: () => [],
    listenerCount: () => 0,
  });
})
