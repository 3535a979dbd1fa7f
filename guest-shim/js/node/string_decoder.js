// node:string_decoder for flowhost guests: decodes a byte stream chunk by chunk without
// splitting characters (utf8, utf16le) or base64 groups across chunks.
import { Buffer } from './buffer.js';
import { codedError } from './internal/errors.js';

function normalize(encoding) {
  const e = String(encoding ?? 'utf8').toLowerCase();
  switch (e) {
    case 'utf8':
    case 'utf-8':
    case '':
      return 'utf8';
    case 'ucs2':
    case 'ucs-2':
    case 'utf16le':
    case 'utf-16le':
      return 'utf16le';
    case 'latin1':
    case 'binary':
      return 'latin1';
    case 'base64':
    case 'base64url':
    case 'ascii':
    case 'hex':
      return e;
    default:
      throw codedError(TypeError, 'ERR_UNKNOWN_ENCODING', `Unknown encoding: ${encoding}`);
  }
}

// Bytes at the end of `bytes` that start a UTF-8 character not finished yet.
function utf8Tail(bytes) {
  const n = bytes.length;
  for (let back = 1; back <= Math.min(3, n); back++) {
    const b = bytes[n - back];
    if ((b & 0xc0) === 0x80) continue;
    const need = b >= 0xf0 && b <= 0xf4 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 && b < 0xe0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

export class StringDecoder {
  #pending = Buffer.alloc(0);

  constructor(encoding) {
    this.encoding = normalize(encoding);
  }

  write(chunk) {
    if (typeof chunk === 'string') return chunk;
    let bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.#pending.length > 0) bytes = Buffer.concat([this.#pending, bytes]);
    let keep = 0;
    switch (this.encoding) {
      case 'utf8':
        keep = utf8Tail(bytes);
        break;
      case 'utf16le': {
        keep = bytes.length % 2;
        // Keep a high surrogate until its low half arrives.
        if (bytes.length - keep >= 2) {
          const unit = bytes[bytes.length - keep - 2] | (bytes[bytes.length - keep - 1] << 8);
          if (unit >= 0xd800 && unit <= 0xdbff) keep += 2;
        }
        break;
      }
      case 'base64':
      case 'base64url':
        keep = bytes.length % 3;
        break;
    }
    this.#pending = Buffer.from(bytes.subarray(bytes.length - keep));
    return bytes.toString(this.encoding, 0, bytes.length - keep);
  }

  end(chunk) {
    let text = chunk === undefined ? '' : this.write(chunk);
    if (this.#pending.length > 0) {
      text += this.encoding === 'utf8' ? '\ufffd' : this.#pending.toString(this.encoding);
      this.#pending = Buffer.alloc(0);
    }
    return text;
  }

  text(chunk, offset) {
    return this.write(chunk.subarray(offset));
  }

  get lastNeed() {
    return this.#pending.length;
  }
}

export default { StringDecoder };
