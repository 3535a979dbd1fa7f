// The client half of node:http and node:https on the host's outbound requests
// (`flowhost.request`): ClientRequest collects the body and sends it once `end()` is called;
// the response arrives whole and is replayed as an IncomingMessage stream ('data', 'end').
//
// What differs from Node, because there is no socket: `socket` is a stand-in, the request's
// idle timeout (`setTimeout`) runs from `end()` until the response and also bounds the host's
// wait (one second later), `rawHeaders` names are lowercase, and agents are accepted and
// ignored (the host pools connections).
import EventEmitter from '../events.js';
import { Readable, Stream } from '../stream.js';
import { Buffer } from '../buffer.js';
import { codedError, invalidArgType } from './errors.js';

export const STATUS_CODES = {
  100: 'Continue', 101: 'Switching Protocols', 102: 'Processing', 103: 'Early Hints',
  200: 'OK', 201: 'Created', 202: 'Accepted', 203: 'Non-Authoritative Information', 204: 'No Content',
  205: 'Reset Content', 206: 'Partial Content', 207: 'Multi-Status', 208: 'Already Reported', 226: 'IM Used',
  300: 'Multiple Choices', 301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 304: 'Not Modified',
  305: 'Use Proxy', 307: 'Temporary Redirect', 308: 'Permanent Redirect',
  400: 'Bad Request', 401: 'Unauthorized', 402: 'Payment Required', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 406: 'Not Acceptable', 407: 'Proxy Authentication Required', 408: 'Request Timeout',
  409: 'Conflict', 410: 'Gone', 411: 'Length Required', 412: 'Precondition Failed', 413: 'Payload Too Large',
  414: 'URI Too Long', 415: 'Unsupported Media Type', 416: 'Range Not Satisfiable', 417: 'Expectation Failed',
  418: "I'm a Teapot", 421: 'Misdirected Request', 422: 'Unprocessable Entity', 423: 'Locked', 424: 'Failed Dependency',
  425: 'Too Early', 426: 'Upgrade Required', 428: 'Precondition Required', 429: 'Too Many Requests',
  431: 'Request Header Fields Too Large', 451: 'Unavailable For Legal Reasons',
  500: 'Internal Server Error', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable',
  504: 'Gateway Timeout', 505: 'HTTP Version Not Supported', 506: 'Variant Also Negotiates', 507: 'Insufficient Storage',
  508: 'Loop Detected', 509: 'Bandwidth Limit Exceeded', 510: 'Not Extended', 511: 'Network Authentication Required',
};

export const METHODS = [
  'ACL', 'BIND', 'CHECKOUT', 'CONNECT', 'COPY', 'DELETE', 'GET', 'HEAD', 'LINK', 'LOCK', 'M-SEARCH', 'MERGE',
  'MKACTIVITY', 'MKCALENDAR', 'MKCOL', 'MOVE', 'NOTIFY', 'OPTIONS', 'PATCH', 'POST', 'PROPFIND', 'PROPPATCH',
  'PURGE', 'PUT', 'QUERY', 'REBIND', 'REPORT', 'SEARCH', 'SOURCE', 'SUBSCRIBE', 'TRACE', 'UNBIND', 'UNLINK',
  'UNLOCK', 'UNSUBSCRIBE',
];

const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;

// How much longer than a request's own idle timeout the host waits for it (see #send).
const HOST_TIMEOUT_MARGIN_MS = 1000;

export function validateHeaderName(name) {
  if (typeof name !== 'string' || !name || !TOKEN.test(name)) {
    throw codedError(TypeError, 'ERR_INVALID_HTTP_TOKEN', `Header name must be a valid HTTP token ["${name}"]`);
  }
}

export function validateHeaderValue(name, value) {
  if (value === undefined) {
    throw codedError(TypeError, 'ERR_HTTP_INVALID_HEADER_VALUE', `Invalid value "${value}" for header "${name}"`);
  }
  if (/[^\t\x20-\x7e\x80-\xff]/.test(String(value))) {
    throw codedError(TypeError, 'ERR_INVALID_CHAR', `Invalid character in header content ["${name}"]`);
  }
}

export class Agent extends EventEmitter {
  constructor(options = {}) {
    super();
    this.options = { path: null, ...options };
    this.keepAlive = !!options.keepAlive;
    this.maxSockets = options.maxSockets ?? Infinity;
    this.maxFreeSockets = options.maxFreeSockets ?? 256;
    this.defaultPort = options.defaultPort ?? 80;
    this.protocol = options.protocol ?? 'http:';
    this.requests = Object.create(null);
    this.sockets = Object.create(null);
    this.freeSockets = Object.create(null);
  }
  destroy() {}
  getName(options = {}) {
    return `${options.host ?? 'localhost'}:${options.port ?? ''}:${options.localAddress ?? ''}`;
  }
}

// Where a request goes: a URL string or object, options, or both (options win).
function requestTarget(defaultProtocol, input, options) {
  let fromUrl = {};
  if (typeof input === 'string' || input instanceof URL) {
    const url = input instanceof URL ? input : new URL(input);
    fromUrl = {
      protocol: url.protocol,
      hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
      port: url.port === '' ? undefined : Number(url.port),
      path: `${url.pathname}${url.search}`,
      auth: url.username || url.password ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` : undefined,
    };
  } else if (input !== null && typeof input === 'object') {
    options = { ...input, ...options };
  }
  const merged = { ...fromUrl, ...options };
  const protocol = merged.protocol ?? defaultProtocol;
  if (protocol !== defaultProtocol) {
    throw codedError(TypeError, 'ERR_INVALID_PROTOCOL', `Protocol "${protocol}" not supported. Expected "${defaultProtocol}"`);
  }
  const hostname = merged.hostname ?? merged.host ?? 'localhost';
  const defaultPort = merged.defaultPort ?? (protocol === 'https:' ? 443 : 80);
  const port = merged.port === undefined || merged.port === null || merged.port === '' ? defaultPort : Number(merged.port);
  const path = merged.path ?? '/';
  if (/[\u0000-\u0020]/.test(path)) {
    throw codedError(TypeError, 'ERR_UNESCAPED_CHARACTERS', 'Request path contains unescaped characters');
  }
  const host = hostname.includes(':') ? `[${hostname}]` : hostname;
  const url = `${protocol}//${host}${port === defaultPort ? '' : `:${port}`}${path.startsWith('/') ? path : `/${path}`}`;
  return { protocol, hostname, port, path, url, options: merged, defaultPort };
}

function hostErrorCode(kind, message) {
  switch (kind) {
    case 'timeout':
      return 'ETIMEDOUT';
    case 'denied':
      return 'ERR_FLOWHOST_DENIED';
    case 'too-large':
      return 'ERR_FLOWHOST_RESPONSE_TOO_LARGE';
    case 'invalid':
      return 'ERR_FLOWHOST_INVALID_REQUEST';
    default:
      return /refused/i.test(message) ? 'ECONNREFUSED' : /dns|resolve|lookup/i.test(message) ? 'ENOTFOUND' : 'ECONNRESET';
  }
}

// A socket stand-in for code that reads `req.socket` or `res.socket`.
class FakeSocket extends EventEmitter {
  constructor(target) {
    super();
    this.remoteAddress = target.hostname;
    this.remotePort = target.port;
    this.encrypted = target.protocol === 'https:';
    this.readable = true;
    this.writable = true;
  }
  setTimeout() {
    return this;
  }
  setNoDelay() {
    return this;
  }
  setKeepAlive() {
    return this;
  }
  ref() {
    return this;
  }
  unref() {
    return this;
  }
  destroy() {
    return this;
  }
  address() {
    return {};
  }
}

export class IncomingMessage extends Readable {
  #socket;

  constructor(socket) {
    super();
    this.#socket = socket;
    this.httpVersionMajor = 1;
    this.httpVersionMinor = 1;
    this.httpVersion = '1.1';
    this.complete = false;
    this.headers = {};
    this.headersDistinct = {};
    this.rawHeaders = [];
    this.trailers = {};
    this.trailersDistinct = {};
    this.rawTrailers = [];
    this.aborted = false;
    this.upgrade = false;
    this.url = '';
    this.method = null;
    this.statusCode = null;
    this.statusMessage = null;
  }
  get socket() {
    return this.#socket ?? this.req?.socket ?? null;
  }
  set socket(value) {
    this.#socket = value;
  }
  get connection() {
    return this.socket;
  }
  setTimeout(ms, callback) {
    if (callback) this.once('timeout', callback);
    return this;
  }
  _read() {}
}

// Node keeps only the first value of these; joins the rest with ', ' (set-cookie: an array).
const SINGLE_VALUED = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer',
  'retry-after', 'server', 'user-agent',
]);

function addHeader(message, name, value) {
  const key = name.toLowerCase();
  message.rawHeaders.push(name, value);
  (message.headersDistinct[key] ??= []).push(value);
  const headers = message.headers;
  if (key === 'set-cookie') {
    (headers[key] ??= []).push(value);
  } else if (headers[key] === undefined) {
    headers[key] = value;
  } else if (!SINGLE_VALUED.has(key)) {
    headers[key] += `, ${value}`;
  }
}

// Node's ClientRequest is an OutgoingMessage, a legacy Stream rather than a Writable; this one
// keeps the body in memory and sends it whole at `end()`.
export class ClientRequest extends Stream {
  #target;
  #headers = new Map();
  #chunks = [];
  #timeout = null;
  #timeoutMs = 0;
  #ended = false;
  #finished = false;
  #sent = false;
  #responded = false;
  #destroyed = false;
  #socket = null;

  constructor(defaultProtocol, input, options, callback) {
    super();
    if (typeof options === 'function') {
      callback = options;
      options = undefined;
    }
    const target = requestTarget(defaultProtocol, input, options);
    this.#target = target;
    const opts = target.options;
    const method = String(opts.method ?? 'GET').toUpperCase();
    if (!TOKEN.test(method)) throw codedError(TypeError, 'ERR_INVALID_HTTP_TOKEN', `Method must be a valid HTTP token ["${opts.method}"]`);
    this.method = method;
    this.path = target.path;
    this.host = target.hostname;
    this.protocol = target.protocol;
    this.agent = opts.agent;
    this.aborted = false;
    this.reusedSocket = false;
    this.maxHeadersCount = null;
    this.res = null;

    const headers = opts.headers;
    if (Array.isArray(headers)) {
      for (let i = 0; i + 1 < headers.length; i += 2) this.setHeader(headers[i], headers[i + 1]);
    } else if (headers) {
      for (const name of Object.keys(headers)) {
        if (headers[name] !== undefined) this.setHeader(name, headers[name]);
      }
    }
    if (opts.auth && !this.hasHeader('authorization')) {
      this.setHeader('Authorization', `Basic ${Buffer.from(String(opts.auth)).toString('base64')}`);
    }
    if (callback) this.once('response', callback);
    if (typeof opts.timeout === 'number') this.setTimeout(opts.timeout);
    if (opts.signal) {
      const signal = opts.signal;
      const onAbort = () => {
        const error = new Error('The operation was aborted');
        error.name = 'AbortError';
        error.code = 'ABORT_ERR';
        error.cause = signal.reason;
        this.destroy(error);
      };
      if (signal.aborted) process.nextTick(onAbort);
      else signal.addEventListener('abort', onAbort, { once: true });
    }
    process.nextTick(() => {
      if (this.listenerCount('socket') > 0) this.emit('socket', this.socket);
    });
  }

  get socket() {
    return (this.#socket ??= new FakeSocket(this.#target));
  }
  get connection() {
    return this.socket;
  }
  get headersSent() {
    return this.#sent;
  }
  get writable() {
    return !this.#ended && !this.#destroyed;
  }
  get writableEnded() {
    return this.#ended;
  }
  get writableFinished() {
    return this.#finished;
  }
  get destroyed() {
    return this.#destroyed;
  }

  setHeader(name, value) {
    if (this.#sent) throw codedError(Error, 'ERR_HTTP_HEADERS_SENT', 'Cannot set headers after they are sent to the client');
    validateHeaderName(name);
    validateHeaderValue(name, value);
    this.#headers.set(name.toLowerCase(), [name, value]);
    return this;
  }
  getHeader(name) {
    return this.#headers.get(String(name).toLowerCase())?.[1];
  }
  hasHeader(name) {
    return this.#headers.has(String(name).toLowerCase());
  }
  removeHeader(name) {
    if (this.#sent) throw codedError(Error, 'ERR_HTTP_HEADERS_SENT', 'Cannot remove headers after they are sent to the client');
    this.#headers.delete(String(name).toLowerCase());
  }
  getHeaders() {
    const out = Object.create(null);
    for (const [key, [, value]] of this.#headers) out[key] = value;
    return out;
  }
  getHeaderNames() {
    return [...this.#headers.keys()];
  }
  getRawHeaderNames() {
    return [...this.#headers.values()].map(([name]) => name);
  }
  flushHeaders() {}
  setNoDelay() {}
  setSocketKeepAlive() {}
  cork() {}
  uncork() {}
  setDefaultEncoding() {
    return this;
  }

  setTimeout(ms, callback) {
    if (callback) this.once('timeout', callback);
    this.#timeoutMs = Number(ms) || 0;
    this.#armTimeout();
    return this;
  }

  #armTimeout() {
    if (this.#timeout !== null) clearTimeout(this.#timeout);
    this.#timeout = null;
    if (this.#timeoutMs > 0 && !this.#responded && !this.#destroyed) {
      this.#timeout = setTimeout(() => {
        this.#timeout = null;
        this.emit('timeout');
      }, this.#timeoutMs);
    }
  }

  #clearTimeout() {
    if (this.#timeout !== null) clearTimeout(this.#timeout);
    this.#timeout = null;
  }

  write(chunk, encoding, callback) {
    if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    if (this.#ended || this.#destroyed) {
      const error = this.#destroyed
        ? codedError(Error, 'ERR_STREAM_DESTROYED', 'Cannot call write after a stream was destroyed')
        : codedError(Error, 'ERR_STREAM_WRITE_AFTER_END', 'write after end');
      process.nextTick(() => {
        if (typeof callback === 'function') callback(error);
        this.emit('error', error);
      });
      return false;
    }
    if (typeof chunk === 'string') {
      this.#chunks.push({ text: chunk, encoding: encoding ?? 'utf8' });
    } else if (chunk instanceof Uint8Array) {
      this.#chunks.push(chunk);
    } else {
      throw invalidArgType('chunk', 'of type string or an instance of Buffer or Uint8Array', chunk);
    }
    if (typeof callback === 'function') process.nextTick(callback);
    return true;
  }

  end(chunk, encoding, callback) {
    if (typeof chunk === 'function') {
      callback = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    if (this.#ended) {
      if (typeof callback === 'function') process.nextTick(callback);
      return this;
    }
    if (chunk !== undefined && chunk !== null) this.write(chunk, encoding);
    this.#ended = true;
    if (typeof callback === 'function') this.once('finish', callback);
    this.#send();
    process.nextTick(() => {
      if (this.#destroyed) return;
      this.#finished = true;
      this.emit('finish');
    });
    return this;
  }

  #send() {
    if (this.#sent || this.#destroyed) return;
    this.#sent = true;
    const headers = [];
    for (const [, [name, value]] of this.#headers) {
      if (Array.isArray(value)) for (const v of value) headers.push([name, String(v)]);
      else headers.push([name, String(value)]);
    }
    const request = { method: this.method, url: this.#target.url, headers };
    const chunks = this.#chunks;
    const utf8 = (c) => c.text !== undefined && (c.encoding === 'utf8' || c.encoding === 'utf-8');
    if (chunks.length > 0 && chunks.every(utf8)) {
      request.body = chunks.length === 1 ? chunks[0].text : chunks.map((c) => c.text).join('');
    } else if (chunks.length > 0) {
      const body = Buffer.concat(chunks.map((c) => (c.text !== undefined ? Buffer.from(c.text, c.encoding) : c)));
      const text = body.toString('utf8');
      // Text goes as text; anything that does not survive UTF-8 goes as base64.
      if (Buffer.byteLength(text) === body.length && !text.includes('\ufffd')) {
        request.body = text;
      } else {
        request.body = body.toString('base64');
        request.bodyEncoding = 'base64';
      }
    }
    this.#chunks = [];
    // The host cannot cancel a request it started, so a request with an idle timeout also gets
    // a host timeout a little later: 'timeout' fires first, as in Node, and a request abandoned
    // after it does not hold one of the flow's outbound slots for the host's full timeout.
    if (this.#timeoutMs > 0) request.timeoutMs = this.#timeoutMs + HOST_TIMEOUT_MARGIN_MS;
    this.#armTimeout();
    globalThis.flowhost.request(request).then(
      (res) => this.#respond(res),
      (err) => this.#fail(err),
    );
  }

  #respond(res) {
    if (this.#destroyed || this.#responded) return;
    this.#responded = true;
    this.#clearTimeout();
    const message = new IncomingMessage(null);
    message.statusCode = res.status;
    message.statusMessage = STATUS_CODES[res.status] ?? '';
    message.req = this;
    for (const [name, value] of res.headers) addHeader(message, name, value);
    this.res = message;
    if (res.body.length > 0) {
      message.push(res.bodyEncoding === 'base64' ? Buffer.from(res.body, 'base64') : Buffer.from(res.body, 'utf8'));
    }
    message.complete = true;
    message.push(null);
    // The request closes after its response, as in Node.
    message.once('close', () => this.emit('close'));
    // Without a 'response' listener Node discards the response.
    if (!this.emit('response', message)) message.resume();
  }

  #fail(err) {
    if (this.#destroyed || this.#responded) return;
    const message = String(err?.message ?? err);
    const error = new Error(message);
    error.code = hostErrorCode(err?.kind, message);
    if (error.code === 'ECONNREFUSED') {
      error.syscall = 'connect';
      error.address = this.#target.hostname;
      error.port = this.#target.port;
    }
    this.destroy(error);
  }

  destroy(error) {
    if (this.#destroyed) return this;
    this.#destroyed = true;
    this.#clearTimeout();
    if (error === undefined && !this.#responded && !this.aborted) {
      // As in Node: a request torn down before its response reports a hang-up.
      error = codedError(Error, 'ECONNRESET', 'socket hang up');
    }
    process.nextTick(() => {
      if (error) this.emit('error', error);
      this.emit('close');
    });
    return this;
  }

  abort() {
    if (this.aborted) return;
    this.aborted = true;
    process.nextTick(() => this.emit('abort'));
    this.destroy();
  }
}

export function request(defaultProtocol, input, options, callback) {
  const req = new ClientRequest(defaultProtocol, input, options, callback);
  return req;
}

export function get(defaultProtocol, input, options, callback) {
  const req = request(defaultProtocol, input, options, callback);
  req.end();
  return req;
}

export function createServer() {
  throw codedError(Error, 'ERR_FLOWHOST_UNSUPPORTED', 'http.createServer is not available in a flow: flowhost owns the HTTP server');
}

export function checkCallback(callback) {
  if (callback !== undefined && typeof callback !== 'function') throw invalidArgType('callback', 'of type function', callback);
}
