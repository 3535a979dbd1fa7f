// structuredClone: the HTML structured clone of the values a flow can hold, with shared and
// cyclic references preserved and functions, symbols and other platform objects refused with a
// DataCloneError, as in Node.
(function clone(native) {
  'use strict';

  const toString = Object.prototype.toString;
  const ERRORS = { Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError };

  function uncloneable(value) {
    let text;
    try {
      text = typeof value === 'symbol' ? value.toString() : String(value);
    } catch {
      text = toString.call(value);
    }
    return new DOMException(`${text} could not be cloned.`, 'DataCloneError');
  }

  function cloneValue(value, memory) {
    if (value === null) return null;
    const type = typeof value;
    if (type === 'symbol' || type === 'function') throw uncloneable(value);
    if (type !== 'object') return value;

    const seen = memory.get(value);
    if (seen !== undefined) return seen;

    const tag = toString.call(value);
    let copy;
    switch (tag) {
      case '[object Array]': {
        copy = new Array(value.length);
        memory.set(value, copy);
        for (const key of Object.keys(value)) copy[key] = cloneValue(value[key], memory);
        return copy;
      }
      case '[object Date]':
        copy = new Date(value.getTime());
        break;
      case '[object RegExp]':
        copy = new RegExp(value.source, value.flags);
        break;
      case '[object Boolean]':
        copy = Object(Boolean.prototype.valueOf.call(value));
        break;
      case '[object Number]':
        copy = Object(Number.prototype.valueOf.call(value));
        break;
      case '[object String]':
        copy = Object(String.prototype.valueOf.call(value));
        break;
      case '[object BigInt]':
        copy = Object(BigInt.prototype.valueOf.call(value));
        break;
      case '[object ArrayBuffer]':
        copy = value.slice(0);
        break;
      case '[object Map]': {
        copy = new Map();
        memory.set(value, copy);
        for (const [k, v] of value) copy.set(cloneValue(k, memory), cloneValue(v, memory));
        return copy;
      }
      case '[object Set]': {
        copy = new Set();
        memory.set(value, copy);
        for (const v of value) copy.add(cloneValue(v, memory));
        return copy;
      }
      case '[object Error]': {
        const name = ERRORS[value.name] !== undefined ? value.name : 'Error';
        copy = Object.create(ERRORS[name].prototype);
        memory.set(value, copy);
        const props = { message: value.message, stack: value.stack };
        if ('cause' in value) props.cause = value.cause;
        for (const key of Object.keys(props)) {
          if (props[key] === undefined && key !== 'cause') continue;
          Object.defineProperty(copy, key, {
            value: key === 'message' || key === 'stack' ? String(props[key]) : cloneValue(props[key], memory),
            writable: true,
            configurable: true,
            enumerable: false,
          });
        }
        return copy;
      }
      case '[object DataView]':
        copy = new DataView(cloneValue(value.buffer, memory), value.byteOffset, value.byteLength);
        break;
      case '[object WeakMap]':
      case '[object WeakSet]':
      case '[object WeakRef]':
      case '[object Promise]':
        throw uncloneable(value);
      default: {
        if (ArrayBuffer.isView(value)) {
          // A Buffer or another subclass comes back as its standard typed array, as in Node.
          const View = globalThis[tag.slice(8, -1)];
          copy = new View(cloneValue(value.buffer, memory), value.byteOffset, value.length);
          break;
        }
        // Any other object: its own enumerable string keys, as a plain object.
        copy = {};
        memory.set(value, copy);
        for (const key of Object.keys(value)) copy[key] = cloneValue(value[key], memory);
        return copy;
      }
    }
    memory.set(value, copy);
    return copy;
  }

  function structuredClone(value, options) {
    if (arguments.length === 0) throw new TypeError('The "value" argument must be specified');
    if (options?.transfer !== undefined && options.transfer.length > 0) {
      throw new DOMException('Transferring objects is not supported', 'DataCloneError');
    }
    return cloneValue(value, new Map());
  }

  Object.defineProperty(globalThis, 'structuredClone', {
    value: structuredClone,
    writable: true,
    configurable: true,
    enumerable: false,
  });
})
