// node:url for flowhost guests: the WHATWG URL and URLSearchParams (globals), file URL helpers,
// domainToASCII/domainToUnicode, urlToHttpOptions, and the legacy parse/format/resolve.
import * as querystring from './querystring.js';
import { codedError, invalidArgType } from './internal/errors.js';

const native = globalThis.__flowhost_native;

export const URL = globalThis.URL;
export const URLSearchParams = globalThis.URLSearchParams;

export function domainToASCII(domain) {
  return native.domainToAscii(String(domain));
}

export function domainToUnicode(domain) {
  return native.domainToUnicode(String(domain));
}

export function fileURLToPath(input) {
  const url = typeof input === 'string' ? new URL(input) : input;
  if (!(url instanceof URL)) throw invalidArgType('path', 'of type string or an instance of URL', input);
  if (url.protocol !== 'file:') throw codedError(TypeError, 'ERR_INVALID_URL_SCHEME', 'The URL must be of scheme file');
  if (url.hostname !== '') {
    throw codedError(TypeError, 'ERR_INVALID_FILE_URL_HOST', `File URL host must be "localhost" or empty on linux`);
  }
  if (/%2f/i.test(url.pathname)) {
    throw codedError(TypeError, 'ERR_INVALID_FILE_URL_PATH', 'File URL path must not include encoded / characters');
  }
  return decodeURIComponent(url.pathname);
}

export function pathToFileURL(path) {
  let resolved = String(path);
  if (!resolved.startsWith('/')) resolved = `/${resolved}`;
  const encoded = resolved.replace(/%/g, '%25').replace(/\\/g, '%5C').replace(/\n/g, '%0A').replace(/\r/g, '%0D')
    .replace(/\t/g, '%09').replace(/#/g, '%23').replace(/\?/g, '%3F');
  return new URL(`file://${encoded}`);
}

export function urlToHttpOptions(url) {
  const options = {
    protocol: url.protocol,
    hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
    hash: url.hash,
    search: url.search,
    pathname: url.pathname,
    path: `${url.pathname || ''}${url.search || ''}`,
    href: url.href,
  };
  if (url.port !== '') options.port = Number(url.port);
  if (url.username || url.password) options.auth = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  return options;
}

// ---------------------------------------------------------------------------------------------
// The legacy API (url.parse and friends), as Node's implementation behaves for ordinary input.

const SLASHED = new Set(['http:', 'https:', 'ftp:', 'gopher:', 'file:', 'ws:', 'wss:']);
const HOSTLESS = new Set(['javascript:']);

export function Url() {
  this.protocol = null;
  this.slashes = null;
  this.auth = null;
  this.host = null;
  this.port = null;
  this.hostname = null;
  this.hash = null;
  this.search = null;
  this.query = null;
  this.pathname = null;
  this.path = null;
  this.href = null;
}

Url.prototype.format = function () {
  return format(this);
};

export function parse(input, parseQueryString = false, slashesDenoteHost = false) {
  if (input instanceof Url) return input;
  if (typeof input !== 'string') throw invalidArgType('url', 'of type string', input);
  const url = new Url();
  let rest = input.trim().replace(/\\/g, '/');

  const hashAt = rest.indexOf('#');
  if (hashAt >= 0) {
    url.hash = rest.slice(hashAt);
    rest = rest.slice(0, hashAt);
  }
  const queryAt = rest.indexOf('?');
  if (queryAt >= 0) {
    url.search = rest.slice(queryAt);
    url.query = rest.slice(queryAt + 1);
    rest = rest.slice(0, queryAt);
  } else if (parseQueryString) {
    url.search = '';
    url.query = {};
  }

  const protocol = /^([a-z0-9.+-]+:)/i.exec(rest);
  let lowerProto = null;
  if (protocol) {
    lowerProto = protocol[1].toLowerCase();
    url.protocol = lowerProto;
    rest = rest.slice(protocol[1].length);
  }

  if (slashesDenoteHost || protocol || /^\/\/[^@/]+@[^@/]+/.test(rest)) {
    const slashes = rest.startsWith('//');
    if (slashes && !(lowerProto && HOSTLESS.has(lowerProto))) {
      rest = rest.slice(2);
      url.slashes = true;
    }
  }

  if (!HOSTLESS.has(lowerProto) && (url.slashes || (lowerProto && !SLASHED.has(lowerProto)))) {
    let hostEnd = rest.search(/[/?#]/);
    if (hostEnd < 0) hostEnd = rest.length;
    let host = rest.slice(0, hostEnd);
    rest = rest.slice(hostEnd);
    const at = host.lastIndexOf('@');
    if (at >= 0) {
      url.auth = decodeURIComponent(host.slice(0, at));
      host = host.slice(at + 1);
    }
    const port = /:(\d*)$/.exec(host);
    if (port) {
      if (port[1] !== '') url.port = port[1];
      host = host.slice(0, port.index);
    }
    url.hostname = host.toLowerCase();
    url.host = url.port ? `${url.hostname}:${url.port}` : url.hostname;
  }

  if (rest.length > 0) url.pathname = rest;
  if (SLASHED.has(lowerProto) && url.hostname && !url.pathname) url.pathname = '/';
  if (parseQueryString && typeof url.query === 'string') url.query = querystring.parse(url.query);
  if (url.pathname !== null || url.search !== null) url.path = (url.pathname ?? '') + (url.search ?? '');
  url.href = format(url);
  return url;
}

export function format(input, options) {
  if (typeof input === 'string') input = parse(input);
  if (input instanceof URL) {
    const copy = new URL(input.href);
    if (options?.auth === false) {
      copy.username = '';
      copy.password = '';
    }
    if (options?.search === false) copy.search = '';
    if (options?.fragment === false) copy.hash = '';
    return copy.href;
  }
  if (input === null || typeof input !== 'object') throw invalidArgType('urlObject', 'of type object or string', input);

  let protocol = input.protocol ?? '';
  if (protocol && !protocol.endsWith(':')) protocol += ':';
  let auth = input.auth ? `${encodeURIComponent(input.auth).replace(/%3A/i, ':')}@` : '';
  let host = '';
  if (input.host) {
    host = auth + input.host;
  } else if (input.hostname) {
    host = auth + (input.hostname.includes(':') ? `[${input.hostname}]` : input.hostname);
    if (input.port) host += `:${input.port}`;
  }
  let pathname = input.pathname ?? '';
  let search = input.search ?? '';
  if (!search && input.query && typeof input.query === 'object' && Object.keys(input.query).length > 0) {
    search = `?${querystring.stringify(input.query)}`;
  } else if (!search && typeof input.query === 'string' && input.query) {
    search = `?${input.query}`;
  }
  if (search && !search.startsWith('?')) search = `?${search}`;
  let hash = input.hash ?? '';
  if (hash && !hash.startsWith('#')) hash = `#${hash}`;

  const slashes = input.slashes || SLASHED.has(protocol.toLowerCase());
  if (slashes && (host || protocol === 'file:')) {
    host = `//${host}`;
    if (pathname && !pathname.startsWith('/')) pathname = `/${pathname}`;
  } else if (input.slashes && !host) {
    host = '//';
  }
  pathname = pathname.replace(/[?#]/g, encodeURIComponent);
  search = search.replace('#', '%23');
  return protocol + host + pathname + search + hash;
}

export function resolve(from, to) {
  const base = 'resolve://';
  const absolute = /^[a-z][a-z0-9+.-]*:/i.test(from);
  const resolved = new URL(to, new URL(from, base));
  if (absolute) return resolved.href;
  const { pathname, search, hash } = resolved;
  return (from.startsWith('/') ? '' : '') + pathname.replace(/^\/(?!\/)/, from.startsWith('/') ? '/' : '') + search + hash;
}

export function resolveObject(from, to) {
  return parse(resolve(typeof from === 'string' ? from : format(from), to));
}

export default {
  URL,
  URLSearchParams,
  Url,
  domainToASCII,
  domainToUnicode,
  fileURLToPath,
  pathToFileURL,
  urlToHttpOptions,
  parse,
  format,
  resolve,
  resolveObject,
};
