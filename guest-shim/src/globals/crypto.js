// The global `crypto` (Web Crypto): getRandomValues and randomUUID on the host's secure
// generator, and the part of `crypto.subtle` a flow can do natively: digests and HMAC.
(function crypto(native) {
  'use strict';

  const illegalConstructor = () => {
    const error = new TypeError('Illegal constructor');
    error.code = 'ERR_ILLEGAL_CONSTRUCTOR';
    return error;
  };

  const INTEGER_ARRAYS = new Set([
    'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array',
    'BigInt64Array', 'BigUint64Array',
  ]);
  const toString = Object.prototype.toString;

  function getRandomValues(array) {
    // The common case first: walkerOS draws its ids from a fresh Uint8Array.
    if (array instanceof Uint8Array && array.byteLength <= 65536) {
      native.randomFill(array);
      return array;
    }
    if (!ArrayBuffer.isView(array) || !INTEGER_ARRAYS.has(toString.call(array).slice(8, -1))) {
      throw new DOMException(
        'The data argument must be an integer-type TypedArray',
        'TypeMismatchError',
      );
    }
    if (array.byteLength > 65536) {
      throw new DOMException('The requested length exceeds 65,536 bytes', 'QuotaExceededError');
    }
    native.randomFill(array instanceof Uint8Array ? array : new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
    return array;
  }

  const HEX = [];
  for (let i = 0; i < 256; i++) HEX.push((i + 0x100).toString(16).slice(1));

  function randomUUID() {
    const b = new Uint8Array(16);
    native.randomFill(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    return (
      HEX[b[0]] + HEX[b[1]] + HEX[b[2]] + HEX[b[3]] + '-' + HEX[b[4]] + HEX[b[5]] + '-' + HEX[b[6]] + HEX[b[7]] + '-' +
      HEX[b[8]] + HEX[b[9]] + '-' + HEX[b[10]] + HEX[b[11]] + HEX[b[12]] + HEX[b[13]] + HEX[b[14]] + HEX[b[15]]
    );
  }

  // ---------------------------------------------------------------------------------------------
  // crypto.subtle: digest, and HMAC keys (import, export, sign, verify).

  const DIGESTS = { 'SHA-1': 'sha1', 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };

  function bufferSource(data, what) {
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    throw new TypeError(`Failed to execute '${what}' on 'SubtleCrypto': parameter is not of type 'BufferSource'`);
  }

  function algorithmName(algorithm) {
    const name = typeof algorithm === 'string' ? algorithm : algorithm?.name;
    if (typeof name !== 'string') throw new TypeError('Algorithm: name is required');
    return name.toUpperCase();
  }

  function hashName(algorithm) {
    const name = algorithmName(algorithm);
    if (DIGESTS[name] === undefined) throw new DOMException('Unrecognized algorithm name', 'NotSupportedError');
    return name;
  }

  const KEY = Symbol('key');

  class CryptoKey {
    constructor(token) {
      if (token !== KEY) throw illegalConstructor();
    }
    get [Symbol.toStringTag]() {
      return 'CryptoKey';
    }
  }

  function hmacKey(bytes, hash, extractable, usages, length) {
    const key = new CryptoKey(KEY);
    Object.defineProperties(key, {
      type: { value: 'secret', enumerable: true },
      extractable: { value: !!extractable, enumerable: true },
      algorithm: { value: Object.freeze({ name: 'HMAC', hash: Object.freeze({ name: hash }), length }), enumerable: true },
      usages: { value: Object.freeze([...usages]), enumerable: true },
      [KEY]: { value: bytes },
    });
    return key;
  }

  function usable(key, usage) {
    if (!(key instanceof CryptoKey) || key.algorithm.name !== 'HMAC') {
      throw new DOMException('Unable to use this key with this algorithm', 'InvalidAccessError');
    }
    if (!key.usages.includes(usage)) {
      throw new DOMException(`Unable to use this key to ${usage}`, 'InvalidAccessError');
    }
    return key[KEY];
  }

  function equalBytes(a, b) {
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
    return diff === 0;
  }

  // Every method returns a promise and reports errors by rejecting it, as WebCrypto does.
  const async = (fn) =>
    function (...args) {
      try {
        return Promise.resolve(fn.apply(this, args));
      } catch (err) {
        return Promise.reject(err);
      }
    };

  class SubtleCrypto {
    constructor(token) {
      if (token !== KEY) throw illegalConstructor();
    }
    get [Symbol.toStringTag]() {
      return 'SubtleCrypto';
    }
  }

  Object.assign(SubtleCrypto.prototype, {
    digest: async((algorithm, data) => native.digest(DIGESTS[hashName(algorithm)], bufferSource(data, 'digest'))),

    importKey: async((format, keyData, algorithm, extractable, usages) => {
      if (algorithmName(algorithm) !== 'HMAC') throw new DOMException('Unrecognized algorithm name', 'NotSupportedError');
      if (format !== 'raw') throw new DOMException(`Unsupported key format ${format}`, 'NotSupportedError');
      const bytes = bufferSource(keyData, 'importKey').slice();
      const hash = hashName(algorithm.hash);
      return hmacKey(bytes, hash, extractable, usages, algorithm.length ?? bytes.length * 8);
    }),

    exportKey: async((format, key) => {
      if (format !== 'raw') throw new DOMException(`Unsupported key format ${format}`, 'NotSupportedError');
      if (!(key instanceof CryptoKey)) throw new TypeError('The "key" argument must be a CryptoKey');
      if (!key.extractable) throw new DOMException('key is not extractable', 'InvalidAccessError');
      return key[KEY].slice().buffer;
    }),

    generateKey: async((algorithm, extractable, usages) => {
      if (algorithmName(algorithm) !== 'HMAC') throw new DOMException('Unrecognized algorithm name', 'NotSupportedError');
      const hash = hashName(algorithm.hash);
      const length = algorithm.length ?? (hash === 'SHA-384' || hash === 'SHA-512' ? 1024 : 512);
      const bytes = new Uint8Array(Math.ceil(length / 8));
      native.randomFill(bytes);
      return hmacKey(bytes, hash, extractable, usages, length);
    }),

    sign: async((algorithm, key, data) => {
      if (algorithmName(algorithm) !== 'HMAC') throw new DOMException('Unrecognized algorithm name', 'NotSupportedError');
      const bytes = usable(key, 'sign');
      return native.hmac(DIGESTS[key.algorithm.hash.name], bytes, bufferSource(data, 'sign'));
    }),

    verify: async((algorithm, key, signature, data) => {
      if (algorithmName(algorithm) !== 'HMAC') throw new DOMException('Unrecognized algorithm name', 'NotSupportedError');
      const bytes = usable(key, 'verify');
      const expected = new Uint8Array(native.hmac(DIGESTS[key.algorithm.hash.name], bytes, bufferSource(data, 'verify')));
      return equalBytes(expected, bufferSource(signature, 'verify'));
    }),
  });
  for (const name of ['encrypt', 'decrypt', 'deriveBits', 'deriveKey', 'wrapKey', 'unwrapKey']) {
    SubtleCrypto.prototype[name] = async(() => {
      throw new DOMException(`crypto.subtle.${name} is not available in flowhost`, 'NotSupportedError');
    });
  }

  class Crypto {
    #subtle = new SubtleCrypto(KEY);
    constructor(token) {
      if (token !== KEY) throw illegalConstructor();
    }
    get subtle() {
      return this.#subtle;
    }
    getRandomValues(array) {
      return getRandomValues(array);
    }
    randomUUID() {
      return randomUUID();
    }
    get [Symbol.toStringTag]() {
      return 'Crypto';
    }
  }

  const define = (name, value) =>
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
  define('crypto', new Crypto(KEY));
  define('Crypto', Crypto);
  define('CryptoKey', CryptoKey);
  define('SubtleCrypto', SubtleCrypto);
})
