// util.inspect and util.format for flowhost guests: Node's notation for values (single-quoted
// strings, `[Function: f]`, `Map(1) { 'a' => 1 }`, `[Circular *1]`, depth-limited `[Object]`)
// and its line breaking at 72 columns, without colors or hidden properties.

const customInspect = Symbol.for('nodejs.util.inspect.custom');
const toString = Object.prototype.toString;

const DEFAULTS = { depth: 2, breakLength: 80, maxArrayLength: 100, maxStringLength: 10000, sorted: false, compact: 3 };

function quote(string) {
  const escaped = string.replace(/[\\'\n\r\t\b\f\v\0-\x1f\x7f]/g, (c) => {
    switch (c) {
      case '\\': return '\\\\';
      case "'": return "\\'";
      case '\n': return '\\n';
      case '\r': return '\\r';
      case '\t': return '\\t';
      case '\b': return '\\b';
      case '\f': return '\\f';
      case '\v': return '\\v';
      default: return '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase();
    }
  });
  return `'${escaped}'`;
}

function formatKey(key) {
  if (typeof key === 'symbol') return `[${key.toString()}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? key : quote(key);
}

function functionLabel(fn) {
  let source = '';
  try {
    source = Function.prototype.toString.call(fn);
  } catch {}
  const name = fn.name;
  if (source.startsWith('class')) return name ? `[class ${name}]` : '[class (anonymous)]';
  const kind = toString.call(fn) === '[object AsyncFunction]' ? 'AsyncFunction'
    : toString.call(fn) === '[object GeneratorFunction]' ? 'GeneratorFunction'
    : toString.call(fn) === '[object AsyncGeneratorFunction]' ? 'AsyncGeneratorFunction' : 'Function';
  return name ? `[${kind}: ${name}]` : `[${kind} (anonymous)]`;
}

function constructorName(value) {
  let proto = Object.getPrototypeOf(value);
  if (proto === null) return null;
  const ctor = proto.constructor;
  return typeof ctor === 'function' && typeof ctor.name === 'string' ? ctor.name : 'Object';
}

function reduceToSingleString(prefix, entries, brackets, ctx, indentation) {
  const start = prefix ? `${prefix}${brackets[0]}` : brackets[0];
  if (entries.length === 0) return `${prefix ? prefix : ''}${brackets[0]}${brackets[1]}`;
  const single = `${start} ${entries.join(', ')} ${brackets[1]}`;
  if (single.length + indentation <= ctx.breakLength - 8 && !single.includes('\n')) return single;
  const pad = ' '.repeat(indentation + 2);
  return `${start}\n${pad}${entries.join(`,\n${pad}`)}\n${' '.repeat(indentation)}${brackets[1]}`;
}

function formatValue(ctx, value, depth, indentation) {
  switch (typeof value) {
    case 'string': {
      const s = value.length > ctx.maxStringLength ? value.slice(0, ctx.maxStringLength) : value;
      const more = value.length - s.length;
      return quote(s) + (more > 0 ? `... ${more} more character${more > 1 ? 's' : ''}` : '');
    }
    case 'number':
      return Object.is(value, -0) ? '-0' : String(value);
    case 'bigint':
      return `${value}n`;
    case 'boolean':
    case 'undefined':
      return String(value);
    case 'symbol':
      return value.toString();
    case 'function':
      break;
    default:
      if (value === null) return 'null';
  }

  if (ctx.customInspect !== false && typeof value[customInspect] === 'function' && value[customInspect] !== inspect) {
    const result = value[customInspect](ctx.depth - depth, { ...ctx, stylize: (s) => s }, inspect);
    if (result !== value) return typeof result === 'string' ? result : formatValue(ctx, result, depth, indentation);
  }

  const seen = ctx.seen;
  if (seen.includes(value)) {
    let index = ctx.circular.get(value);
    if (index === undefined) {
      index = ctx.circular.size + 1;
      ctx.circular.set(value, index);
    }
    return `[Circular *${index}]`;
  }

  const tag = toString.call(value);
  if (typeof value === 'function') {
    const base = functionLabel(value);
    const keys = Object.keys(value);
    if (keys.length === 0) return base;
    return formatProperties(ctx, value, keys, base, ['{', '}'], depth, indentation);
  }
  if (value instanceof Error || tag === '[object Error]') {
    const stack = typeof value.stack === 'string' && value.stack ? value.stack : '';
    const head = value.message ? `${value.name}: ${value.message}` : String(value.name ?? 'Error');
    const text = stack.startsWith(head) ? stack : stack ? `${head}\n${stack.replace(/\n$/, '')}` : `[${head}]`;
    return text;
  }
  if (tag === '[object Date]') return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
  if (tag === '[object RegExp]') return String(value);
  if (tag === '[object Promise]') return 'Promise { <unknown> }';
  if (tag === '[object WeakMap]' || tag === '[object WeakSet]') return `${tag.slice(8, -1)} { <items unknown> }`;
  if (tag === '[object Boolean]' || tag === '[object Number]' || tag === '[object String]') {
    return `[${tag.slice(8, -1)}: ${formatValue(ctx, value.valueOf(), depth, indentation)}]`;
  }

  if (depth > ctx.depth) {
    if (Array.isArray(value)) return '[Array]';
    const name = constructorName(value);
    return `[${name === null ? 'Object: null prototype' : name}]`;
  }

  seen.push(value);
  let result;
  try {
    result = formatObject(ctx, value, tag, depth, indentation);
  } finally {
    seen.pop();
  }
  const index = ctx.circular.get(value);
  if (index !== undefined) result = `<ref *${index}> ${result}`;
  return result;
}

function formatProperties(ctx, value, keys, prefix, brackets, depth, indentation, entries = []) {
  for (const key of keys) {
    let shown;
    const descriptor = Object.getOwnPropertyDescriptor(value, key);
    if (descriptor && descriptor.get && !('value' in descriptor)) {
      shown = descriptor.set ? '[Getter/Setter]' : '[Getter]';
    } else {
      shown = formatValue(ctx, value[key], depth + 1, indentation + 2);
    }
    entries.push(`${formatKey(key)}: ${shown}`);
  }
  return reduceToSingleString(prefix, entries, brackets, ctx, indentation);
}

function formatObject(ctx, value, tag, depth, indentation) {
  const keys = Object.keys(value);
  if (ctx.sorted) keys.sort();
  const name = constructorName(value);

  if (Array.isArray(value)) {
    const entries = [];
    const n = Math.min(value.length, ctx.maxArrayLength);
    let holes = 0;
    for (let i = 0; i < n; i++) {
      if (!(i in value)) {
        holes++;
        continue;
      }
      if (holes > 0) {
        entries.push(`<${holes} empty item${holes > 1 ? 's' : ''}>`);
        holes = 0;
      }
      entries.push(formatValue(ctx, value[i], depth + 1, indentation + 2));
    }
    if (holes > 0) entries.push(`<${holes} empty item${holes > 1 ? 's' : ''}>`);
    if (value.length > n) entries.push(`... ${value.length - n} more item${value.length - n > 1 ? 's' : ''}`);
    if (ctx.showHidden) entries.push(`[length]: ${value.length}`);
    const extra = keys.filter((k) => !/^\d+$/.test(k));
    const prefix = name !== 'Array' ? `${name}(${value.length}) ` : '';
    return formatProperties(ctx, value, extra, prefix, ['[', ']'], depth, indentation, entries);
  }
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    const entries = [];
    const n = Math.min(value.length, ctx.maxArrayLength);
    for (let i = 0; i < n; i++) entries.push(formatValue(ctx, value[i], depth + 1, indentation + 2));
    if (value.length > n) entries.push(`... ${value.length - n} more item${value.length - n > 1 ? 's' : ''}`);
    return reduceToSingleString(`${name}(${value.length}) `, entries, ['[', ']'], ctx, indentation);
  }
  if (tag === '[object ArrayBuffer]') {
    const bytes = new Uint8Array(value);
    const hex = Array.from(bytes.subarray(0, 50), (b) => b.toString(16).padStart(2, '0')).join(' ');
    return `ArrayBuffer { [Uint8Contents]: <${hex}${bytes.length > 50 ? ` ... ${bytes.length - 50} more bytes` : ''}>, byteLength: ${bytes.length} }`;
  }
  if (tag === '[object Map]') {
    const entries = [];
    for (const [k, v] of value) {
      entries.push(`${formatValue(ctx, k, depth + 1, indentation + 2)} => ${formatValue(ctx, v, depth + 1, indentation + 2)}`);
    }
    return formatProperties(ctx, value, keys, `${name}(${value.size}) `, ['{', '}'], depth, indentation, entries);
  }
  if (tag === '[object Set]') {
    const entries = [];
    for (const v of value) entries.push(formatValue(ctx, v, depth + 1, indentation + 2));
    return formatProperties(ctx, value, keys, `${name}(${value.size}) `, ['{', '}'], depth, indentation, entries);
  }
  let prefix = '';
  if (name === null) prefix = '[Object: null prototype] ';
  else if (name !== 'Object') prefix = `${name} `;
  const stringTag = value[Symbol.toStringTag];
  if (typeof stringTag === 'string' && stringTag !== name && stringTag !== '') {
    prefix = `${name ?? 'Object'} [${stringTag}] `;
  }
  const symbols = Object.getOwnPropertySymbols(value).filter((s) => Object.getOwnPropertyDescriptor(value, s).enumerable);
  return formatProperties(ctx, value, [...keys, ...symbols], prefix, ['{', '}'], depth, indentation);
}

export function inspect(value, options) {
  const ctx = { ...DEFAULTS, seen: [], circular: new Map() };
  if (typeof options === 'boolean') {
    ctx.showHidden = options;
  } else if (options !== null && typeof options === 'object') {
    Object.assign(ctx, options);
  }
  if (ctx.depth === null) ctx.depth = Infinity;
  return formatValue(ctx, value, 0, 0);
}
inspect.custom = customInspect;
inspect.defaultOptions = DEFAULTS;

function formatWithOptionsInternal(options, args) {
  const first = args[0];
  let out = '';
  let next = 0;
  if (typeof first === 'string') {
    next = 1;
    if (args.length === 1) return first;
    let last = 0;
    for (let i = 0; i < first.length - 1; i++) {
      if (first.charCodeAt(i) !== 37) continue; // '%'
      const code = first[i + 1];
      if (code === '%') {
        out += first.slice(last, i) + '%';
        last = i + 2;
        i++;
        continue;
      }
      if (next >= args.length || !'sdifjoOc'.includes(code)) continue;
      const arg = args[next];
      let text;
      switch (code) {
        case 's':
          if (typeof arg === 'bigint') text = `${arg}n`;
          else if (typeof arg === 'symbol') text = arg.toString();
          else if (typeof arg === 'object' && arg !== null) {
            text = (arg instanceof Error || typeof arg.toString !== 'function' || arg.toString === Object.prototype.toString || arg.toString === Array.prototype.toString)
              ? inspect(arg, { ...options, depth: 0 })
              : String(arg);
          } else text = String(arg);
          break;
        case 'd':
          text = typeof arg === 'bigint' ? `${arg}n` : typeof arg === 'symbol' ? 'NaN' : formatNumber(Number(arg));
          break;
        case 'i':
          text = typeof arg === 'bigint' ? `${arg}n` : typeof arg === 'symbol' ? 'NaN' : formatNumber(parseInt(arg));
          break;
        case 'f':
          text = typeof arg === 'symbol' ? 'NaN' : formatNumber(parseFloat(arg));
          break;
        case 'j':
          try {
            text = JSON.stringify(arg);
          } catch {
            text = '[Circular]';
          }
          break;
        case 'o':
          text = inspect(arg, { ...options, showHidden: true, depth: 4 });
          break;
        case 'O':
          text = inspect(arg, options);
          break;
        case 'c':
          text = '';
          break;
      }
      out += first.slice(last, i) + text;
      last = i + 2;
      i++;
      next++;
    }
    out += first.slice(last);
  }
  for (let i = next; i < args.length; i++) {
    const arg = args[i];
    if (i > 0) out += ' ';
    out += typeof arg === 'string' ? arg : inspect(arg, options);
  }
  return out;
}

function formatNumber(n) {
  return Object.is(n, -0) ? '-0' : String(n);
}

export function format(...args) {
  return formatWithOptionsInternal(undefined, args);
}

export function formatWithOptions(options, ...args) {
  return formatWithOptionsInternal(options, args);
}
