// node:buffer for flowhost guests: Buffer as a Uint8Array subclass with Node's encodings
// (utf8, hex, base64, base64url, latin1/binary, ascii, utf16le/ucs2), reads and writes of every
// integer and float width, search, compare, copy and fill. The byte conversions run natively
// (`__flowhost_native`); the rest follows Node's own implementation of the same methods.
import { codedError, invalidArgType, outOfRange, notAvailable } from './internal/errors.js';

const native = globalThis.__flowhost_native;

export const kMaxLength = 2 ** 32;
export const kStringMaxLength = 2 ** 29 - 24;
export const constants = { MAX_LENGTH: kMaxLength, MAX_STRING_LENGTH: kStringMaxLength };
export const INSPECT_MAX_BYTES = 50;

// Every Buffer is a FastBuffer; `Buffer` itself is a function so that old code may call it
// without `new`, and typed-array methods that build new arrays (species) get Buffers too.
class FastBuffer extends Uint8Array {}

export function Buffer(arg, encodingOrOffset, length) {
  if (typeof arg === 'number') {
    if (typeof encodingOrOffset === 'string') {
      throw invalidArgType('string', 'of type string', arg);
    }
    return Buffer.alloc(arg);
  }
  return Buffer.from(arg, encodingOrOffset, length);
}
Buffer.prototype = FastBuffer.prototype;
Object.defineProperty(FastBuffer.prototype, 'constructor', { value: Buffer, writable: true, configurable: true });
Object.setPrototypeOf(Buffer, Uint8Array);
Buffer.poolSize = 8192;

// ---------------------------------------------------------------------------------------------
// Encodings

function normalizeEncoding(encoding) {
  if (encoding === undefined || encoding === null || encoding === '') return 'utf8';
  switch (String(encoding).toLowerCase()) {
    case 'utf8':
    case 'utf-8':
      return 'utf8';
    case 'hex':
      return 'hex';
    case 'base64':
      return 'base64';
    case 'base64url':
      return 'base64url';
    case 'latin1':
    case 'binary':
      return 'latin1';
    case 'ascii':
      return 'ascii';
    case 'ucs2':
    case 'ucs-2':
    case 'utf16le':
    case 'utf-16le':
      return 'utf16le';
    default:
      return undefined;
  }
}

function encodingOrThrow(encoding) {
  const normalized = normalizeEncoding(encoding);
  if (normalized === undefined) throw codedError(TypeError, 'ERR_UNKNOWN_ENCODING', `Unknown encoding: ${encoding}`);
  return normalized;
}

// The bytes of `string` in `encoding`, as a new Buffer.
function fromString(string, encoding) {
  switch (encoding) {
    case 'utf8':
      return new FastBuffer(native.utf8Encode(string));
    case 'hex':
      return new FastBuffer(native.hexDecode(string));
    case 'base64':
    case 'base64url':
      return new FastBuffer(native.base64Decode(string));
    case 'latin1':
    case 'ascii': {
      const out = new FastBuffer(string.length);
      for (let i = 0; i < string.length; i++) out[i] = string.charCodeAt(i);
      return out;
    }
    case 'utf16le': {
      const out = new FastBuffer(string.length * 2);
      for (let i = 0; i < string.length; i++) {
        const c = string.charCodeAt(i);
        out[2 * i] = c & 0xff;
        out[2 * i + 1] = c >>> 8;
      }
      return out;
    }
  }
  throw codedError(TypeError, 'ERR_UNKNOWN_ENCODING', `Unknown encoding: ${encoding}`);
}

// `bytes[start..end]` as a string in `encoding`.
function toStringIn(bytes, encoding, start, end) {
  switch (encoding) {
    case 'utf8':
      return native.utf8Decode(bytes, start, end);
    case 'hex':
      return native.hexEncode(bytes, start, end);
    case 'base64':
      return native.base64Encode(bytes, false, start, end);
    case 'base64url':
      return native.base64Encode(bytes, true, start, end);
    case 'latin1':
      return native.latin1Decode(bytes, start, end);
    case 'ascii': {
      let out = '';
      for (let i = start; i < end; i++) out += String.fromCharCode(bytes[i] & 0x7f);
      return out;
    }
    case 'utf16le': {
      let out = '';
      for (let i = start; i + 1 < end; i += 2) out += String.fromCharCode(bytes[i] | (bytes[i + 1] << 8));
      return out;
    }
  }
  throw codedError(TypeError, 'ERR_UNKNOWN_ENCODING', `Unknown encoding: ${encoding}`);
}

function base64ByteLength(string) {
  let n = string.length;
  if (n > 0 && string.charCodeAt(n - 1) === 0x3d) n--;
  if (n > 1 && string.charCodeAt(n - 1) === 0x3d) n--;
  return (n * 3) >>> 2;
}

// ---------------------------------------------------------------------------------------------
// Construction

const FROM_TYPE_MESSAGE =
  'The first argument must be of type string or an instance of Buffer, ArrayBuffer, or Array or an Array-like Object.';

function isAnyArrayBuffer(value) {
  return value instanceof ArrayBuffer || (typeof SharedArrayBuffer === 'function' && value instanceof SharedArrayBuffer);
}

function fromArrayLike(values) {
  const out = new FastBuffer(values.length >>> 0);
  for (let i = 0; i < out.length; i++) out[i] = values[i];
  return out;
}

function fromArrayBuffer(buffer, byteOffset, length) {
  const offset = byteOffset === undefined ? 0 : +byteOffset || 0;
  const max = buffer.byteLength - offset;
  if (max < 0) throw codedError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"offset" is outside of buffer bounds');
  let size = max;
  if (length !== undefined) {
    size = +length || 0;
    if (size > max) throw codedError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"length" is outside of buffer bounds');
  }
  return new FastBuffer(buffer, offset, size);
}

Buffer.from = function from(value, encodingOrOffset, length) {
  if (typeof value === 'string') return fromString(value, encodingOrThrow(encodingOrOffset));
  if (typeof value === 'object' && value !== null) {
    if (isAnyArrayBuffer(value)) return fromArrayBuffer(value, encodingOrOffset, length);
    if (value instanceof Uint8Array) {
      const out = new FastBuffer(value.length);
      out.set(value);
      return out;
    }
    const primitive = value.valueOf?.();
    if (primitive !== null && primitive !== undefined && primitive !== value) {
      return Buffer.from(primitive, encodingOrOffset, length);
    }
    if (typeof value.length === 'number' || ArrayBuffer.isView(value)) return fromArrayLike(value);
    if (value.type === 'Buffer' && Array.isArray(value.data)) return fromArrayLike(value.data);
    if (typeof value[Symbol.toPrimitive] === 'function') {
      const text = value[Symbol.toPrimitive]('string');
      if (typeof text === 'string') return fromString(text, encodingOrThrow(encodingOrOffset));
    }
  }
  throw invalidArgType('first argument', FROM_TYPE_MESSAGE.slice('The first argument must be '.length, -1), value);
};

function checkSize(size) {
  if (typeof size !== 'number') throw invalidArgType('size', 'of type number', size);
  if (!(size >= 0 && size <= kMaxLength)) {
    throw codedError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "size" is out of range. It must be >= 0 && <= ${kMaxLength}. Received ${size}`);
  }
}

Buffer.alloc = function alloc(size, fill, encoding) {
  checkSize(size);
  const out = new FastBuffer(size);
  if (fill !== undefined && fill !== 0 && size > 0) out.fill(fill, 0, out.length, encoding);
  return out;
};
Buffer.allocUnsafe = function allocUnsafe(size) {
  checkSize(size);
  return new FastBuffer(size);
};
Buffer.allocUnsafeSlow = Buffer.allocUnsafe;

Buffer.copyBytesFrom = function copyBytesFrom(view, offset = 0, length) {
  if (!ArrayBuffer.isView(view) || view instanceof DataView) throw invalidArgType('view', 'an instance of TypedArray', view);
  const size = view.BYTES_PER_ELEMENT;
  const end = length === undefined ? view.length : Math.min(view.length, offset + length);
  if (offset >= end) return new FastBuffer(0);
  return Buffer.from(new Uint8Array(view.buffer, view.byteOffset + offset * size, (end - offset) * size));
};

Buffer.isBuffer = function isBuffer(value) {
  return value instanceof Buffer;
};

Buffer.isEncoding = function isEncoding(encoding) {
  return typeof encoding === 'string' && encoding.length !== 0 && normalizeEncoding(encoding) !== undefined;
};

Buffer.byteLength = function byteLength(value, encoding) {
  if (typeof value !== 'string') {
    if (ArrayBuffer.isView(value) || isAnyArrayBuffer(value)) return value.byteLength;
    throw invalidArgType('string', 'of type string or an instance of Buffer or ArrayBuffer', value);
  }
  switch (normalizeEncoding(encoding) ?? 'utf8') {
    case 'utf8':
      return native.utf8Length(value);
    case 'hex':
      return value.length >>> 1;
    case 'base64':
    case 'base64url':
      return base64ByteLength(value);
    case 'utf16le':
      return value.length * 2;
    default:
      return value.length;
  }
};

function checkUint8Array(name, value) {
  if (!(value instanceof Uint8Array)) throw invalidArgType(name, 'an instance of Buffer or Uint8Array', value);
}

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

Buffer.compare = function compare(a, b) {
  checkUint8Array('buf1', a);
  checkUint8Array('buf2', b);
  return compareBytes(a, b);
};

Buffer.concat = function concat(list, totalLength) {
  if (!Array.isArray(list)) throw invalidArgType('list', 'an instance of Array', list);
  if (list.length === 0) return new FastBuffer(0);
  if (totalLength === undefined) {
    totalLength = 0;
    for (let i = 0; i < list.length; i++) {
      checkUint8Array(`list[${i}]`, list[i]);
      totalLength += list[i].length;
    }
  }
  const out = Buffer.alloc(totalLength);
  let offset = 0;
  for (let i = 0; i < list.length && offset < totalLength; i++) {
    const chunk = list[i];
    checkUint8Array(`list[${i}]`, chunk);
    const n = Math.min(chunk.length, totalLength - offset);
    out.set(n === chunk.length ? chunk : chunk.subarray(0, n), offset);
    offset += n;
  }
  return out;
};

// ---------------------------------------------------------------------------------------------
// Conversions

const proto = Buffer.prototype;

function clampRange(length, start, end) {
  start = start === undefined ? 0 : Math.trunc(+start) || 0;
  end = end === undefined ? length : Math.trunc(+end) || 0;
  if (start < 0) start = 0;
  if (end > length) end = length;
  return [start, end];
}

proto.toString = function toString(encoding, start, end) {
  if (arguments.length === 0) return native.utf8Decode(this);
  const normalized = encodingOrThrow(encoding);
  [start, end] = clampRange(this.length, start, end);
  if (end <= start) return '';
  return toStringIn(this, normalized, start, end);
};
proto.toLocaleString = proto.toString;

proto.toJSON = function toJSON() {
  const data = new Array(this.length);
  for (let i = 0; i < this.length; i++) data[i] = this[i];
  return { type: 'Buffer', data };
};

proto.equals = function equals(other) {
  checkUint8Array('otherBuffer', other);
  return this === other || compareBytes(this, other) === 0;
};

proto.compare = function compare(target, targetStart = 0, targetEnd = target?.length, sourceStart = 0, sourceEnd = this.length) {
  checkUint8Array('target', target);
  return compareBytes(this.subarray(sourceStart, sourceEnd), target.subarray(targetStart, targetEnd));
};

// Node's slice shares memory, unlike Uint8Array's.
proto.slice = function slice(start, end) {
  return this.subarray(start, end);
};

proto.copy = function copy(target, targetStart = 0, sourceStart = 0, sourceEnd = this.length) {
  checkUint8Array('target', target);
  targetStart = Math.max(0, Math.trunc(+targetStart) || 0);
  sourceStart = Math.max(0, Math.trunc(+sourceStart) || 0);
  sourceEnd = Math.min(this.length, Math.trunc(+sourceEnd) || 0);
  if (targetStart >= target.length || sourceStart >= sourceEnd) return 0;
  const n = Math.min(sourceEnd - sourceStart, target.length - targetStart);
  target.set(this.subarray(sourceStart, sourceStart + n), targetStart);
  return n;
};

// Bytes of a fill or search value.
function valueBytes(value, encoding, what) {
  if (typeof value === 'string') return fromString(value, encodingOrThrow(encoding));
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw invalidArgType('value', what, value);
}

proto.fill = function fill(value, offset = 0, end = this.length, encoding) {
  if (typeof offset === 'string') {
    encoding = offset;
    offset = 0;
    end = this.length;
  } else if (typeof end === 'string') {
    encoding = end;
    end = this.length;
  }
  if (offset < 0 || end > this.length) throw outOfRange('offset', `>= 0 and <= ${this.length}`, offset < 0 ? offset : end);
  if (end <= offset) return this;
  if (typeof value === 'number' || typeof value === 'boolean') {
    Uint8Array.prototype.fill.call(this, Number(value) & 255, offset, end);
    return this;
  }
  const pattern = valueBytes(value, encoding, 'one of type string, Buffer, or Uint8Array');
  if (pattern.length === 0) {
    Uint8Array.prototype.fill.call(this, 0, offset, end);
    return this;
  }
  for (let i = offset, j = 0; i < end; i++, j = (j + 1) % pattern.length) this[i] = pattern[j];
  return this;
};

proto.write = function write(string, offset, length, encoding) {
  if (typeof string !== 'string') throw invalidArgType('argument', 'of type string', string);
  if (offset === undefined) {
    encoding = 'utf8';
    offset = 0;
    length = this.length;
  } else if (length === undefined && typeof offset === 'string') {
    encoding = offset;
    offset = 0;
    length = this.length;
  } else {
    offset = offset >>> 0;
    if (typeof length === 'string') {
      encoding = length;
      length = this.length - offset;
    } else if (length === undefined) {
      length = this.length - offset;
    }
  }
  if (offset > this.length) throw outOfRange('offset', `>= 0 && <= ${this.length}`, offset);
  const room = Math.min(length >>> 0, this.length - offset);
  const normalized = encodingOrThrow(encoding);
  let bytes = fromString(string, normalized);
  if (bytes.length > room) {
    let cut = room;
    // UTF-8 never writes part of a character; UTF-16 never half a code unit.
    if (normalized === 'utf8') {
      while (cut > 0 && (bytes[cut] & 0xc0) === 0x80) cut--;
    } else if (normalized === 'utf16le') {
      cut &= ~1;
    }
    bytes = bytes.subarray(0, cut);
  }
  this.set(bytes, offset);
  return bytes.length;
};

for (const encoding of ['utf8', 'hex', 'base64', 'base64url', 'latin1', 'ascii', 'ucs2']) {
  const name = encoding === 'ucs2' ? 'ucs2' : encoding;
  const normalized = normalizeEncoding(encoding);
  proto[`${name}Slice`] = function (start = 0, end = this.length) {
    return toStringIn(this, normalized, start, Math.min(end, this.length));
  };
  proto[`${name}Write`] = function (string, offset = 0, length = this.length - offset) {
    return this.write(string, offset, length, normalized);
  };
}

// ---------------------------------------------------------------------------------------------
// Search

function searchArgs(buffer, value, byteOffset, encoding, forward) {
  if (typeof byteOffset === 'string') {
    encoding = byteOffset;
    byteOffset = undefined;
  }
  let offset = byteOffset === undefined || byteOffset === null ? (forward ? 0 : buffer.length) : +byteOffset;
  if (Number.isNaN(offset)) offset = forward ? 0 : buffer.length;
  offset = Math.trunc(offset);
  if (offset < 0) offset += buffer.length;
  const needle = typeof value === 'number'
    ? Uint8Array.of(value & 255)
    : valueBytes(value, encoding, 'one of type number or string or an instance of Buffer or Uint8Array');
  return [needle, offset];
}

function matchesAt(haystack, needle, at) {
  for (let j = 0; j < needle.length; j++) if (haystack[at + j] !== needle[j]) return false;
  return true;
}

proto.indexOf = function indexOf(value, byteOffset, encoding) {
  let [needle, offset] = searchArgs(this, value, byteOffset, encoding, true);
  if (offset < 0) offset = 0;
  if (needle.length === 0) return Math.min(offset, this.length);
  const first = needle[0];
  for (let i = offset; i <= this.length - needle.length; i++) {
    if (this[i] === first && matchesAt(this, needle, i)) return i;
  }
  return -1;
};

proto.lastIndexOf = function lastIndexOf(value, byteOffset, encoding) {
  let [needle, offset] = searchArgs(this, value, byteOffset, encoding, false);
  if (offset < 0) return -1;
  if (needle.length === 0) return Math.min(offset, this.length);
  for (let i = Math.min(offset, this.length - needle.length); i >= 0; i--) {
    if (this[i] === needle[0] && matchesAt(this, needle, i)) return i;
  }
  return -1;
};

proto.includes = function includes(value, byteOffset, encoding) {
  return this.indexOf(value, byteOffset, encoding) !== -1;
};

// ---------------------------------------------------------------------------------------------
// Reading and writing numbers

function checkOffset(buffer, offset, width) {
  if (offset === undefined) offset = 0;
  if (typeof offset !== 'number') throw invalidArgType('offset', 'of type number', offset);
  if (!Number.isInteger(offset)) throw outOfRange('offset', 'an integer', offset);
  if (buffer.length - width < 0) {
    throw codedError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', 'Attempt to access memory outside buffer bounds');
  }
  if (offset < 0 || offset > buffer.length - width) {
    throw outOfRange('offset', `>= 0 and <= ${buffer.length - width}`, offset);
  }
  return offset;
}

function checkByteLength(byteLength) {
  if (typeof byteLength !== 'number') throw invalidArgType('byteLength', 'of type number', byteLength);
  if (!Number.isInteger(byteLength) || byteLength < 1 || byteLength > 6) {
    throw outOfRange('byteLength', Number.isInteger(byteLength) ? '>= 1 and <= 6' : 'an integer', byteLength);
  }
}

function checkValue(value, min, max, width) {
  if (typeof value !== 'number') throw invalidArgType('value', 'of type number', value);
  if (value < min || value > max || Number.isNaN(value)) {
    const range = width > 4
      ? (min === 0 ? `>= 0 and < 2 ** ${width * 8}` : `>= -(2 ** ${width * 8 - 1}) and < 2 ** ${width * 8 - 1}`)
      : `>= ${min} and <= ${max}`;
    throw outOfRange('value', range, value);
  }
}

function readUnsigned(buffer, offset, width, littleEndian) {
  offset = checkOffset(buffer, offset, width);
  let value = 0;
  let scale = 1;
  for (let i = 0; i < width; i++) {
    value += buffer[littleEndian ? offset + i : offset + width - 1 - i] * scale;
    scale *= 256;
  }
  return value;
}

function readSigned(buffer, offset, width, littleEndian) {
  const value = readUnsigned(buffer, offset, width, littleEndian);
  const limit = 2 ** (width * 8 - 1);
  return value >= limit ? value - limit * 2 : value;
}

function writeBytes(buffer, value, offset, width, littleEndian) {
  offset = checkOffset(buffer, offset, width);
  let v = value < 0 ? value + 2 ** (width * 8) : value;
  for (let i = 0; i < width; i++) {
    buffer[littleEndian ? offset + i : offset + width - 1 - i] = v % 256;
    v = Math.floor(v / 256);
  }
  return offset + width;
}

const INT_WIDTHS = { 8: 1, 16: 2, 32: 4 };
for (const [bits, width] of Object.entries(INT_WIDTHS)) {
  const endians = width === 1 ? [['', true]] : [['LE', true], ['BE', false]];
  const umax = 2 ** (width * 8) - 1;
  const smax = 2 ** (width * 8 - 1) - 1;
  for (const [suffix, little] of endians) {
    proto[`readUInt${bits}${suffix}`] = function (offset = 0) {
      return readUnsigned(this, offset, width, little);
    };
    proto[`readInt${bits}${suffix}`] = function (offset = 0) {
      return readSigned(this, offset, width, little);
    };
    proto[`writeUInt${bits}${suffix}`] = function (value, offset = 0) {
      checkValue(value, 0, umax, width);
      return writeBytes(this, Math.trunc(value), offset, width, little);
    };
    proto[`writeInt${bits}${suffix}`] = function (value, offset = 0) {
      checkValue(value, -smax - 1, smax, width);
      return writeBytes(this, Math.trunc(value), offset, width, little);
    };
    proto[`readUint${bits}${suffix}`] = proto[`readUInt${bits}${suffix}`];
    proto[`writeUint${bits}${suffix}`] = proto[`writeUInt${bits}${suffix}`];
  }
}

for (const [suffix, little] of [['LE', true], ['BE', false]]) {
  proto[`readUInt${suffix}`] = function (offset, byteLength) {
    checkByteLength(byteLength);
    return readUnsigned(this, offset, byteLength, little);
  };
  proto[`readInt${suffix}`] = function (offset, byteLength) {
    checkByteLength(byteLength);
    return readSigned(this, offset, byteLength, little);
  };
  proto[`writeUInt${suffix}`] = function (value, offset, byteLength) {
    checkByteLength(byteLength);
    checkValue(value, 0, 2 ** (byteLength * 8) - 1, byteLength);
    return writeBytes(this, Math.trunc(value), offset, byteLength, little);
  };
  proto[`writeInt${suffix}`] = function (value, offset, byteLength) {
    checkByteLength(byteLength);
    const limit = 2 ** (byteLength * 8 - 1);
    checkValue(value, -limit, limit - 1, byteLength);
    return writeBytes(this, Math.trunc(value), offset, byteLength, little);
  };
  proto[`readUint${suffix}`] = proto[`readUInt${suffix}`];
  proto[`writeUint${suffix}`] = proto[`writeUInt${suffix}`];

  // Floats go through a scratch array, as in Node.
  for (const [name, Scratch, width] of [['Float', Float32Array, 4], ['Double', Float64Array, 8]]) {
    const scratch = new Scratch(1);
    const bytes = new Uint8Array(scratch.buffer);
    proto[`read${name}${suffix}`] = function (offset = 0) {
      offset = checkOffset(this, offset, width);
      for (let i = 0; i < width; i++) bytes[little ? i : width - 1 - i] = this[offset + i];
      return scratch[0];
    };
    proto[`write${name}${suffix}`] = function (value, offset = 0) {
      if (typeof value !== 'number') throw invalidArgType('value', 'of type number', value);
      offset = checkOffset(this, offset, width);
      scratch[0] = value;
      for (let i = 0; i < width; i++) this[offset + i] = bytes[little ? i : width - 1 - i];
      return offset + width;
    };
  }

  proto[`readBigUInt64${suffix}`] = function (offset = 0) {
    offset = checkOffset(this, offset, 8);
    let value = 0n;
    for (let i = 0; i < 8; i++) value = (value << 8n) | BigInt(this[little ? offset + 7 - i : offset + i]);
    return value;
  };
  proto[`readBigInt64${suffix}`] = function (offset = 0) {
    return BigInt.asIntN(64, this[`readBigUInt64${suffix}`](offset));
  };
  const writeBig = function (value, offset, min, max, range) {
    if (typeof value !== 'bigint') throw invalidArgType('value', 'of type bigint', value);
    if (value < min || value > max) throw outOfRange('value', range, value);
    offset = checkOffset(this, offset, 8);
    let v = BigInt.asUintN(64, value);
    for (let i = 0; i < 8; i++) {
      this[little ? offset + i : offset + 7 - i] = Number(v & 255n);
      v >>= 8n;
    }
    return offset + 8;
  };
  proto[`writeBigUInt64${suffix}`] = function (value, offset = 0) {
    return writeBig.call(this, value, offset, 0n, 2n ** 64n - 1n, '>= 0n and < 2n ** 64n');
  };
  proto[`writeBigInt64${suffix}`] = function (value, offset = 0) {
    return writeBig.call(this, value, offset, -(2n ** 63n), 2n ** 63n - 1n, '>= -(2n ** 63n) and < 2n ** 63n');
  };
  proto[`readBigUint64${suffix}`] = proto[`readBigUInt64${suffix}`];
  proto[`writeBigUint64${suffix}`] = proto[`writeBigUInt64${suffix}`];
}

function swap(buffer, width) {
  if (buffer.length % width !== 0) {
    throw codedError(RangeError, 'ERR_INVALID_BUFFER_SIZE', `Buffer size must be a multiple of ${width * 8}-bits`);
  }
  for (let i = 0; i < buffer.length; i += width) {
    for (let a = i, b = i + width - 1; a < b; a++, b--) {
      const t = buffer[a];
      buffer[a] = buffer[b];
      buffer[b] = t;
    }
  }
  return buffer;
}
proto.swap16 = function swap16() {
  return swap(this, 2);
};
proto.swap32 = function swap32() {
  return swap(this, 4);
};
proto.swap64 = function swap64() {
  return swap(this, 8);
};

Object.defineProperty(proto, 'parent', {
  get() {
    return this.buffer;
  },
  enumerable: true,
  configurable: true,
});
Object.defineProperty(proto, 'offset', {
  get() {
    return this.byteOffset;
  },
  enumerable: true,
  configurable: true,
});

proto[Symbol.for('nodejs.util.inspect.custom')] = function inspect() {
  const shown = Math.min(this.length, INSPECT_MAX_BYTES);
  let out = '<Buffer';
  for (let i = 0; i < shown; i++) out += ' ' + (this[i] + 0x100).toString(16).slice(1);
  if (this.length > shown) out += ` ... ${this.length - shown} more byte${this.length - shown > 1 ? 's' : ''}`;
  return out + '>';
};
proto.inspect = proto[Symbol.for('nodejs.util.inspect.custom')];

// ---------------------------------------------------------------------------------------------
// The rest of node:buffer

export function SlowBuffer(size) {
  return Buffer.allocUnsafeSlow(size);
}

export function isUtf8(input) {
  return native.utf8Valid(ArrayBuffer.isView(input) ? new Uint8Array(input.buffer, input.byteOffset, input.byteLength) : input);
}

export function isAscii(input) {
  const bytes = ArrayBuffer.isView(input) ? new Uint8Array(input.buffer, input.byteOffset, input.byteLength) : new Uint8Array(input);
  for (let i = 0; i < bytes.length; i++) if (bytes[i] > 0x7f) return false;
  return true;
}

export function transcode() {
  throw notAvailable('buffer.transcode');
}

export const atob = globalThis.atob;
export const btoa = globalThis.btoa;
export const Blob = globalThis.Blob;

export default {
  Buffer,
  SlowBuffer,
  kMaxLength,
  kStringMaxLength,
  constants,
  INSPECT_MAX_BYTES,
  isUtf8,
  isAscii,
  transcode,
  atob,
  btoa,
  Blob,
};
