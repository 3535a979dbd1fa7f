// fetch with Headers, Request, Response and Blob, on the host's outbound requests
// (`flowhost.request`). An AbortSignal rejects the fetch at once with the signal's reason; the
// host still finishes (or times out) the request, and its late response is dropped.
//
// Bodies are whole strings or byte arrays: there are no streams, so `body` is a small reader
// over the one chunk, and request bodies cannot be streams.
(function fetchApi(native) {
  'use strict';

  const hostRequest = flowhost.request;
  const define = (name, value) =>
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });

  function bytesOf(data) {
    if (data instanceof Uint8Array) return data;
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return new Uint8Array(data);
  }

  function isBufferSource(value) {
    return value instanceof ArrayBuffer || ArrayBuffer.isView(value) ||
      (typeof SharedArrayBuffer === 'function' && value instanceof SharedArrayBuffer);
  }

  // ---------------------------------------------------------------------------------------------
  // Blob

  class Blob {
    #bytes;
    #type;

    constructor(parts = [], options = {}) {
      if (parts === null || typeof parts !== 'object' || typeof parts[Symbol.iterator] !== 'function') {
        throw new TypeError('The "blobParts" argument must be a sequence');
      }
      const chunks = [];
      let size = 0;
      for (const part of parts) {
        let chunk;
        if (part instanceof Blob) chunk = part.#bytes;
        else if (isBufferSource(part)) chunk = bytesOf(part).slice();
        else chunk = new Uint8Array(native.utf8Encode(String(part)));
        chunks.push(chunk);
        size += chunk.length;
      }
      this.#bytes = new Uint8Array(size);
      let offset = 0;
      for (const chunk of chunks) {
        this.#bytes.set(chunk, offset);
        offset += chunk.length;
      }
      const type = options?.type === undefined ? '' : String(options.type);
      this.#type = /^[\x20-\x7e]*$/.test(type) ? type.toLowerCase() : '';
    }
    get size() {
      return this.#bytes.length;
    }
    get type() {
      return this.#type;
    }
    slice(start = 0, end = this.#bytes.length, type = '') {
      const blob = new Blob([], { type });
      blob.#bytes = this.#bytes.slice(start, end);
      return blob;
    }
    text() {
      return Promise.resolve(native.utf8Decode(this.#bytes));
    }
    arrayBuffer() {
      return Promise.resolve(this.#bytes.slice().buffer);
    }
    bytes() {
      return Promise.resolve(this.#bytes.slice());
    }
    get [Symbol.toStringTag]() {
      return 'Blob';
    }
    static bytesOf(blob) {
      return blob.#bytes;
    }
  }
  const blobBytes = Blob.bytesOf;
  delete Blob.bytesOf;

  // ---------------------------------------------------------------------------------------------
  // Headers

  const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

  function headerName(name, where) {
    name = String(name);
    if (!TOKEN.test(name)) throw new TypeError(`Headers.${where}: "${name}" is an invalid header name.`);
    return name.toLowerCase();
  }

  function headerValue(value, where) {
    value = String(value).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
    if (/[\0\r\n]/.test(value)) throw new TypeError(`Headers.${where}: "${value}" is an invalid header value.`);
    return value;
  }

  class Headers {
    #list = [];
    #immutable = false;

    constructor(init = undefined) {
      if (init === undefined || init === null) return;
      if (init instanceof Headers) {
        this.#list = init.#list.map(([n, v]) => [n, v]);
      } else if (typeof init === 'object' && typeof init[Symbol.iterator] === 'function') {
        for (const pair of init) {
          const entry = [...pair];
          if (entry.length !== 2) throw new TypeError('Headers constructor: expected name/value pair to be length 2, found ' + entry.length + '.');
          this.append(entry[0], entry[1]);
        }
      } else if (typeof init === 'object') {
        for (const key of Object.keys(init)) this.append(key, init[key]);
      } else {
        throw new TypeError("Headers constructor: init must be a sequence or a record");
      }
    }

    #check(where) {
      if (this.#immutable) throw new TypeError(`Headers.${where}: immutable`);
    }

    append(name, value) {
      this.#check('append');
      this.#list.push([headerName(name, 'append'), headerValue(value, 'append')]);
    }
    delete(name) {
      this.#check('delete');
      name = headerName(name, 'delete');
      this.#list = this.#list.filter(([n]) => n !== name);
    }
    get(name) {
      name = headerName(name, 'get');
      const values = this.#list.filter(([n]) => n === name).map(([, v]) => v);
      return values.length === 0 ? null : values.join(', ');
    }
    getSetCookie() {
      return this.#list.filter(([n]) => n === 'set-cookie').map(([, v]) => v);
    }
    has(name) {
      name = headerName(name, 'has');
      return this.#list.some(([n]) => n === name);
    }
    set(name, value) {
      this.#check('set');
      name = headerName(name, 'set');
      value = headerValue(value, 'set');
      const i = this.#list.findIndex(([n]) => n === name);
      if (i < 0) {
        this.#list.push([name, value]);
      } else {
        this.#list[i] = [name, value];
        this.#list = this.#list.filter(([n], j) => j <= i || n !== name);
      }
    }
    forEach(callback, thisArg) {
      for (const [name, value] of this) callback.call(thisArg, value, name, this);
    }
    // Sorted by name, values of one name combined, set-cookie kept apart: the standard's order.
    *entries() {
      const names = [...new Set(this.#list.map(([n]) => n))].sort();
      for (const name of names) {
        if (name === 'set-cookie') {
          for (const value of this.getSetCookie()) yield [name, value];
        } else {
          yield [name, this.get(name)];
        }
      }
    }
    *keys() {
      for (const [name] of this.entries()) yield name;
    }
    *values() {
      for (const [, value] of this.entries()) yield value;
    }
    [Symbol.iterator]() {
      return this.entries();
    }
    get [Symbol.toStringTag]() {
      return 'Headers';
    }

    static freeze(headers) {
      headers.#immutable = true;
      return headers;
    }
    static pairs(headers) {
      return headers.#list.map(([n, v]) => [n, v]);
    }
  }
  const freezeHeaders = Headers.freeze;
  const headerPairs = Headers.pairs;
  delete Headers.freeze;
  delete Headers.pairs;

  // ---------------------------------------------------------------------------------------------
  // Bodies, shared by Request and Response: { text | bytes, used }.

  const bodies = new WeakMap();

  // The body of `init` and the content type it implies, or null.
  function extractBody(body) {
    if (body === undefined || body === null) return null;
    if (typeof body === 'string') return { text: body, bytes: null, type: 'text/plain;charset=UTF-8' };
    if (body instanceof URLSearchParams) {
      return { text: body.toString(), bytes: null, type: 'application/x-www-form-urlencoded;charset=UTF-8' };
    }
    if (body instanceof Blob) return { text: null, bytes: blobBytes(body), type: body.type || null };
    if (isBufferSource(body)) return { text: null, bytes: bytesOf(body).slice(), type: null };
    if (typeof body?.getReader === 'function' || typeof body?.[Symbol.asyncIterator] === 'function') {
      throw new TypeError('Streaming bodies are not supported in flowhost; pass a string or bytes');
    }
    return { text: String(body), bytes: null, type: 'text/plain;charset=UTF-8' };
  }

  function attachBody(target, source, headers) {
    if (source === null) {
      bodies.set(target, null);
      return;
    }
    bodies.set(target, { text: source.text, bytes: source.bytes, used: false });
    if (source.type !== null && !headers.has('content-type')) headers.set('content-type', source.type);
  }

  function takeBody(target) {
    const body = bodies.get(target);
    if (body === null || body === undefined) return { text: '', bytes: null };
    if (body.used) throw new TypeError('Body is unusable: Body has already been read');
    body.used = true;
    return body;
  }

  const textOf = (body) => {
    if (body.text !== null && body.text !== undefined) return body.text;
    const text = native.utf8Decode(body.bytes);
    return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  };
  const bytesOfBody = (body) =>
    body.bytes !== null && body.bytes !== undefined ? body.bytes.slice() : new Uint8Array(native.utf8Encode(body.text));

  const consume = (read) =>
    function () {
      try {
        return Promise.resolve(read(takeBody(this), this));
      } catch (err) {
        return Promise.reject(err);
      }
    };

  // A reader over the one chunk a body has, for code that reads `response.body`.
  class BodyStream {
    #owner;
    #locked = false;
    constructor(owner) {
      this.#owner = owner;
    }
    get locked() {
      return this.#locked;
    }
    getReader() {
      if (this.#locked) throw new TypeError('ReadableStream is locked');
      this.#locked = true;
      let done = false;
      const owner = this.#owner;
      return {
        read() {
          if (done) return Promise.resolve({ value: undefined, done: true });
          done = true;
          try {
            const chunk = bytesOfBody(takeBody(owner));
            return Promise.resolve(chunk.length === 0 ? { value: undefined, done: true } : { value: chunk, done: false });
          } catch (err) {
            return Promise.reject(err);
          }
        },
        releaseLock() {},
        cancel() {
          done = true;
          return Promise.resolve();
        },
        closed: Promise.resolve(),
      };
    }
    async *[Symbol.asyncIterator]() {
      const reader = this.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        yield value;
      }
    }
  }

  function defineBodyMethods(prototype) {
    Object.defineProperties(prototype, {
      body: {
        get() {
          return bodies.get(this) ? new BodyStream(this) : null;
        },
        enumerable: true,
        configurable: true,
      },
      bodyUsed: {
        get() {
          return !!bodies.get(this)?.used;
        },
        enumerable: true,
        configurable: true,
      },
    });
    Object.assign(prototype, {
      text: consume(textOf),
      json: consume((body) => JSON.parse(textOf(body))),
      arrayBuffer: consume((body) => bytesOfBody(body).buffer),
      bytes: consume(bytesOfBody),
      blob: consume((body, owner) => new Blob([bytesOfBody(body)], { type: owner.headers.get('content-type') ?? '' })),
      formData: consume(() => {
        throw new TypeError('Response.formData is not supported in flowhost');
      }),
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Request

  const NORMALIZED_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);
  const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK']);

  class Request {
    #url;
    #method;
    #headers;
    #signal;
    #redirect;

    constructor(input, init = {}) {
      if (arguments.length === 0) throw new TypeError('The "input" argument must be specified');
      init = init ?? {};
      const from = input instanceof Request ? input : null;
      if (from === null) {
        let url;
        try {
          url = new URL(String(input));
        } catch (err) {
          throw new TypeError(`Failed to parse URL from ${String(input)}`, { cause: err });
        }
        if (url.username !== '' || url.password !== '') {
          throw new TypeError(`Request cannot be constructed from a URL that includes credentials: ${String(input)}`);
        }
        this.#url = url.href;
      } else {
        this.#url = from.#url;
      }

      let method = init.method !== undefined ? String(init.method) : from?.#method ?? 'GET';
      if (!TOKEN.test(method)) throw new TypeError(`'${method}' is not a valid HTTP method.`);
      const upper = method.toUpperCase();
      if (FORBIDDEN_METHODS.has(upper)) throw new TypeError(`'${method}' HTTP method is unsupported.`);
      this.#method = NORMALIZED_METHODS.has(upper) ? upper : method;

      this.#headers = new Headers(init.headers !== undefined ? init.headers : from?.#headers);
      this.#redirect = init.redirect ?? from?.#redirect ?? 'follow';
      const signal = init.signal !== undefined ? init.signal : from?.#signal;
      if (signal !== undefined && signal !== null && !(signal instanceof AbortSignal)) {
        throw new TypeError('Failed to construct \'Request\': member signal is not of type AbortSignal.');
      }
      this.#signal = signal ?? new AbortController().signal;

      const body = init.body !== undefined ? extractBody(init.body) : from !== null ? copiedBody(from) : null;
      if (body !== null && (this.#method === 'GET' || this.#method === 'HEAD')) {
        throw new TypeError('Request with GET/HEAD method cannot have body.');
      }
      attachBody(this, body, this.#headers);
    }

    get url() { return this.#url; }
    get method() { return this.#method; }
    get headers() { return this.#headers; }
    get signal() { return this.#signal; }
    get redirect() { return this.#redirect; }
    get cache() { return 'default'; }
    get credentials() { return 'same-origin'; }
    get mode() { return 'cors'; }
    get referrer() { return 'about:client'; }
    get referrerPolicy() { return ''; }
    get integrity() { return ''; }
    get keepalive() { return false; }
    get destination() { return ''; }
    get duplex() { return 'half'; }

    clone() {
      if (this.bodyUsed) throw new TypeError('Request.clone: Body has already been consumed.');
      return new Request(this);
    }
    get [Symbol.toStringTag]() {
      return 'Request';
    }
  }
  defineBodyMethods(Request.prototype);

  function copiedBody(from) {
    const body = bodies.get(from);
    if (body === null || body === undefined) return null;
    if (body.used) throw new TypeError('Cannot construct a Request with a Request object that has already been used.');
    return { text: body.text, bytes: body.bytes === null ? null : body.bytes.slice(), type: null };
  }

  // ---------------------------------------------------------------------------------------------
  // Response

  const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);
  const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);
  const INTERNAL = Symbol('internal');

  class Response {
    #status = 200;
    #statusText = '';
    #headers;
    #type = 'default';
    #url = '';

    constructor(body = null, init = {}) {
      init = init ?? {};
      if (init[INTERNAL] !== undefined) {
        const meta = init[INTERNAL];
        this.#status = meta.status;
        this.#statusText = meta.statusText;
        this.#headers = freezeHeaders(meta.headers);
        this.#type = meta.type;
        this.#url = meta.url;
        bodies.set(this, meta.body);
        return;
      }
      const status = init.status === undefined ? 200 : Number(init.status);
      if (!(status >= 200 && status <= 599) || !Number.isInteger(status)) {
        throw new RangeError(`init["status"] must be in the range of 200 to 599, inclusive.`);
      }
      this.#status = status;
      this.#statusText = init.statusText === undefined ? '' : String(init.statusText);
      this.#headers = new Headers(init.headers);
      const source = extractBody(body);
      if (source !== null && NULL_BODY_STATUS.has(status)) {
        throw new TypeError(`Response constructor: Invalid response status code ${status}`);
      }
      attachBody(this, source, this.#headers);
    }

    static error() {
      return new Response(null, {
        [INTERNAL]: { status: 0, statusText: '', headers: new Headers(), type: 'error', url: '', body: null },
      });
    }
    static json(data, init = {}) {
      const text = JSON.stringify(data);
      if (text === undefined) throw new TypeError('Value is not JSON serializable');
      const headers = new Headers(init?.headers);
      if (!headers.has('content-type')) headers.set('content-type', 'application/json');
      return new Response(text, { ...init, headers });
    }
    static redirect(url, status = 302) {
      const location = new URL(String(url)).href;
      if (!REDIRECT_STATUS.has(status)) throw new RangeError(`Invalid status code ${status}`);
      return new Response(null, {
        [INTERNAL]: { status, statusText: '', headers: new Headers({ location }), type: 'default', url: '', body: null },
      });
    }

    get status() { return this.#status; }
    get statusText() { return this.#statusText; }
    get ok() { return this.#status >= 200 && this.#status <= 299; }
    get headers() { return this.#headers; }
    get type() { return this.#type; }
    get url() { return this.#url; }
    get redirected() { return false; }

    clone() {
      if (this.bodyUsed) throw new TypeError('Response.clone: Body has already been consumed.');
      const body = bodies.get(this);
      return new Response(null, {
        [INTERNAL]: {
          status: this.#status,
          statusText: this.#statusText,
          headers: new Headers(this.#headers),
          type: this.#type,
          url: this.#url,
          body: body ? { text: body.text, bytes: body.bytes === null ? null : body.bytes.slice(), used: false } : null,
        },
      });
    }
    get [Symbol.toStringTag]() {
      return 'Response';
    }
  }
  defineBodyMethods(Response.prototype);

  // ---------------------------------------------------------------------------------------------
  // fetch

  const STATUS_TEXT = {
    200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 301: 'Moved Permanently', 302: 'Found',
    304: 'Not Modified', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
    405: 'Method Not Allowed', 408: 'Request Timeout', 409: 'Conflict', 413: 'Payload Too Large',
    422: 'Unprocessable Entity', 429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway',
    503: 'Service Unavailable', 504: 'Gateway Timeout',
  };

  function responseFromHost(res, request) {
    const headers = new Headers();
    for (const [name, value] of res.headers) {
      try {
        headers.append(name, value);
      } catch {
        // A header the standard would not let through; drop it, as browsers do.
      }
    }
    const empty = request.method === 'HEAD' || NULL_BODY_STATUS.has(res.status);
    let body = null;
    if (!empty) {
      body = res.bodyEncoding === 'base64'
        ? { text: null, bytes: new Uint8Array(native.base64Decode(res.body)), used: false }
        : { text: res.body, bytes: null, used: false };
    }
    return new Response(null, {
      [INTERNAL]: {
        status: res.status,
        statusText: STATUS_TEXT[res.status] ?? '',
        headers,
        type: 'basic',
        url: request.url,
        body,
      },
    });
  }

  function fetch(input, init = undefined) {
    return new Promise((resolve, reject) => {
      const request = new Request(input, init);
      const signal = request.signal;
      signal.throwIfAborted();

      const outbound = { method: request.method, url: request.url, headers: headerPairs(request.headers) };
      const body = bodies.get(request);
      if (body) {
        body.used = true;
        if (body.text !== null) {
          outbound.body = body.text;
        } else {
          outbound.body = native.base64Encode(body.bytes);
          outbound.bodyEncoding = 'base64';
        }
      }

      let settled = false;
      const onAbort = () => {
        if (settled) return;
        settled = true;
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      hostRequest(outbound).then(
        (res) => {
          if (settled) return;
          settled = true;
          signal.removeEventListener('abort', onAbort);
          resolve(responseFromHost(res, request));
        },
        (err) => {
          if (settled) return;
          settled = true;
          signal.removeEventListener('abort', onAbort);
          reject(new TypeError('fetch failed', { cause: err }));
        },
      );
    });
  }

  define('Blob', Blob);
  define('Headers', Headers);
  define('Request', Request);
  define('Response', Response);
  define('fetch', fetch);
})
