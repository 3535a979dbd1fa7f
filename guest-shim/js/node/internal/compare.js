// Deep equality with Node's strict and loose rules, for util.isDeepStrictEqual and assert.

const toString = Object.prototype.toString;

function ownKeys(value, strict) {
  const keys = Object.keys(value);
  if (!strict) return keys;
  for (const symbol of Object.getOwnPropertySymbols(value)) {
    if (Object.prototype.propertyIsEnumerable.call(value, symbol)) keys.push(symbol);
  }
  return keys;
}

export function isDeepEqual(a, b, strict, memos = new Map()) {
  if (strict ? Object.is(a, b) : a === b || (a == b && (typeof a !== 'object' || a === null) && (typeof b !== 'object' || b === null))) {
    return true;
  }
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    return !strict && (a === null || typeof a !== 'object') && (b === null || typeof b !== 'object') ? a == b : false;
  }
  const tag = toString.call(a);
  if (tag !== toString.call(b)) return false;
  if (strict && Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;

  const pair = memos.get(a);
  if (pair !== undefined && pair === b) return true;
  memos.set(a, b);

  if (tag === '[object Date]' && a.getTime() !== b.getTime()) return false;
  if (tag === '[object RegExp]' && (a.source !== b.source || a.flags !== b.flags || a.lastIndex !== b.lastIndex)) return false;
  if (a instanceof Error && (a.message !== b.message || a.name !== b.name)) return false;
  if (['[object Number]', '[object String]', '[object Boolean]', '[object BigInt]', '[object Symbol]'].includes(tag)) {
    if (!Object.is(a.valueOf(), b.valueOf())) return false;
  }
  if (ArrayBuffer.isView(a)) {
    if (a.byteLength !== b.byteLength) return false;
    const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  if (tag === '[object ArrayBuffer]') {
    if (!isDeepEqual(new Uint8Array(a), new Uint8Array(b), strict, memos)) return false;
  }
  if (tag === '[object Map]') {
    if (a.size !== b.size) return false;
    for (const [key, value] of a) {
      if (!b.has(key)) {
        let found = false;
        for (const [k, v] of b) {
          if (isDeepEqual(key, k, strict, memos) && isDeepEqual(value, v, strict, memos)) {
            found = true;
            break;
          }
        }
        if (!found) return false;
      } else if (!isDeepEqual(value, b.get(key), strict, memos)) {
        return false;
      }
    }
  }
  if (tag === '[object Set]') {
    if (a.size !== b.size) return false;
    for (const value of a) {
      if (b.has(value)) continue;
      let found = false;
      for (const v of b) {
        if (isDeepEqual(value, v, strict, memos)) {
          found = true;
          break;
        }
      }
      if (!found) return false;
    }
  }

  // Typed arrays were compared byte by byte above; only their extra properties are left.
  const isIndex = ArrayBuffer.isView(a) ? (key) => typeof key === 'string' && /^\d+$/.test(key) : () => false;
  const keysA = ownKeys(a, strict).filter((key) => !isIndex(key));
  const keysB = ownKeys(b, strict).filter((key) => !isIndex(key));
  if (keysA.length !== keysB.length) return false;
  for (const key of keysA) {
    if (!Object.prototype.hasOwnProperty.call(b, key)) return false;
    if (!isDeepEqual(a[key], b[key], strict, memos)) return false;
  }
  return true;
}
