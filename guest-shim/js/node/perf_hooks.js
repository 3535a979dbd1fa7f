// node:perf_hooks for flowhost guests: the global `performance`.
export const performance = globalThis.performance;
export const constants = {};

export class PerformanceObserver {
  observe() {}
  disconnect() {}
  static get supportedEntryTypes() {
    return [];
  }
}

export default { performance, constants, PerformanceObserver };
