// node:crypto for flowhost guests: createHash (md5, sha1, sha224, sha256, sha384, sha512),
// createHmac, random bytes, integers and UUIDs, timingSafeEqual and the Web Crypto object.
// Digests and HMACs run natively in the shim (`__flowhost_native`); ciphers, key pairs and key
// derivation are not available and throw when called.
import { Buffer } from './buffer.js';
import { codedError, invalidArgType, outOfRange, notAvailable } from './internal/errors.js';

const native = globalThis.__flowhost_native;
const HASHES = ['md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512'];
const ALIASES = { 'rsa-md5': 'md5', 'rsa-sha1': 'sha1', 'rsa-sha256': 'sha256', 'rsa-sha384': 'sha384', 'rsa-sha512': 'sha512', 'sha-1': 'sha1', 'sha-256': 'sha256', 'sha-384': 'sha384', 'sha-512': 'sha512' };

function algorithmOf(name) {
  if (typeof name !== 'string') throw invalidArgType('algorithm', 'of type string', name);
  const lower = name.toLowerCase();
  const resolved = ALIASES[lower] ?? lower;
  if (!HASHES.includes(resolved)) throw new Error('Digest method not supported');
  return resolved;
}

// Data for update(): strings in `encoding` (utf8 by default), or any ArrayBufferView.
function chunkOf(data, encoding) {
  if (typeof data === 'string') {
    return encoding === undefined || encoding === 'utf8' || encoding === 'utf-8' ? data : Buffer.from(data, encoding);
  }
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw invalidArgType('data', 'of type string or an instance of Buffer, TypedArray, or DataView', data);
}

// All chunks as one value the natives accept: a lone string stays a string (hashed as UTF-8).
function joined(chunks) {
  if (chunks.length === 0) return '';
  if (chunks.length === 1) return chunks[0];
  return Buffer.concat(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c)));
}

function output(result, encoding) {
  const buffer = Buffer.from(result);
  return encoding === undefined || encoding === 'buffer' ? buffer : buffer.toString(encoding);
}

function finalized() {
  return codedError(Error, 'ERR_CRYPTO_HASH_FINALIZED', 'Digest already called');
}

export class Hash {
  #algorithm;
  #chunks = [];
  #done = false;

  constructor(algorithm, options) {
    this.#algorithm = algorithmOf(algorithm);
    if (options?.outputLength !== undefined) throw notAvailable('createHash outputLength');
  }
  update(data, encoding) {
    if (this.#done) throw finalized();
    this.#chunks.push(chunkOf(data, encoding));
    return this;
  }
  digest(encoding) {
    if (this.#done) throw finalized();
    this.#done = true;
    const result = native.digest(this.#algorithm, joined(this.#chunks));
    this.#chunks = [];
    return output(result, encoding);
  }
  copy() {
    if (this.#done) throw finalized();
    const copy = new Hash(this.#algorithm);
    copy.#chunks = this.#chunks.slice();
    return copy;
  }
}

export class Hmac {
  #algorithm;
  #key;
  #chunks = [];
  #done = false;

  constructor(algorithm, key, options) {
    this.#algorithm = algorithmOf(algorithm);
    if (typeof key === 'string') key = Buffer.from(key, options?.encoding);
    else if (typeof key?.export === 'function' && key.type === 'secret') key = key.export();
    else if (ArrayBuffer.isView(key)) key = new Uint8Array(key.buffer, key.byteOffset, key.byteLength);
    else if (key instanceof ArrayBuffer) key = new Uint8Array(key);
    else throw invalidArgType('key', 'of type string or an instance of ArrayBuffer, Buffer, TypedArray, DataView, KeyObject, or CryptoKey', key);
    this.#key = key;
  }
  update(data, encoding) {
    if (this.#done) throw finalized();
    this.#chunks.push(chunkOf(data, encoding));
    return this;
  }
  digest(encoding) {
    if (this.#done) return output(new ArrayBuffer(0), encoding);
    this.#done = true;
    const result = native.hmac(this.#algorithm, this.#key, joined(this.#chunks));
    this.#chunks = [];
    return output(result, encoding);
  }
}

export function createHash(algorithm, options) {
  return new Hash(algorithm, options);
}

export function createHmac(algorithm, key, options) {
  return new Hmac(algorithm, key, options);
}

export function hash(algorithm, data, outputEncoding = 'hex') {
  return createHash(algorithm).update(data).digest(outputEncoding);
}

export function getHashes() {
  return HASHES.slice();
}

// ---------------------------------------------------------------------------------------------
// Randomness, from the host's secure generator

function checkSize(size) {
  if (typeof size !== 'number') throw invalidArgType('size', 'of type number', size);
  if (!(size >= 0 && size <= 2 ** 31 - 1) || !Number.isInteger(size)) throw outOfRange('size', '>= 0 && <= 2147483647', size);
}

function fill(bytes) {
  // randomFill takes at most 64 KiB per call, as getRandomValues does.
  for (let offset = 0; offset < bytes.length; offset += 65536) native.randomFill(bytes.subarray(offset, offset + 65536));
  return bytes;
}

export function randomBytes(size, callback) {
  checkSize(size);
  const bytes = fill(Buffer.alloc(size));
  if (typeof callback === 'function') {
    process.nextTick(callback, null, bytes);
    return undefined;
  }
  return bytes;
}
export const pseudoRandomBytes = randomBytes;

export function randomFillSync(buffer, offset = 0, size) {
  if (!ArrayBuffer.isView(buffer) && !(buffer instanceof ArrayBuffer)) {
    throw invalidArgType('buf', 'an instance of ArrayBuffer or ArrayBufferView', buffer);
  }
  const bytes = buffer instanceof ArrayBuffer ? new Uint8Array(buffer) : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const end = size === undefined ? bytes.length : offset + size;
  fill(bytes.subarray(offset, end));
  return buffer;
}

export function randomFill(buffer, offset, size, callback) {
  if (typeof offset === 'function') {
    callback = offset;
    offset = 0;
    size = undefined;
  } else if (typeof size === 'function') {
    callback = size;
    size = undefined;
  }
  randomFillSync(buffer, offset, size);
  process.nextTick(callback, null, buffer);
}

export function randomInt(min, max, callback) {
  if (typeof max === 'function' || max === undefined) {
    callback = max;
    max = min;
    min = 0;
  }
  if (!Number.isSafeInteger(min)) throw invalidArgType('min', 'a safe integer', min);
  if (!Number.isSafeInteger(max)) throw invalidArgType('max', 'a safe integer', max);
  if (max <= min) {
    throw outOfRange('max', `greater than the value of "min" (${min})`, max);
  }
  const range = max - min;
  if (range > 2 ** 48) throw outOfRange('max - min', '<= 281474976710655', range);
  // Rejection sampling over 48 random bits keeps every value equally likely.
  const limit = 2 ** 48 - (2 ** 48 % range);
  const bytes = new Uint8Array(6);
  let x;
  do {
    native.randomFill(bytes);
    x = bytes[0] * 2 ** 40 + bytes[1] * 2 ** 32 + bytes[2] * 2 ** 24 + bytes[3] * 2 ** 16 + bytes[4] * 2 ** 8 + bytes[5];
  } while (x >= limit);
  const value = min + (x % range);
  if (typeof callback === 'function') {
    process.nextTick(callback, null, value);
    return undefined;
  }
  return value;
}

export function randomUUID() {
  return globalThis.crypto.randomUUID();
}

export function getRandomValues(array) {
  return globalThis.crypto.getRandomValues(array);
}

export function timingSafeEqual(a, b) {
  if (!ArrayBuffer.isView(a)) throw invalidArgType('buf1', 'an instance of ArrayBuffer, Buffer, TypedArray, or DataView', a);
  if (!ArrayBuffer.isView(b)) throw invalidArgType('buf2', 'an instance of ArrayBuffer, Buffer, TypedArray, or DataView', b);
  if (a.byteLength !== b.byteLength) {
    throw codedError(RangeError, 'ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH', 'Input buffers must have the same byte length');
  }
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

// A secret KeyObject: enough for createHmac(createSecretKey(...)).
export class KeyObject {
  #bytes;
  constructor(type, bytes) {
    this.type = type;
    this.#bytes = bytes;
  }
  get symmetricKeySize() {
    return this.#bytes.length;
  }
  export() {
    return Buffer.from(this.#bytes);
  }
  equals(other) {
    return other instanceof KeyObject && timingSafeEqual(this.#bytes, other.export());
  }
}

export function createSecretKey(key, encoding) {
  const bytes = typeof key === 'string' ? Buffer.from(key, encoding) : Buffer.from(key);
  return new KeyObject('secret', bytes);
}

export const webcrypto = globalThis.crypto;
export const subtle = globalThis.crypto.subtle;
export const constants = {};

const unavailable = (name) =>
  function () {
    throw notAvailable(`crypto.${name}`);
  };
export const createCipheriv = unavailable('createCipheriv');
export const createDecipheriv = unavailable('createDecipheriv');
export const createSign = unavailable('createSign');
export const createVerify = unavailable('createVerify');
export const createPublicKey = unavailable('createPublicKey');
export const createPrivateKey = unavailable('createPrivateKey');
export const createECDH = unavailable('createECDH');
export const createDiffieHellman = unavailable('createDiffieHellman');
export const generateKeyPair = unavailable('generateKeyPair');
export const generateKeyPairSync = unavailable('generateKeyPairSync');
export const pbkdf2 = unavailable('pbkdf2');
export const pbkdf2Sync = unavailable('pbkdf2Sync');
export const scrypt = unavailable('scrypt');
export const scryptSync = unavailable('scryptSync');
export const hkdf = unavailable('hkdf');
export const hkdfSync = unavailable('hkdfSync');
export const publicEncrypt = unavailable('publicEncrypt');
export const privateDecrypt = unavailable('privateDecrypt');
export const sign = unavailable('sign');
export const verify = unavailable('verify');
export const getCiphers = () => [];
export const getCurves = () => [];

export default {
  Hash,
  Hmac,
  KeyObject,
  createHash,
  createHmac,
  createSecretKey,
  hash,
  getHashes,
  randomBytes,
  pseudoRandomBytes,
  randomFillSync,
  randomFill,
  randomInt,
  randomUUID,
  getRandomValues,
  timingSafeEqual,
  webcrypto,
  subtle,
  constants,
  createCipheriv,
  createDecipheriv,
  createSign,
  createVerify,
  createPublicKey,
  createPrivateKey,
  createECDH,
  createDiffieHellman,
  generateKeyPair,
  generateKeyPairSync,
  pbkdf2,
  pbkdf2Sync,
  scrypt,
  scryptSync,
  hkdf,
  hkdfSync,
  publicEncrypt,
  privateDecrypt,
  sign,
  verify,
  getCiphers,
  getCurves,
};
