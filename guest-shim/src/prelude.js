// The flowhost runtime prelude: the JavaScript half of the guest shim.
//
// `initialize-runtime` evaluates this script once, before the Wizer snapshot, and calls the
// function it evaluates to with the native functions of `runtime.rs`. The function installs the
// globals a flow sees (`console`, timers, `process`, `flowhost`) and returns the hooks the Rust
// exports call. Hooks and natives stay in this closure: flow code cannot reach them.
//
// The host is the event loop. Nothing here blocks: a call, a request or a timer is a record in a
// table, finished later by another export. After every export the Rust side drains the job queue
// and reads `state` (a Float64Array it reads in place) to report the next timer deadline.
(function prelude(native) {
  'use strict';

  const hostLog = native.log;
  const httpStart = native.httpStart;
  const complete = native.complete;
  const nowMs = native.nowMs;

  // Levels of `flowhost:flow/host.level`, in WIT order.
  const TRACE = 0, DEBUG = 1, INFO = 2, WARN = 3, ERROR = 4;

  // Read by Rust after every export and by `status` without running JavaScript.
  const state = new Float64Array(4);
  const NEXT_DEADLINE = 0, TIMERS = 1, REQUESTS = 2, NEXT_SEQ = 3;
  state[NEXT_DEADLINE] = -1;

  // Flow code may patch `Promise.prototype.then`; completions must not depend on it.
  const promiseThen = Promise.prototype.then;
  const hasOwn = Object.prototype.hasOwnProperty;
  const objectToString = Object.prototype.toString;

  // Keys for Maps indexed by small integer ids (timers, requests). QuickJS hashes a number key
  // by the bits of its double, and small integers differ only in bits that its hash drops: a
  // Map keyed 1, 2, 3, ... puts every entry in one bucket, and each set, get and delete walks
  // them all (4,000 timers: 20 times slower). Above 2^52 an integer's double holds it in the
  // low mantissa bits, which the hash keeps.
  const ID_KEY = 2 ** 52;
  function idKey(id) {
    return ID_KEY + id;
  }

  // ---------------------------------------------------------------------------------------------
  // Formatting for console output and log lines: strings as they are, everything else as compact
  // JSON where JSON can say it, with Node's spellings for what it cannot ([Circular], 1n, ...).

  const MAX_DEPTH = 6;
  const MAX_ITEMS = 100;

  function describeFunction(fn) {
    let name = '';
    try {
      name = fn.name;
    } catch (_) {}
    let source = '';
    try {
      source = Function.prototype.toString.call(fn);
    } catch (_) {}
    if (source.startsWith('class')) return name ? `[class ${name}]` : '[class (anonymous)]';
    return name ? `[Function: ${name}]` : '[Function (anonymous)]';
  }

  function describeError(err) {
    let name = 'Error', message = '', stack = '';
    try {
      name = String(err.name ?? 'Error');
      message = String(err.message ?? '');
      stack = typeof err.stack === 'string' ? err.stack : '';
    } catch (_) {}
    const head = message ? `${name}: ${message}` : name;
    // QuickJS's `stack` holds only the frames, unlike V8's, so the head goes in front.
    return stack ? `${head}\n${stack.replace(/\n$/, '')}` : head;
  }

  function isError(v) {
    return v instanceof Error || objectToString.call(v) === '[object Error]';
  }

  // JSON text of `v` for a log line; never throws.
  function inspect(v, depth, ancestors) {
    switch (typeof v) {
      case 'string':
        return JSON.stringify(v);
      case 'number':
        return Object.is(v, -0) ? '-0' : String(v);
      case 'bigint':
        return `${v}n`;
      case 'boolean':
        return String(v);
      case 'undefined':
        return 'undefined';
      case 'symbol':
        return v.toString();
      case 'function':
        return describeFunction(v);
    }
    if (v === null) return 'null';
    if (ancestors.includes(v)) return '"[Circular]"';
    try {
      if (isError(v)) return JSON.stringify(describeError(v));
      if (v instanceof Date) {
        return JSON.stringify(Number.isNaN(v.getTime()) ? 'Invalid Date' : v.toISOString());
      }
      if (v instanceof RegExp) return String(v);
      if (depth >= MAX_DEPTH) return Array.isArray(v) ? '"[Array]"' : '"[Object]"';
      ancestors.push(v);
      try {
        if (Array.isArray(v) || ArrayBuffer.isView(v)) {
          const parts = [];
          const n = Math.min(v.length, MAX_ITEMS);
          for (let i = 0; i < n; i++) parts.push(inspect(v[i], depth + 1, ancestors));
          if (v.length > n) parts.push(`"... ${v.length - n} more items"`);
          return `[${parts.join(',')}]`;
        }
        if (v instanceof Map) {
          const parts = [];
          for (const [key, value] of v) {
            if (parts.length === MAX_ITEMS) break;
            parts.push(`[${inspect(key, depth + 1, ancestors)},${inspect(value, depth + 1, ancestors)}]`);
          }
          return `{"[Map]":[${parts.join(',')}]}`;
        }
        if (v instanceof Set) {
          const parts = [];
          for (const value of v) {
            if (parts.length === MAX_ITEMS) break;
            parts.push(inspect(value, depth + 1, ancestors));
          }
          return `{"[Set]":[${parts.join(',')}]}`;
        }
        if (typeof v.toJSON === 'function') {
          return inspect(v.toJSON(), depth, ancestors.slice(0, -1));
        }
        const parts = [];
        for (const key of Object.keys(v)) {
          if (parts.length === MAX_ITEMS) {
            parts.push('"...":"more keys"');
            break;
          }
          parts.push(`${JSON.stringify(key)}:${inspect(v[key], depth + 1, ancestors)}`);
        }
        return `{${parts.join(',')}}`;
      } finally {
        ancestors.pop();
      }
    } catch (_) {
      return '"[Uninspectable]"';
    }
  }

  // One console argument as text: top-level strings are not quoted, as in Node.
  function show(v) {
    if (typeof v === 'string') return v;
    if (v !== null && typeof v === 'object' && isError(v)) return describeError(v);
    return inspect(v, 0, []);
  }

  // Node's `util.format`: printf-style directives in a leading string, then the rest by `show`.
  function format(args) {
    let first = 0;
    let out = '';
    if (typeof args[0] === 'string' && args.length > 1 && args[0].includes('%')) {
      const template = args[0];
      let next = 1;
      first = 1;
      for (let i = 0; i < template.length; i++) {
        const c = template[i];
        if (c !== '%' || i + 1 === template.length) {
          out += c;
          continue;
        }
        const d = template[++i];
        if (d === '%') {
          out += '%';
          continue;
        }
        if (next >= args.length || !'sdifjoOc'.includes(d)) {
          out += `%${d}`;
          continue;
        }
        const a = args[next++];
        if (d === 's') out += typeof a === 'string' ? a : show(a);
        else if (d === 'd' || d === 'i') {
          const n = typeof a === 'bigint' ? a : Number(a);
          out += typeof n === 'bigint' ? `${n}n` : String(d === 'i' ? Math.trunc(n) : n);
        } else if (d === 'f') out += String(parseFloat(a));
        else if (d === 'c') continue;
        else out += inspect(a, 0, []);
      }
      first = next;
    }
    for (let i = first; i < args.length; i++) {
      if (out !== '' || i > 0) out += ' ';
      out += show(args[i]);
    }
    return out;
  }

  function log(level, message) {
    hostLog(level, message);
  }

  // ---------------------------------------------------------------------------------------------
  // console: every method becomes one `host.log` line at the matching level.

  let groupIndent = '';
  const counts = new Map();
  const timers = new Map();

  function emit(level, args) {
    const text = format(args);
    log(level, groupIndent === '' ? text : groupIndent + text.replaceAll('\n', `\n${groupIndent}`));
  }

  const console = {
    log: (...args) => emit(INFO, args),
    info: (...args) => emit(INFO, args),
    debug: (...args) => emit(DEBUG, args),
    warn: (...args) => emit(WARN, args),
    error: (...args) => emit(ERROR, args),
    trace: (...args) => {
      const stack = (new Error().stack ?? '').split('\n').slice(1).join('\n').trimEnd();
      emit(TRACE, [`Trace${args.length ? ': ' + format(args) : ''}\n${stack}`]);
    },
    dir: (value) => emit(INFO, [inspect(value, 0, [])]),
    table: (...args) => emit(INFO, args),
    assert: (condition, ...args) => {
      if (!condition) emit(ERROR, ['Assertion failed' + (args.length ? ': ' + format(args) : '')]);
    },
    count: (label = 'default') => {
      const n = (counts.get(label) ?? 0) + 1;
      counts.set(label, n);
      emit(INFO, [`${label}: ${n}`]);
    },
    countReset: (label = 'default') => {
      counts.delete(label);
    },
    time: (label = 'default') => {
      timers.set(label, nowMs());
    },
    timeLog: (label = 'default', ...args) => {
      const start = timers.get(label);
      if (start === undefined) return emit(WARN, [`No such label '${label}' for console.timeLog()`]);
      emit(INFO, [`${label}: ${(nowMs() - start).toFixed(3)}ms`, ...args]);
    },
    timeEnd: (label = 'default') => {
      const start = timers.get(label);
      if (start === undefined) return emit(WARN, [`No such label '${label}' for console.timeEnd()`]);
      timers.delete(label);
      emit(INFO, [`${label}: ${(nowMs() - start).toFixed(3)}ms`]);
    },
    group: (...args) => {
      if (args.length) emit(INFO, args);
      groupIndent += '  ';
    },
    groupCollapsed: (...args) => console.group(...args),
    groupEnd: () => {
      groupIndent = groupIndent.slice(2);
    },
  };

  // ---------------------------------------------------------------------------------------------
  // Timers: a binary min-heap ordered by (deadline, seq), with each timer's heap index stored on
  // it so that clearTimeout removes in O(log n) instead of leaving a tombstone behind (walkerOS
  // arms and clears a timeout for every push).

  const heap = [];
  const timerById = new Map();
  let nextTimerId = 1;
  let nextSeq = 0;

  function before(a, b) {
    return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
  }

  function place(t, i) {
    heap[i] = t;
    t.index = i;
  }

  function siftUp(i) {
    const t = heap[i];
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(t, heap[parent])) break;
      place(heap[parent], i);
      i = parent;
    }
    place(t, i);
  }

  function siftDown(i) {
    const t = heap[i];
    const n = heap.length;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && before(heap[child + 1], heap[child])) child++;
      if (!before(heap[child], t)) break;
      place(heap[child], i);
      i = child;
    }
    place(t, i);
  }

  function publishTimers() {
    state[NEXT_DEADLINE] = heap.length === 0 ? -1 : heap[0].deadline;
    state[TIMERS] = timerById.size;
    state[NEXT_SEQ] = nextSeq;
  }

  function arm(t, delay) {
    t.deadline = nowMs() + delay;
    t.seq = nextSeq++;
    heap.push(t);
    siftUp(heap.length - 1);
  }

  function disarm(t) {
    const i = t.index;
    if (i < 0) return;
    t.index = -1;
    const last = heap.pop();
    if (last !== t) {
      place(last, i);
      siftDown(i);
      siftUp(last.index);
    }
  }

  // Node clamps delays outside [1, 2^31 - 1] ms to 1 ms; so do we.
  function clampDelay(ms) {
    const delay = Number(ms);
    return delay >= 1 && delay <= 2147483647 ? delay : 1;
  }

  class Timeout {
    constructor(callback, delay, args, repeat) {
      this.id = nextTimerId++;
      this.callback = callback;
      this.args = args;
      this.delay = delay;
      this.repeat = repeat;
      this.referenced = true;
      this.deadline = 0;
      this.seq = 0;
      this.index = -1;
    }
    ref() {
      this.referenced = true;
      return this;
    }
    unref() {
      this.referenced = false;
      return this;
    }
    hasRef() {
      return this.referenced;
    }
    refresh() {
      if (timerById.get(idKey(this.id)) === this) {
        disarm(this);
        arm(this, this.delay);
        publishTimers();
      }
      return this;
    }
    close() {
      cancelTimer(this);
      return this;
    }
    [Symbol.toPrimitive]() {
      return this.id;
    }
  }

  function schedule(callback, delay, args, repeat) {
    if (typeof callback !== 'function') {
      throw new TypeError(`The "callback" argument must be of type function. Received ${inspect(callback, 0, [])}`);
    }
    const t = new Timeout(callback, delay, args, repeat);
    timerById.set(idKey(t.id), t);
    arm(t, delay);
    publishTimers();
    return t;
  }

  function cancelTimer(handle) {
    let t;
    if (handle instanceof Timeout) t = handle;
    else if (typeof handle === 'number' || typeof handle === 'string') t = timerById.get(idKey(Number(handle)));
    if (t === undefined || timerById.get(idKey(t.id)) !== t) return;
    timerById.delete(idKey(t.id));
    disarm(t);
    publishTimers();
  }

  function cancelAllTimers() {
    for (const t of heap) t.index = -1;
    heap.length = 0;
    timerById.clear();
    publishTimers();
  }

  // Runs the earliest timer due at `now` that existed when the round began (seq < limit).
  // Returns false when there is none; Rust drains the job queue after each true.
  function runTimer(now, limit) {
    const t = heap[0];
    if (t === undefined || t.deadline > now || t.seq >= limit) return false;
    disarm(t);
    if (t.repeat) arm(t, t.delay);
    else timerById.delete(idKey(t.id));
    publishTimers();
    try {
      t.callback.apply(undefined, t.args);
    } catch (err) {
      log(ERROR, `Uncaught exception in a timer callback: ${describeError(err)}`);
    }
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Outbound HTTP through `host.http-start`; the response comes back through `ioComplete`.

  const requests = new Map();

  function headerPairs(headers) {
    if (headers === undefined || headers === null) return undefined;
    const pairs = [];
    const entries =
      Array.isArray(headers) || typeof headers[Symbol.iterator] === 'function'
        ? headers
        : Object.entries(headers);
    for (const entry of entries) {
      if (entry === null || typeof entry !== 'object' || entry.length !== 2) {
        throw new TypeError('request headers must be an object or a list of [name, value] pairs');
      }
      pairs.push([String(entry[0]), String(entry[1])]);
    }
    return pairs;
  }

  function encodeRequest(req) {
    if (req === null || typeof req !== 'object') {
      throw new TypeError('flowhost.request expects an object with at least a url');
    }
    const out = { url: String(req.url ?? '') };
    if (out.url === '') throw new TypeError('flowhost.request: url is required');
    if (req.method !== undefined) out.method = String(req.method).toUpperCase();
    const headers = headerPairs(req.headers);
    if (headers !== undefined) out.headers = headers;
    if (req.body !== undefined && req.body !== null) {
      if (typeof req.body !== 'string') throw new TypeError('flowhost.request: body must be a string');
      out.body = req.body;
    }
    if (req.bodyEncoding !== undefined) {
      if (req.bodyEncoding !== 'utf8' && req.bodyEncoding !== 'base64') {
        throw new TypeError('flowhost.request: bodyEncoding must be "utf8" or "base64"');
      }
      out.bodyEncoding = req.bodyEncoding;
    }
    if (req.timeoutMs !== undefined) {
      const timeout = Number(req.timeoutMs);
      if (!(timeout >= 0)) throw new TypeError('flowhost.request: timeoutMs must be a number >= 0');
      out.timeoutMs = timeout;
    }
    return JSON.stringify(out);
  }

  function request(req) {
    return new Promise((resolve, reject) => {
      const id = httpStart(encodeRequest(req));
      requests.set(idKey(id), { resolve, reject });
      state[REQUESTS] = requests.size;
    });
  }

  function ioComplete(id, text) {
    const pending = requests.get(idKey(id));
    if (pending === undefined) {
      log(WARN, `io-complete for unknown request ${id} ignored`);
      return;
    }
    requests.delete(idKey(id));
    state[REQUESTS] = requests.size;
    let res;
    try {
      res = JSON.parse(text);
    } catch (err) {
      const error = new Error(`the host sent an unreadable response: ${err.message}`);
      error.kind = 'invalid';
      pending.reject(error);
      return;
    }
    if (res === null || typeof res !== 'object') res = { error: 'the host sent an empty response' };
    if (res.error !== undefined) {
      const error = new Error(String(res.error));
      error.kind = typeof res.kind === 'string' ? res.kind : 'invalid';
      pending.reject(error);
      return;
    }
    pending.resolve({
      status: res.status,
      headers: Array.isArray(res.headers) ? res.headers : [],
      body: typeof res.body === 'string' ? res.body : '',
      bodyEncoding: res.bodyEncoding === 'base64' ? 'base64' : 'utf8',
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Calls: load, call and shutdown each end in exactly one `host.complete`.

  // The module namespace once `load` has finished; its function exports are the handlers.
  let flow = null;
  // `process.env`, seeded by `load` from the config's `env`; flows may change it.
  const processEnv = {};
  // 'empty' | 'loading' | 'ready' | 'failed' | 'stopped'
  let phase = 'empty';
  let initConfig;

  function errorJson(err) {
    let name = 'Error', message = '', stack = '';
    try {
      if (err !== null && typeof err === 'object') {
        name = typeof err.name === 'string' ? err.name : 'Error';
        message = typeof err.message === 'string' ? err.message : inspect(err, 0, []);
        stack = typeof err.stack === 'string' ? err.stack : '';
      } else {
        message = typeof err === 'string' ? err : inspect(err, 0, []);
      }
    } catch (_) {
      message = 'the thrown value could not be read';
    }
    return JSON.stringify({ name, message, stack });
  }

  function fail(id, err) {
    complete(id, false, errorJson(err));
  }

  // A handler's result leaves the guest as JSON: Error values as {name, message} (JSON alone
  // would make them {}), functions left out, a reference back to an enclosing object as
  // "[Circular]". The native JSON.stringify does it in one pass, with `toJSON` on
  // Error.prototype for the duration; only a value it refuses (a cycle) takes the slower path.
  const errorProto = Error.prototype;
  function errorToJson() {
    return { name: this.name, message: this.message };
  }
  const errorToJsonProperty = { value: errorToJson, configurable: true, writable: true };

  function carefulJson(value) {
    const ancestors = [];
    return JSON.stringify(value, function (key, item) {
      // `this` is the object holding `item`; everything deeper than it is finished.
      if (key !== '' || ancestors.length > 0) {
        const at = ancestors.lastIndexOf(this);
        ancestors.length = at + 1;
      }
      if (typeof item !== 'object' || item === null) return item;
      if (ancestors.includes(item)) return '[Circular]';
      const out = isError(item) ? { name: item.name, message: item.message } : item;
      ancestors.push(out);
      return out;
    });
  }

  function resultJson(value) {
    if (value === undefined) return 'null';
    if (!hasOwn.call(errorProto, 'toJSON')) {
      Object.defineProperty(errorProto, 'toJSON', errorToJsonProperty);
      try {
        return JSON.stringify(value) ?? 'null';
      } catch (_) {
        // A cycle (or a value JSON cannot hold, which the careful path reports).
      } finally {
        delete errorProto.toJSON;
      }
    }
    return carefulJson(value) ?? 'null';
  }

  function succeed(id, value) {
    let json;
    try {
      json = resultJson(value);
    } catch (err) {
      fail(id, err);
      return;
    }
    complete(id, true, json);
  }

  // Completes `id` with `value`, or with what it settles to if it is a promise or thenable.
  function settle(id, value, after) {
    const ok = (v) => {
      succeed(id, v);
      if (after) after();
    };
    const err = (e) => {
      fail(id, e);
      if (after) after();
    };
    if (value instanceof Promise) {
      promiseThen.call(value, ok, err);
      return;
    }
    let thenable;
    try {
      thenable =
        value !== null &&
        (typeof value === 'object' || typeof value === 'function') &&
        typeof value.then === 'function';
    } catch (e) {
      err(e);
      return;
    }
    if (thenable) promiseThen.call(Promise.resolve(value), ok, err);
    else ok(value);
  }

  function call(id, name, input) {
    if (flow === null) {
      const why = {
        empty: 'no flow is loaded',
        loading: 'the flow is still loading',
        failed: 'the flow failed to load',
        stopped: 'the flow has shut down',
      };
      fail(id, new Error(why[phase] ?? 'no flow is loaded'));
      return;
    }
    const handler = flow[name];
    if (typeof handler !== 'function') {
      fail(id, new Error(`flow has no export "${name}"`));
      return;
    }
    let result;
    try {
      result = handler(JSON.parse(input));
    } catch (err) {
      fail(id, err);
      return;
    }
    settle(id, result);
  }

  // First half of `load`, before Rust evaluates the module: parse the config, seed process.env.
  function prepareLoad(configText) {
    const config = JSON.parse(configText);
    if (config === null || typeof config !== 'object' || Array.isArray(config)) {
      throw new TypeError('the load config must be a JSON object');
    }
    const env = config.env;
    if (env !== undefined && env !== null) {
      if (typeof env !== 'object') throw new TypeError('the load config\'s "env" must be an object');
      for (const key of Object.keys(env)) {
        const value = env[key];
        processEnv[key] = value === null || value === undefined ? '' : String(value);
      }
    }
    initConfig = config.config;
    phase = 'loading';
  }

  // Second half of `load`: once the module's evaluation settles, run its `init`.
  function finishLoad(id, namespace, evaluation) {
    const init = () => (typeof namespace.init === 'function' ? namespace.init(initConfig) : undefined);
    const ready = promiseThen.call(evaluation, init);
    promiseThen.call(
      ready,
      (value) => {
        flow = namespace;
        phase = 'ready';
        succeed(id, value);
      },
      (err) => {
        phase = 'failed';
        fail(id, err);
      },
    );
  }

  // Marks a load that failed before `finishLoad` (bad config, bad bytecode).
  function failLoad(id, err) {
    phase = 'failed';
    fail(id, err);
  }

  function shutdown(id) {
    const stop = () => {
      flow = null;
      phase = 'stopped';
      cancelAllTimers();
    };
    const handler = flow === null ? undefined : flow.shutdown;
    if (typeof handler !== 'function') {
      succeed(id, null);
      stop();
      return;
    }
    let result;
    try {
      result = handler();
    } catch (err) {
      fail(id, err);
      stop();
      return;
    }
    settle(id, result, stop);
  }

  // ---------------------------------------------------------------------------------------------
  // Unhandled rejections: QuickJS reports a rejection without a handler at once, and again if a
  // handler is attached later; only those still unhandled after the job queue drained are logged.

  const rejections = new Map();

  function trackRejection(promise, reason, handled) {
    if (handled) rejections.delete(promise);
    else rejections.set(promise, reason);
  }

  function reportRejections() {
    for (const reason of rejections.values()) {
      log(WARN, `Unhandled promise rejection: ${show(reason)}`);
    }
    rejections.clear();
  }

  // Text of an exception that escaped a job, for Rust's warn line.
  function describe(value) {
    return show(value);
  }

  // ---------------------------------------------------------------------------------------------
  // Globals a flow sees.

  const define = (name, value) =>
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });

  define('console', console);
  define('setTimeout', (callback, ms, ...args) => schedule(callback, clampDelay(ms), args, false));
  define('setInterval', (callback, ms, ...args) => schedule(callback, clampDelay(ms), args, true));
  define('setImmediate', (callback, ...args) => schedule(callback, 0, args, false));
  define('clearTimeout', cancelTimer);
  define('clearInterval', cancelTimer);
  define('clearImmediate', cancelTimer);
  define('process', {
    env: processEnv,
    argv: [],
    nextTick: (callback, ...args) => queueMicrotask(() => callback(...args)),
  });
  define('flowhost', {
    request,
    log: (level, ...args) => {
      const levels = { trace: TRACE, debug: DEBUG, info: INFO, warn: WARN, error: ERROR };
      const n = typeof level === 'number' ? level : levels[String(level).toLowerCase()];
      log(n >= TRACE && n <= ERROR ? n : INFO, format(args));
    },
  });

  if (!hasOwn.call(globalThis, 'queueMicrotask')) {
    define('queueMicrotask', (callback) => promiseThen.call(Promise.resolve(), () => callback()));
  }

  return {
    state,
    call,
    prepareLoad,
    finishLoad,
    failLoad,
    fail,
    ioComplete,
    runTimer,
    shutdown,
    trackRejection,
    reportRejections,
    describe,
  };
})
