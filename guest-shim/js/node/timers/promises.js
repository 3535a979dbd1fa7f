// node:timers/promises for flowhost guests: promise-returning timers with AbortSignal support.

function abortError(signal) {
  const error = new Error('The operation was aborted');
  error.name = 'AbortError';
  error.code = 'ABORT_ERR';
  error.cause = signal.reason;
  return error;
}

function delayed(schedule, clear, value, options) {
  const signal = options?.signal;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError(signal));
      return;
    }
    const onAbort = () => {
      clear(handle);
      reject(abortError(signal));
    };
    const handle = schedule(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(value);
    });
    if (options?.ref === false) handle.unref?.();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function setTimeout(delay, value, options) {
  return delayed((fn) => globalThis.setTimeout(fn, delay), globalThis.clearTimeout, value, options);
}

export function setImmediate(value, options) {
  return delayed((fn) => globalThis.setImmediate(fn), globalThis.clearImmediate, value, options);
}

export async function* setInterval(delay, value, options) {
  const signal = options?.signal;
  let pending = 0;
  let wake = null;
  const handle = globalThis.setInterval(() => {
    pending++;
    if (wake) wake();
  }, delay);
  const onAbort = () => wake?.();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      if (pending === 0) await new Promise((resolve) => (wake = resolve));
      wake = null;
      if (signal?.aborted) throw abortError(signal);
      for (; pending > 0; pending--) yield value;
    }
  } finally {
    globalThis.clearInterval(handle);
    signal?.removeEventListener('abort', onAbort);
  }
}

export const scheduler = {
  wait: (delay, options) => setTimeout(delay, undefined, options),
  yield: () => setImmediate(),
};

export default { setTimeout, setImmediate, setInterval, scheduler };
