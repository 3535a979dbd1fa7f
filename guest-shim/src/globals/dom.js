// DOMException, Event, EventTarget, AbortController and AbortSignal, as Node has them as globals.
//
// Evaluated once by `globals.rs` after the prelude, before the Wizer snapshot; the function gets
// the natives of `primitives.rs` and also publishes them as the read-only global
// `__flowhost_native` for the Node modules that flows bundle (`js/node/*.js`).
(function dom(native) {
  'use strict';

  const illegalConstructor = () => {
    const error = new TypeError('Illegal constructor');
    error.code = 'ERR_ILLEGAL_CONSTRUCTOR';
    return error;
  };

  const define = (name, value) =>
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });

  Object.defineProperty(globalThis, '__flowhost_native', {
    value: Object.freeze(native),
    writable: false,
    configurable: false,
    enumerable: false,
  });

  // ---------------------------------------------------------------------------------------------
  // DOMException, with the legacy codes some callers still compare.

  const LEGACY_CODES = {
    IndexSizeError: 1, HierarchyRequestError: 3, WrongDocumentError: 4, InvalidCharacterError: 5,
    NoModificationAllowedError: 7, NotFoundError: 8, NotSupportedError: 9, InvalidStateError: 11,
    SyntaxError: 12, InvalidModificationError: 13, NamespaceError: 14, InvalidAccessError: 15,
    TypeMismatchError: 17, SecurityError: 18, NetworkError: 19, AbortError: 20,
    URLMismatchError: 21, QuotaExceededError: 22, TimeoutError: 23, InvalidNodeTypeError: 24,
    DataCloneError: 25,
  };

  class DOMException extends Error {
    #name;
    constructor(message = '', options = 'Error') {
      super(String(message), options !== null && typeof options === 'object' && 'cause' in options ? { cause: options.cause } : undefined);
      this.#name = options !== null && typeof options === 'object' ? String(options.name ?? 'Error') : String(options);
    }
    get name() {
      return this.#name;
    }
    get code() {
      return LEGACY_CODES[this.#name] ?? 0;
    }
    get [Symbol.toStringTag]() {
      return 'DOMException';
    }
  }
  for (const [name, code] of Object.entries(LEGACY_CODES)) {
    const constant = name.replace(/Error$/, '').replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase() + '_ERR';
    Object.defineProperty(DOMException, constant, { value: code, enumerable: true });
    Object.defineProperty(DOMException.prototype, constant, { value: code, enumerable: true });
  }

  // ---------------------------------------------------------------------------------------------
  // Event and EventTarget: enough of the DOM's dispatch for AbortSignal and for libraries that
  // extend EventTarget; no bubbling, since there is no tree.

  const NONE = 0, AT_TARGET = 2;

  class Event {
    #type;
    #bubbles;
    #cancelable;
    #composed;
    #defaultPrevented = false;
    #stopImmediate = false;
    #timeStamp;
    #target = null;
    #currentTarget = null;
    #phase = NONE;

    constructor(type, options = {}) {
      if (arguments.length === 0) throw new TypeError('The "type" argument must be specified');
      this.#type = String(type);
      this.#bubbles = !!options?.bubbles;
      this.#cancelable = !!options?.cancelable;
      this.#composed = !!options?.composed;
      this.#timeStamp = performance.now();
    }
    get type() { return this.#type; }
    get bubbles() { return this.#bubbles; }
    get cancelable() { return this.#cancelable; }
    get composed() { return this.#composed; }
    get defaultPrevented() { return this.#cancelable && this.#defaultPrevented; }
    get timeStamp() { return this.#timeStamp; }
    get target() { return this.#target; }
    get currentTarget() { return this.#currentTarget; }
    get srcElement() { return this.#target; }
    get eventPhase() { return this.#phase; }
    get isTrusted() { return false; }
    get returnValue() { return !this.defaultPrevented; }
    get cancelBubble() { return this.#stopImmediate; }
    composedPath() { return this.#currentTarget ? [this.#currentTarget] : []; }
    preventDefault() { this.#defaultPrevented = true; }
    stopPropagation() {}
    stopImmediatePropagation() { this.#stopImmediate = true; }
    get [Symbol.toStringTag]() { return 'Event'; }

    // Used by EventTarget#dispatchEvent only.
    static enter(event, target) {
      event.#target = target;
      event.#currentTarget = target;
      event.#phase = AT_TARGET;
    }
    static leave(event) {
      event.#currentTarget = null;
      event.#phase = NONE;
    }
    static stopped(event) {
      return event.#stopImmediate;
    }
  }
  Object.defineProperties(Event, {
    NONE: { value: 0, enumerable: true }, CAPTURING_PHASE: { value: 1, enumerable: true },
    AT_TARGET: { value: 2, enumerable: true }, BUBBLING_PHASE: { value: 3, enumerable: true },
  });
  const enterEvent = Event.enter, leaveEvent = Event.leave, eventStopped = Event.stopped;
  delete Event.enter;
  delete Event.leave;
  delete Event.stopped;

  function reportListenerError(err) {
    // Node reports a throwing listener as an uncaught exception and goes on with the others.
    console.error('Uncaught exception in an event listener:', err);
  }

  class EventTarget {
    #listeners = new Map();

    addEventListener(type, listener, options) {
      if (listener === null || listener === undefined) return;
      const capture = typeof options === 'boolean' ? options : !!options?.capture;
      const once = typeof options === 'object' && options !== null && !!options.once;
      const signal = typeof options === 'object' && options !== null ? options.signal : undefined;
      if (signal?.aborted) return;
      type = String(type);
      let list = this.#listeners.get(type);
      if (list === undefined) this.#listeners.set(type, (list = []));
      if (list.some((l) => l.listener === listener && l.capture === capture)) return;
      const entry = { listener, capture, once, removed: false };
      list.push(entry);
      if (signal !== undefined) {
        signal.addEventListener('abort', () => this.removeEventListener(type, listener, { capture }), { once: true });
      }
    }

    removeEventListener(type, listener, options) {
      const capture = typeof options === 'boolean' ? options : !!options?.capture;
      const list = this.#listeners.get(String(type));
      if (list === undefined) return;
      const i = list.findIndex((l) => l.listener === listener && l.capture === capture);
      if (i < 0) return;
      list[i].removed = true;
      list.splice(i, 1);
      if (list.length === 0) this.#listeners.delete(String(type));
    }

    dispatchEvent(event) {
      if (!(event instanceof Event)) {
        throw new TypeError('The "event" argument must be an instance of Event');
      }
      const list = this.#listeners.get(event.type);
      enterEvent(event, this);
      if (list !== undefined) {
        for (const entry of list.slice()) {
          if (entry.removed) continue;
          if (entry.once) this.removeEventListener(event.type, entry.listener, { capture: entry.capture });
          try {
            const { listener } = entry;
            if (typeof listener === 'function') listener.call(this, event);
            else if (typeof listener?.handleEvent === 'function') listener.handleEvent(event);
          } catch (err) {
            reportListenerError(err);
          }
          if (eventStopped(event)) break;
        }
      }
      leaveEvent(event);
      return !event.defaultPrevented;
    }

    get [Symbol.toStringTag]() {
      return 'EventTarget';
    }
  }

  // `on<type>` attributes: the handler becomes a listener when first set, as in the DOM.
  function defineEventHandler(prototype, type) {
    const handlers = new WeakMap();
    Object.defineProperty(prototype, `on${type}`, {
      get() {
        return handlers.get(this)?.handler ?? null;
      },
      set(handler) {
        let slot = handlers.get(this);
        if (slot === undefined) {
          slot = { handler: null };
          handlers.set(this, slot);
          this.addEventListener(type, (event) => {
            if (typeof slot.handler === 'function') slot.handler.call(this, event);
          });
        }
        slot.handler = typeof handler === 'function' ? handler : null;
      },
      configurable: true,
      enumerable: true,
    });
  }

  // ---------------------------------------------------------------------------------------------
  // AbortController and AbortSignal.

  const CREATE = Symbol('create');

  class AbortSignal extends EventTarget {
    #aborted = false;
    #reason = undefined;

    constructor(token) {
      if (token !== CREATE) throw illegalConstructor();
      super();
    }
    get aborted() {
      return this.#aborted;
    }
    get reason() {
      return this.#reason;
    }
    throwIfAborted() {
      if (this.#aborted) throw this.#reason;
    }
    get [Symbol.toStringTag]() {
      return 'AbortSignal';
    }

    static abort(reason) {
      const signal = new AbortSignal(CREATE);
      signal.#aborted = true;
      signal.#reason = reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
      return signal;
    }

    static timeout(ms) {
      const delay = Number(ms);
      if (!Number.isFinite(delay) || delay < 0) {
        throw new RangeError(`The value of "delay" is out of range. It must be >= 0. Received ${ms}`);
      }
      const signal = new AbortSignal(CREATE);
      // Unreferenced, as in Node: a pending timeout signal keeps nothing alive.
      setTimeout(() => {
        triggerAbort(signal, new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
      }, delay).unref();
      return signal;
    }

    static any(signals) {
      const signal = new AbortSignal(CREATE);
      for (const source of signals) {
        if (!(source instanceof AbortSignal)) {
          throw new TypeError('The "signals" argument must be an array of AbortSignal instances');
        }
        if (source.aborted) {
          signal.#aborted = true;
          signal.#reason = source.reason;
          return signal;
        }
      }
      for (const source of signals) {
        source.addEventListener('abort', () => triggerAbort(signal, source.reason), { once: true });
      }
      return signal;
    }

    // Used by AbortController and the static helpers only.
    static trigger(signal, reason) {
      if (signal.#aborted) return;
      signal.#aborted = true;
      signal.#reason = reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
      signal.dispatchEvent(new Event('abort'));
    }
  }
  const triggerAbort = AbortSignal.trigger;
  delete AbortSignal.trigger;
  defineEventHandler(AbortSignal.prototype, 'abort');

  class AbortController {
    #signal = new AbortSignal(CREATE);
    get signal() {
      return this.#signal;
    }
    abort(reason) {
      triggerAbort(this.#signal, reason);
    }
    get [Symbol.toStringTag]() {
      return 'AbortController';
    }
  }

  define('DOMException', DOMException);
  define('Event', Event);
  define('EventTarget', EventTarget);
  define('AbortSignal', AbortSignal);
  define('AbortController', AbortController);
})
