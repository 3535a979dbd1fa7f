// node:module for flowhost guests. A flow is one bundled module: there is nothing left to
// require at run time, so createRequire gives a require that explains why it cannot load.
import { codedError } from './internal/errors.js';

export const builtinModules = [
  'assert', 'buffer', 'console', 'crypto', 'events', 'http', 'https', 'module', 'os', 'path', 'perf_hooks', 'process',
  'querystring', 'stream', 'string_decoder', 'timers', 'url', 'util',
];

export function createRequire() {
  const require = (id) => {
    throw codedError(Error, 'ERR_FLOWHOST_UNSUPPORTED', `require('${id}') is not available in a flow; the bundler must include it`);
  };
  require.resolve = (id) => id;
  require.cache = Object.create(null);
  return require;
}

export function isBuiltin(name) {
  return builtinModules.includes(String(name).replace(/^node:/, ''));
}

export default { builtinModules, createRequire, isBuiltin };
