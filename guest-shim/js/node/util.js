// node:util for flowhost guests: format and inspect (Node's notation, no colors), promisify and
// callbackify, inherits, deprecate, isDeepStrictEqual, types, and the legacy is* checks.
import * as types from './util/types.js';
import { inspect, format, formatWithOptions } from './internal/inspect.js';
import { isDeepEqual } from './internal/compare.js';
import { invalidArgType } from './internal/errors.js';

export { inspect, format, formatWithOptions, types };

const kCustomPromisify = Symbol.for('nodejs.util.promisify.custom');

export function promisify(original) {
  if (typeof original !== 'function') throw invalidArgType('original', 'of type function', original);
  if (typeof original[kCustomPromisify] === 'function') return original[kCustomPromisify];
  function promisified(...args) {
    return new Promise((resolve, reject) => {
      original.call(this, ...args, (err, ...values) => {
        if (err) reject(err);
        else resolve(values.length > 1 ? values : values[0]);
      });
    });
  }
  Object.setPrototypeOf(promisified, Object.getPrototypeOf(original));
  Object.defineProperty(promisified, kCustomPromisify, { value: promisified, configurable: true });
  return Object.defineProperties(promisified, Object.getOwnPropertyDescriptors(original));
}
promisify.custom = kCustomPromisify;

export function callbackify(original) {
  if (typeof original !== 'function') throw invalidArgType('original', 'of type function', original);
  return function callbackified(...args) {
    const callback = args.pop();
    if (typeof callback !== 'function') throw invalidArgType('last argument', 'of type function', callback);
    original.apply(this, args).then(
      (value) => process.nextTick(callback, null, value),
      (reason) => {
        if (!reason) {
          const error = new Error('Promise was rejected with a falsy value');
          error.code = 'ERR_FALSY_VALUE_REJECTION';
          error.reason = reason;
          reason = error;
        }
        process.nextTick(callback, reason);
      },
    );
  };
}

export function inherits(ctor, superCtor) {
  if (typeof ctor !== 'function') throw invalidArgType('ctor', 'of type function', ctor);
  if (typeof superCtor !== 'function') throw invalidArgType('superCtor', 'of type function', superCtor);
  if (superCtor.prototype === undefined) throw invalidArgType('superCtor.prototype', 'of type object', superCtor.prototype);
  Object.defineProperty(ctor, 'super_', { value: superCtor, writable: true, configurable: true });
  Object.setPrototypeOf(ctor.prototype, superCtor.prototype);
}

const warned = new Set();
export function deprecate(fn, message, code) {
  if (typeof fn !== 'function') throw invalidArgType('fn', 'of type function', fn);
  function deprecated(...args) {
    const key = code ?? message;
    if (!warned.has(key)) {
      warned.add(key);
      process.emitWarning(message, 'DeprecationWarning', code);
    }
    return new.target ? Reflect.construct(fn, args, new.target) : fn.apply(this, args);
  }
  Object.setPrototypeOf(deprecated, fn);
  if (fn.prototype) deprecated.prototype = fn.prototype;
  return deprecated;
}

export function debuglog() {
  const log = () => {};
  log.enabled = false;
  return log;
}
export const debug = debuglog;

export function isDeepStrictEqual(a, b) {
  return isDeepEqual(a, b, true);
}

export function toUSVString(string) {
  return String(string).toWellFormed();
}

export function stripVTControlCharacters(string) {
  // eslint-disable-next-line no-control-regex
  return String(string).replace(/[\u001B\u009B][[\]()#;?]*(?:(?:(?:;[-a-zA-Z\d/#&.:=?%@~_]+)*|[a-zA-Z\d]+(?:;[-a-zA-Z\d/#&.:=?%@~_]*)*)?\u0007|(?:\d{1,4}(?:;\d{0,4})*)?[\dA-PR-TZcf-ntqry=><~])/g, '');
}

export function styleText(format, text) {
  return String(text);
}

export function getSystemErrorName(code) {
  return `Unknown system error ${code}`;
}

export function aborted(signal, resource) {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

export const TextEncoder = globalThis.TextEncoder;
export const TextDecoder = globalThis.TextDecoder;

// The legacy checks, still imported by older packages.
export const isArray = Array.isArray;
export const isBoolean = (v) => typeof v === 'boolean';
export const isBuffer = (v) => typeof globalThis.Buffer === 'function' && globalThis.Buffer.isBuffer(v);
export const isFunction = (v) => typeof v === 'function';
export const isNull = (v) => v === null;
export const isNullOrUndefined = (v) => v === null || v === undefined;
export const isNumber = (v) => typeof v === 'number';
export const isObject = (v) => v !== null && typeof v === 'object';
export const isPrimitive = (v) => v === null || (typeof v !== 'object' && typeof v !== 'function');
export const isString = (v) => typeof v === 'string';
export const isSymbol = (v) => typeof v === 'symbol';
export const isUndefined = (v) => v === undefined;
export const isRegExp = types.isRegExp;
export const isDate = types.isDate;
export const isError = types.isNativeError;

export default {
  inspect,
  format,
  formatWithOptions,
  types,
  promisify,
  callbackify,
  inherits,
  deprecate,
  debuglog,
  debug,
  isDeepStrictEqual,
  toUSVString,
  stripVTControlCharacters,
  styleText,
  getSystemErrorName,
  aborted,
  TextEncoder,
  TextDecoder,
  isArray,
  isBoolean,
  isBuffer,
  isFunction,
  isNull,
  isNullOrUndefined,
  isNumber,
  isObject,
  isPrimitive,
  isString,
  isSymbol,
  isUndefined,
  isRegExp,
  isDate,
  isError,
};
