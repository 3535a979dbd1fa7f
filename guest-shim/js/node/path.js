// node:path for flowhost guests: the POSIX flavour, with '/' as the working directory (a flow
// has no file system). `path.win32` is not provided.

export const sep = '/';
export const delimiter = ':';

function checkString(name, value) {
  if (typeof value !== 'string') {
    const error = new TypeError(`The "${name}" argument must be of type string. Received ${value === null ? 'null' : typeof value}`);
    error.code = 'ERR_INVALID_ARG_TYPE';
    throw error;
  }
}

// Resolves '.' and '..' segments; keeps leading '..' of relative paths.
function normalizeSegments(path, allowAboveRoot) {
  const out = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (allowAboveRoot) out.push('..');
    } else {
      out.push(segment);
    }
  }
  return out.join('/');
}

export function normalize(path) {
  checkString('path', path);
  if (path.length === 0) return '.';
  const absolute = path.startsWith('/');
  const trailing = path.endsWith('/');
  let out = normalizeSegments(path, !absolute);
  if (out.length === 0) return absolute ? '/' : trailing ? './' : '.';
  if (trailing) out += '/';
  return absolute ? `/${out}` : out;
}

export function isAbsolute(path) {
  checkString('path', path);
  return path.startsWith('/');
}

export function join(...parts) {
  for (const part of parts) checkString('path', part);
  const joined = parts.filter((p) => p.length > 0).join('/');
  return joined.length === 0 ? '.' : normalize(joined);
}

export function resolve(...parts) {
  let resolved = '';
  for (let i = parts.length - 1; i >= 0 && !resolved.startsWith('/'); i--) {
    checkString(`paths[${i}]`, parts[i]);
    if (parts[i].length === 0) continue;
    resolved = resolved ? `${parts[i]}/${resolved}` : parts[i];
  }
  if (!resolved.startsWith('/')) resolved = `/${resolved}`;
  const out = normalizeSegments(resolved, false);
  return `/${out}`;
}

export function relative(from, to) {
  checkString('from', from);
  checkString('to', to);
  const a = resolve(from).split('/').filter(Boolean);
  const b = resolve(to).split('/').filter(Boolean);
  let common = 0;
  while (common < a.length && common < b.length && a[common] === b[common]) common++;
  return [...a.slice(common).map(() => '..'), ...b.slice(common)].join('/');
}

export function dirname(path) {
  checkString('path', path);
  if (path.length === 0) return '.';
  const trimmed = path.replace(/\/+$/, '');
  if (trimmed.length === 0) return '/';
  const at = trimmed.lastIndexOf('/');
  if (at < 0) return '.';
  if (at === 0) return '/';
  return trimmed.slice(0, at).replace(/\/+$/, '') || '/';
}

export function basename(path, suffix) {
  checkString('path', path);
  const trimmed = path.replace(/\/+$/, '');
  let base = trimmed.slice(trimmed.lastIndexOf('/') + 1);
  if (suffix !== undefined && base !== suffix && base.endsWith(suffix)) base = base.slice(0, base.length - suffix.length);
  return base;
}

export function extname(path) {
  checkString('path', path);
  const base = basename(path);
  const dot = base.lastIndexOf('.');
  if (dot <= 0 || (dot === base.length - 1 && base.length === 1)) return '';
  if (base === '..') return '';
  return base.slice(dot);
}

export function parse(path) {
  checkString('path', path);
  const root = path.startsWith('/') ? '/' : '';
  const base = basename(path);
  const ext = extname(path);
  let dir = dirname(path);
  if (dir === '.' && !path.includes('/')) dir = '';
  return { root, dir, base, ext, name: ext ? base.slice(0, base.length - ext.length) : base };
}

export function format(object) {
  const dir = object.dir || object.root || '';
  const base = object.base || `${object.name ?? ''}${object.ext ? (object.ext.startsWith('.') ? '' : '.') + object.ext : ''}`;
  if (!dir) return base;
  return dir === object.root ? `${dir}${base}` : `${dir}/${base}`;
}

export function toNamespacedPath(path) {
  return path;
}

export function matchesGlob() {
  throw new Error('path.matchesGlob is not available in flowhost');
}

const path = {
  sep,
  delimiter,
  normalize,
  isAbsolute,
  join,
  resolve,
  relative,
  dirname,
  basename,
  extname,
  parse,
  format,
  toNamespacedPath,
  matchesGlob,
};
path.posix = path;
export const posix = path;

export default path;
