// TextEncoder, TextDecoder, atob and btoa, on the natives of `primitives.rs`.
//
// They replace Javy's TextEncoder/TextDecoder, which lack `encodeInto`, streaming decoding and
// every encoding but UTF-8.
(function encoding(native) {
  'use strict';

  const define = (name, value) =>
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });

  // Any BufferSource as a Uint8Array over the same memory.
  function bytesOf(input, what) {
    if (input instanceof Uint8Array) return input;
    if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    if (input instanceof ArrayBuffer || (typeof SharedArrayBuffer === 'function' && input instanceof SharedArrayBuffer)) {
      return new Uint8Array(input);
    }
    throw new TypeError(`The "${what}" argument must be an instance of ArrayBuffer or ArrayBufferView`);
  }

  // ---------------------------------------------------------------------------------------------
  // TextEncoder

  // UTF-8 length of one UTF-16 code unit sequence starting at `i` of `s`: [bytes, units].
  function codePointAt(s, i) {
    const c = s.charCodeAt(i);
    if (c < 0x80) return [1, 1];
    if (c < 0x800) return [2, 1];
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) return [4, 2];
    }
    return [3, 1];
  }

  class TextEncoder {
    get encoding() {
      return 'utf-8';
    }
    encode(input = '') {
      return new Uint8Array(native.utf8Encode(String(input)));
    }
    encodeInto(source, destination) {
      if (!(destination instanceof Uint8Array)) {
        throw new TypeError('The "dest" argument must be an instance of Uint8Array');
      }
      source = String(source);
      const encoded = new Uint8Array(native.utf8Encode(source));
      if (encoded.length <= destination.length) {
        destination.set(encoded);
        return { read: source.length, written: encoded.length };
      }
      // Only whole characters that fit.
      let read = 0, written = 0;
      while (read < source.length) {
        const [bytes, units] = codePointAt(source, read);
        if (written + bytes > destination.length) break;
        read += units;
        written += bytes;
      }
      destination.set(encoded.subarray(0, written));
      return { read, written };
    }
    get [Symbol.toStringTag]() {
      return 'TextEncoder';
    }
  }

  // ---------------------------------------------------------------------------------------------
  // TextDecoder: UTF-8, UTF-16LE and windows-1252 (what the Encoding standard calls latin1).

  const LABELS = new Map();
  for (const label of ['unicode-1-1-utf-8', 'unicode11utf8', 'unicode20utf8', 'utf-8', 'utf8', 'x-unicode20utf8']) {
    LABELS.set(label, 'utf-8');
  }
  for (const label of ['csunicode', 'iso-10646-ucs-2', 'ucs-2', 'unicode', 'unicodefeff', 'utf-16', 'utf-16le']) {
    LABELS.set(label, 'utf-16le');
  }
  for (const label of ['ansi_x3.4-1968', 'ascii', 'cp1252', 'cp819', 'csisolatin1', 'ibm819', 'iso-8859-1', 'iso-ir-100',
    'iso8859-1', 'iso88591', 'iso_8859-1', 'iso_8859-1:1987', 'l1', 'latin1', 'us-ascii', 'windows-1252', 'x-cp1252']) {
    LABELS.set(label, 'windows-1252');
  }

  // windows-1252's 0x80..0x9F; the rest of the bytes map to the same code points.
  const CP1252 = [
    0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d, 0x17d, 0x8f,
    0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
  ];

  function invalidData(encoding) {
    const error = new TypeError(`The encoded data was not valid for encoding ${encoding}`);
    error.code = 'ERR_ENCODING_INVALID_ENCODED_DATA';
    return error;
  }

  // Length of the incomplete UTF-8 sequence at the end of `bytes` (0 when it ends whole).
  function incompleteTail(bytes) {
    const n = bytes.length;
    for (let back = 1; back <= Math.min(3, n); back++) {
      const b = bytes[n - back];
      if ((b & 0xc0) === 0x80) continue; // continuation byte: keep looking for the lead
      const need = b >= 0xf0 && b <= 0xf4 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 && b < 0xe0 ? 2 : 1;
      return need > back ? back : 0;
    }
    return 0;
  }

  function concat(a, b) {
    if (a.length === 0) return b;
    const out = new Uint8Array(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
  }

  class TextDecoder {
    #encoding;
    #fatal;
    #ignoreBOM;
    #pending = new Uint8Array(0);
    #started = false;

    constructor(label = 'utf-8', options = {}) {
      const encoding = LABELS.get(String(label).trim().toLowerCase());
      if (encoding === undefined) {
        const error = new RangeError(`The "${label}" encoding is not supported`);
        error.code = 'ERR_ENCODING_NOT_SUPPORTED';
        throw error;
      }
      this.#encoding = encoding;
      this.#fatal = !!options?.fatal;
      this.#ignoreBOM = !!options?.ignoreBOM;
    }
    get encoding() {
      return this.#encoding;
    }
    get fatal() {
      return this.#fatal;
    }
    get ignoreBOM() {
      return this.#ignoreBOM;
    }

    decode(input, options = {}) {
      const stream = !!options?.stream;
      let bytes = input === undefined ? new Uint8Array(0) : bytesOf(input, 'input');
      bytes = concat(this.#pending, bytes);
      this.#pending = new Uint8Array(0);

      let text;
      switch (this.#encoding) {
        case 'utf-8': {
          const tail = stream ? incompleteTail(bytes) : 0;
          if (tail > 0) {
            this.#pending = bytes.slice(bytes.length - tail);
            bytes = bytes.subarray(0, bytes.length - tail);
          }
          if (this.#fatal && !native.utf8Valid(bytes)) {
            this.#reset();
            throw invalidData('utf-8');
          }
          text = native.utf8Decode(bytes);
          break;
        }
        case 'utf-16le': {
          const even = bytes.length & ~1;
          if (stream && even < bytes.length) {
            this.#pending = bytes.slice(even);
            bytes = bytes.subarray(0, even);
          } else if (even < bytes.length && this.#fatal) {
            this.#reset();
            throw invalidData('utf-16le');
          }
          text = '';
          for (let i = 0; i + 1 < bytes.length; i += 2) text += String.fromCharCode(bytes[i] | (bytes[i + 1] << 8));
          if (!stream && even < bytes.length) text += '\ufffd';
          text = text.toWellFormed ? text.toWellFormed() : text;
          break;
        }
        default: {
          text = '';
          for (let i = 0; i < bytes.length; i++) {
            const b = bytes[i];
            text += String.fromCharCode(b >= 0x80 && b < 0xa0 ? CP1252[b - 0x80] : b);
          }
        }
      }

      if (!this.#started && text.length > 0) {
        this.#started = true;
        if (!this.#ignoreBOM && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      }
      if (!stream) this.#reset();
      return text;
    }

    #reset() {
      this.#pending = new Uint8Array(0);
      this.#started = false;
    }

    get [Symbol.toStringTag]() {
      return 'TextDecoder';
    }
  }

  // ---------------------------------------------------------------------------------------------
  // atob and btoa (forgiving base64 of the HTML standard, errors as DOMExceptions).

  function btoa(data) {
    if (arguments.length === 0) throw new TypeError('The "data" argument must be specified');
    data = String(data);
    const bytes = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const c = data.charCodeAt(i);
      if (c > 0xff) throw new DOMException('Invalid character', 'InvalidCharacterError');
      bytes[i] = c;
    }
    return native.base64Encode(bytes);
  }

  function atob(data) {
    if (arguments.length === 0) throw new TypeError('The "data" argument must be specified');
    let text = String(data).replace(/[\t\n\f\r ]/g, '');
    if (text.length % 4 === 0) text = text.replace(/==?$/, '');
    if (text.length % 4 === 1 || /[^A-Za-z0-9+/]/.test(text)) {
      throw new DOMException('The string to be decoded is not correctly encoded.', 'InvalidCharacterError');
    }
    return native.latin1Decode(native.base64Decode(text));
  }

  define('TextEncoder', TextEncoder);
  define('TextDecoder', TextDecoder);
  define('atob', atob);
  define('btoa', btoa);
})
