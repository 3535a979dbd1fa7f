// node:querystring for flowhost guests: Node's parse and stringify (repeated keys become
// arrays, '+' is a space, malformed escapes are kept as they are).
import { Buffer } from './buffer.js';

// Characters querystring.escape leaves alone: A-Z a-z 0-9 - . _ ~ ! ' ( ) *
const SAFE = /^[A-Za-z0-9\-._~!'()*]*$/;

export function escape(value) {
  const text = typeof value === 'string' ? value : String(value);
  if (SAFE.test(text)) return text;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (SAFE.test(c)) {
      out += c;
      continue;
    }
    const code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) {
        const error = new URIError('URI malformed');
        error.code = 'ERR_INVALID_URI';
        throw error;
      }
      out += encodeURIComponent(text.slice(i, i + 2));
      i++;
    } else if (code >= 0xdc00 && code <= 0xdfff) {
      const error = new URIError('URI malformed');
      error.code = 'ERR_INVALID_URI';
      throw error;
    } else {
      out += encodeURIComponent(c);
    }
  }
  return out;
}

// Percent-decoding that keeps what is not a valid escape and decodes bytes as UTF-8.
export function unescapeBuffer(text, decodeSpaces) {
  const bytes = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2b && decodeSpaces) {
      bytes.push(0x20);
    } else if (c === 0x25 && i + 2 < text.length + 0 && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      for (const b of Buffer.from(text[i] + (c >= 0xd800 && c <= 0xdbff ? text[i + 1] ?? '' : ''))) bytes.push(b);
      if (c >= 0xd800 && c <= 0xdbff) i++;
    }
  }
  return Buffer.from(bytes);
}

export function unescape(text, decodeSpaces) {
  try {
    return decodeURIComponent(text);
  } catch {
    return unescapeBuffer(text, decodeSpaces).toString();
  }
}

function decodeComponent(text, decoder) {
  if (!text.includes('%') && !text.includes('+')) return text;
  const spaced = text.replace(/\+/g, ' ');
  if (decoder !== unescape) {
    try {
      return decoder(spaced);
    } catch {
      return unescape(spaced, true);
    }
  }
  return unescape(spaced, true);
}

export function parse(text, sep = '&', eq = '=', options = {}) {
  const result = Object.create(null);
  if (typeof text !== 'string' || text.length === 0) return result;
  sep = sep || '&';
  eq = eq || '=';
  const maxKeys = typeof options?.maxKeys === 'number' ? options.maxKeys : 1000;
  const decoder = typeof options?.decodeURIComponent === 'function' ? options.decodeURIComponent : unescape;
  let pairs = text.split(sep);
  if (maxKeys > 0) pairs = pairs.slice(0, maxKeys);
  for (const pair of pairs) {
    if (pair.length === 0 && pairs.length > 1) continue;
    const at = pair.indexOf(eq);
    const key = decodeComponent(at < 0 ? pair : pair.slice(0, at), decoder);
    const value = at < 0 ? '' : decodeComponent(pair.slice(at + eq.length), decoder);
    const existing = result[key];
    if (existing === undefined) result[key] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else result[key] = [existing, value];
  }
  return result;
}

function stringifyPrimitive(value) {
  if (typeof value === 'string') return value;
  if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'bigint') return String(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return '';
}

export function stringify(object, sep = '&', eq = '=', options = {}) {
  sep = sep || '&';
  eq = eq || '=';
  const encode = typeof options?.encodeURIComponent === 'function' ? options.encodeURIComponent : escape;
  if (object === null || typeof object !== 'object') return '';
  const parts = [];
  for (const key of Object.keys(object)) {
    const value = object[key];
    const name = encode(stringifyPrimitive(key)) + eq;
    if (Array.isArray(value)) {
      for (const item of value) parts.push(name + encode(stringifyPrimitive(item)));
    } else {
      parts.push(name + encode(stringifyPrimitive(value)));
    }
  }
  return parts.join(sep);
}

export const decode = parse;
export const encode = stringify;

export default { escape, unescape, unescapeBuffer, parse, stringify, decode, encode };
