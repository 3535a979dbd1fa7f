// node:events for flowhost guests: EventEmitter with Node's semantics (listener order, `once`
// wrappers, 'newListener'/'removeListener', unhandled 'error' throws, errorMonitor, max-listener
// warnings) and the static helpers `once`, `on`, `getEventListeners`, `setMaxListeners`.
//
// Written as CommonJS on purpose: Node's `require('events')` *is* the EventEmitter function, and
// CommonJS packages call it (`new (require('events'))()`, `EventEmitter.call(this)`). esbuild
// gives ES importers the same names (`import EventEmitter, { once } from 'events'`).
'use strict';

const kErrorMonitor = Symbol('events.errorMonitor');
const kCapture = Symbol('kCapture');
const kWarned = Symbol('kWarned');
let defaultMaxListeners = 10;

function describe(value) {
  if (value === null) return 'Received null';
  if (value === undefined) return 'Received undefined';
  if (typeof value === 'object') return `Received an instance of ${value.constructor?.name ?? 'Object'}`;
  return `Received type ${typeof value} (${typeof value === 'string' ? `'${value}'` : String(value)})`;
}

function checkListener(listener) {
  if (typeof listener !== 'function') {
    const error = new TypeError(`The "listener" argument must be of type function. ${describe(listener)}`);
    error.code = 'ERR_INVALID_ARG_TYPE';
    throw error;
  }
}

function EventEmitter(options) {
  EventEmitter.init.call(this, options);
}

EventEmitter.init = function init(options) {
  if (this._events === undefined || this._events === Object.getPrototypeOf(this)._events) {
    this._events = Object.create(null);
    this._eventsCount = 0;
  }
  this._maxListeners = this._maxListeners || undefined;
  if (options?.captureRejections) this[kCapture] = true;
};

EventEmitter.prototype._events = undefined;
EventEmitter.prototype._eventsCount = 0;
EventEmitter.prototype._maxListeners = undefined;

Object.defineProperty(EventEmitter, 'defaultMaxListeners', {
  enumerable: true,
  get() {
    return defaultMaxListeners;
  },
  set(n) {
    if (typeof n !== 'number' || n < 0 || Number.isNaN(n)) {
      const error = new RangeError(`The value of "defaultMaxListeners" is out of range. It must be a non-negative number. Received ${n}`);
      error.code = 'ERR_OUT_OF_RANGE';
      throw error;
    }
    defaultMaxListeners = n;
  },
});

EventEmitter.prototype.setMaxListeners = function setMaxListeners(n) {
  if (typeof n !== 'number' || n < 0 || Number.isNaN(n)) {
    const error = new RangeError(`The value of "n" is out of range. It must be a non-negative number. Received ${n}`);
    error.code = 'ERR_OUT_OF_RANGE';
    throw error;
  }
  this._maxListeners = n;
  return this;
};

EventEmitter.prototype.getMaxListeners = function getMaxListeners() {
  return this._maxListeners === undefined ? defaultMaxListeners : this._maxListeners;
};

EventEmitter.prototype.emit = function emit(type, ...args) {
  const events = this._events;
  if (type === 'error' && events !== undefined && events[kErrorMonitor] !== undefined) {
    this.emit(kErrorMonitor, ...args);
  }
  const handler = events === undefined ? undefined : events[type];
  if (handler === undefined) {
    if (type === 'error') {
      const err = args[0];
      if (err instanceof Error) throw err;
      const error = new Error(`Unhandled error. (${typeof err === 'string' ? `'${err}'` : String(err)})`);
      error.code = 'ERR_UNHANDLED_ERROR';
      error.context = err;
      throw error;
    }
    return false;
  }
  if (typeof handler === 'function') {
    handler.apply(this, args);
  } else {
    const listeners = handler.slice();
    for (let i = 0; i < listeners.length; i++) listeners[i].apply(this, args);
  }
  return true;
};

function addListener(target, type, listener, prepend) {
  checkListener(listener);
  let events = target._events;
  if (events === undefined) {
    events = target._events = Object.create(null);
    target._eventsCount = 0;
  } else if (events.newListener !== undefined) {
    target.emit('newListener', type, listener.listener ?? listener);
    events = target._events;
  }
  const existing = events[type];
  if (existing === undefined) {
    events[type] = listener;
    target._eventsCount++;
    return target;
  }
  const list = typeof existing === 'function' ? (events[type] = prepend ? [listener, existing] : [existing, listener]) : existing;
  if (typeof existing !== 'function') {
    if (prepend) list.unshift(listener);
    else list.push(listener);
  }
  const max = target.getMaxListeners();
  if (max > 0 && list.length > max && !list[kWarned]) {
    list[kWarned] = true;
    console.warn(
      `MaxListenersExceededWarning: Possible EventEmitter memory leak detected. ${list.length} ${String(type)} listeners added to ${target.constructor?.name ?? 'EventEmitter'}. MaxListeners is ${max}. Use emitter.setMaxListeners() to increase limit`,
    );
  }
  return target;
}

EventEmitter.prototype.addListener = function on(type, listener) {
  return addListener(this, type, listener, false);
};
EventEmitter.prototype.on = EventEmitter.prototype.addListener;
EventEmitter.prototype.prependListener = function prependListener(type, listener) {
  return addListener(this, type, listener, true);
};

function onceWrapper(target, type, listener) {
  const state = { fired: false, target, type, listener, wrapped: undefined };
  const wrapped = function (...args) {
    if (state.fired) return undefined;
    state.target.removeListener(state.type, state.wrapped);
    state.fired = true;
    return state.listener.apply(state.target, args);
  };
  wrapped.listener = listener;
  state.wrapped = wrapped;
  return wrapped;
}

EventEmitter.prototype.once = function once(type, listener) {
  checkListener(listener);
  this.on(type, onceWrapper(this, type, listener));
  return this;
};
EventEmitter.prototype.prependOnceListener = function prependOnceListener(type, listener) {
  checkListener(listener);
  this.prependListener(type, onceWrapper(this, type, listener));
  return this;
};

EventEmitter.prototype.removeListener = function removeListener(type, listener) {
  checkListener(listener);
  const events = this._events;
  if (events === undefined) return this;
  const list = events[type];
  if (list === undefined) return this;
  if (list === listener || list.listener === listener) {
    if (--this._eventsCount === 0) this._events = Object.create(null);
    else delete events[type];
    if (events.removeListener !== undefined) this.emit('removeListener', type, list.listener ?? listener);
    return this;
  }
  if (typeof list !== 'function') {
    for (let i = list.length - 1; i >= 0; i--) {
      if (list[i] === listener || list[i].listener === listener) {
        const removed = list[i];
        list.splice(i, 1);
        if (list.length === 1) events[type] = list[0];
        if (events.removeListener !== undefined) this.emit('removeListener', type, removed.listener ?? listener);
        break;
      }
    }
  }
  return this;
};
EventEmitter.prototype.off = EventEmitter.prototype.removeListener;

EventEmitter.prototype.removeAllListeners = function removeAllListeners(type) {
  const events = this._events;
  if (events === undefined) return this;
  if (events.removeListener === undefined) {
    if (arguments.length === 0) {
      this._events = Object.create(null);
      this._eventsCount = 0;
    } else if (events[type] !== undefined) {
      if (--this._eventsCount === 0) this._events = Object.create(null);
      else delete events[type];
    }
    return this;
  }
  if (arguments.length === 0) {
    for (const key of Reflect.ownKeys(events)) {
      if (key !== 'removeListener') this.removeAllListeners(key);
    }
    this.removeAllListeners('removeListener');
    this._events = Object.create(null);
    this._eventsCount = 0;
    return this;
  }
  const listeners = events[type];
  if (typeof listeners === 'function') {
    this.removeListener(type, listeners);
  } else if (listeners !== undefined) {
    for (let i = listeners.length - 1; i >= 0; i--) this.removeListener(type, listeners[i]);
  }
  return this;
};

function listenersOf(target, type, unwrap) {
  const events = target._events;
  const list = events === undefined ? undefined : events[type];
  if (list === undefined) return [];
  if (typeof list === 'function') return unwrap ? [list.listener ?? list] : [list];
  return unwrap ? list.map((l) => l.listener ?? l) : list.slice();
}

EventEmitter.prototype.listeners = function listeners(type) {
  return listenersOf(this, type, true);
};
EventEmitter.prototype.rawListeners = function rawListeners(type) {
  return listenersOf(this, type, false);
};
EventEmitter.prototype.listenerCount = function listenerCount(type, listener) {
  const list = listenersOf(this, type, false);
  if (listener === undefined) return list.length;
  return list.filter((l) => l === listener || l.listener === listener).length;
};
EventEmitter.prototype.eventNames = function eventNames() {
  return this._eventsCount > 0 ? Reflect.ownKeys(this._events) : [];
};

// ---------------------------------------------------------------------------------------------
// Static helpers

function abortError(signal) {
  const error = new Error('The operation was aborted');
  error.name = 'AbortError';
  error.code = 'ABORT_ERR';
  error.cause = signal?.reason;
  return error;
}

function once(emitter, name, options = {}) {
  const signal = options?.signal;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError(signal));
      return;
    }
    if (typeof emitter.addEventListener === 'function' && typeof emitter.on !== 'function') {
      const listener = (event) => {
        signal?.removeEventListener('abort', onAbort);
        resolve([event]);
      };
      const onAbort = () => {
        emitter.removeEventListener(name, listener);
        reject(abortError(signal));
      };
      emitter.addEventListener(name, listener, { once: true });
      signal?.addEventListener('abort', onAbort, { once: true });
      return;
    }
    const onError = (err) => {
      emitter.removeListener(name, resolver);
      signal?.removeEventListener('abort', onAbort);
      reject(err);
    };
    const resolver = (...args) => {
      if (name !== 'error') emitter.removeListener('error', onError);
      signal?.removeEventListener('abort', onAbort);
      resolve(args);
    };
    const onAbort = () => {
      emitter.removeListener(name, resolver);
      emitter.removeListener('error', onError);
      reject(abortError(signal));
    };
    emitter.once(name, resolver);
    if (name !== 'error') emitter.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function on(emitter, event, options = {}) {
  const signal = options?.signal;
  const queue = [];
  const waiting = [];
  let error = null;
  let done = false;
  const push = (...args) => {
    const next = waiting.shift();
    if (next) next.resolve({ value: args, done: false });
    else queue.push(args);
  };
  const fail = (err) => {
    done = true;
    const next = waiting.shift();
    if (next) next.reject(err);
    else error = err;
    iterator.return();
  };
  const onAbort = () => fail(abortError(signal));
  emitter.on(event, push);
  if (event !== 'error') emitter.on('error', fail);
  signal?.addEventListener('abort', onAbort, { once: true });
  const iterator = {
    next() {
      if (queue.length > 0) return Promise.resolve({ value: queue.shift(), done: false });
      if (error !== null) {
        const err = error;
        error = null;
        return Promise.reject(err);
      }
      if (done) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    },
    return() {
      emitter.removeListener(event, push);
      emitter.removeListener('error', fail);
      signal?.removeEventListener('abort', onAbort);
      done = true;
      for (const w of waiting.splice(0)) w.resolve({ value: undefined, done: true });
      return Promise.resolve({ value: undefined, done: true });
    },
    throw(err) {
      fail(err);
      return Promise.reject(err);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  if (signal?.aborted) onAbort();
  return iterator;
}

function getEventListeners(emitter, name) {
  if (typeof emitter.listeners === 'function') return emitter.listeners(name);
  return [];
}

function setMaxListeners(n = defaultMaxListeners, ...targets) {
  if (targets.length === 0) defaultMaxListeners = n;
  for (const target of targets) if (typeof target.setMaxListeners === 'function') target.setMaxListeners(n);
}

function listenerCount(emitter, type) {
  return emitter.listenerCount(type);
}

class EventEmitterAsyncResource extends EventEmitter {}

Object.assign(EventEmitter, {
  EventEmitter,
  EventEmitterAsyncResource,
  once,
  on,
  getEventListeners,
  setMaxListeners,
  listenerCount,
  errorMonitor: kErrorMonitor,
  captureRejectionSymbol: Symbol.for('nodejs.rejection'),
  captureRejections: false,
  usingDomains: false,
});

module.exports = EventEmitter;
