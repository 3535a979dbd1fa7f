// URL and URLSearchParams. Parsing, the setters and the form encoding are native (the `url`
// crate implements the WHATWG URL standard, as Node's parser does); this file keeps the parts
// and the link between a URL and its searchParams.
(function url(native) {
  'use strict';

  const define = (name, value) =>
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });

  // Indexes into the parts array `native.urlParse` returns.
  const HREF = 0, ORIGIN = 1, PROTOCOL = 2, USERNAME = 3, PASSWORD = 4, HOST = 5, HOSTNAME = 6,
    PORT = 7, PATHNAME = 8, SEARCH = 9, HASH = 10;

  function invalidUrl(input) {
    const error = new TypeError('Invalid URL');
    error.code = 'ERR_INVALID_URL';
    error.input = input;
    return error;
  }

  function invalidTuple() {
    const error = new TypeError('Each query pair must be an iterable [name, value] tuple');
    error.code = 'ERR_INVALID_TUPLE';
    return error;
  }

  // Set by URLSearchParams' static block: replace a params object's list from a query string.
  let resetParams;
  // Set by URL's static block: give a URL a new query after its params changed.
  let setQuery;

  class URLSearchParams {
    #list = [];
    #url = null;

    constructor(init = '') {
      if (init === null) return; // as Node does, although WebIDL would make it "null"
      if (init instanceof URLSearchParams) {
        this.#list = init.#list.map(([name, value]) => [name, value]);
      } else if (init !== null && (typeof init === 'object' || typeof init === 'function')) {
        if (typeof init[Symbol.iterator] === 'function') {
          for (const pair of init) {
            if (pair === null || (typeof pair !== 'object' && typeof pair !== 'function') || typeof pair[Symbol.iterator] !== 'function') {
              throw invalidTuple();
            }
            const entry = [...pair];
            if (entry.length !== 2) throw invalidTuple();
            this.#list.push([String(entry[0]), String(entry[1])]);
          }
        } else {
          for (const key of Object.keys(init)) this.#list.push([key, String(init[key])]);
        }
      } else {
        let text = String(init);
        if (text.startsWith('?')) text = text.slice(1);
        this.#parse(text);
      }
    }

    #parse(text) {
      const flat = native.formDecode(text);
      const list = [];
      for (let i = 0; i < flat.length; i += 2) list.push([flat[i], flat[i + 1]]);
      this.#list = list;
    }

    #update() {
      if (this.#url !== null) setQuery(this.#url, this.toString());
    }

    get size() {
      return this.#list.length;
    }
    append(name, value) {
      this.#list.push([String(name), String(value)]);
      this.#update();
    }
    delete(name, value) {
      name = String(name);
      const all = value === undefined;
      value = all ? undefined : String(value);
      this.#list = this.#list.filter(([n, v]) => !(n === name && (all || v === value)));
      this.#update();
    }
    get(name) {
      name = String(name);
      const entry = this.#list.find(([n]) => n === name);
      return entry === undefined ? null : entry[1];
    }
    getAll(name) {
      name = String(name);
      return this.#list.filter(([n]) => n === name).map(([, v]) => v);
    }
    has(name, value) {
      name = String(name);
      if (value === undefined) return this.#list.some(([n]) => n === name);
      value = String(value);
      return this.#list.some(([n, v]) => n === name && v === value);
    }
    set(name, value) {
      name = String(name);
      value = String(value);
      const i = this.#list.findIndex(([n]) => n === name);
      if (i < 0) {
        this.#list.push([name, value]);
      } else {
        this.#list[i][1] = value;
        this.#list = this.#list.filter(([n], j) => j <= i || n !== name);
      }
      this.#update();
    }
    sort() {
      // Stable, by UTF-16 code units.
      this.#list = this.#list
        .map((entry, i) => [entry, i])
        .sort(([a, i], [b, j]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : i - j))
        .map(([entry]) => entry);
      this.#update();
    }
    forEach(callback, thisArg) {
      if (typeof callback !== 'function') throw new TypeError('The "callback" argument must be of type function');
      for (let i = 0; i < this.#list.length; i++) {
        const [name, value] = this.#list[i];
        callback.call(thisArg, value, name, this);
      }
    }
    *entries() {
      for (let i = 0; i < this.#list.length; i++) yield [this.#list[i][0], this.#list[i][1]];
    }
    *keys() {
      for (let i = 0; i < this.#list.length; i++) yield this.#list[i][0];
    }
    *values() {
      for (let i = 0; i < this.#list.length; i++) yield this.#list[i][1];
    }
    [Symbol.iterator]() {
      return this.entries();
    }
    toString() {
      const flat = [];
      for (const [name, value] of this.#list) flat.push(name, value);
      return native.formEncode(flat);
    }
    get [Symbol.toStringTag]() {
      return 'URLSearchParams';
    }

    static {
      resetParams = (params, url, query) => {
        params.#url = url;
        params.#parse(query);
      };
    }
  }

  class URL {
    #parts;
    #params = null;

    constructor(input, base) {
      if (arguments.length === 0) throw new TypeError('The "url" argument must be specified');
      input = String(input);
      const parts = base === undefined ? native.urlParse(input) : native.urlParse(input, String(base));
      if (parts === null) throw invalidUrl(input);
      this.#parts = parts;
    }

    static canParse(input, base) {
      input = String(input);
      return (base === undefined ? native.urlParse(input) : native.urlParse(input, String(base))) !== null;
    }

    static parse(input, base) {
      try {
        return base === undefined ? new URL(input) : new URL(input, base);
      } catch {
        return null;
      }
    }

    #set(part, value) {
      const parts = native.urlSet(this.#parts[HREF], part, String(value));
      if (parts === null) {
        if (part === 'href') throw invalidUrl(String(value));
        return;
      }
      const queryChanged = parts[SEARCH] !== this.#parts[SEARCH];
      this.#parts = parts;
      if (queryChanged && this.#params !== null) resetParams(this.#params, this, parts[SEARCH].slice(1));
    }

    get href() { return this.#parts[HREF]; }
    set href(value) { this.#set('href', value); }
    get origin() { return this.#parts[ORIGIN]; }
    get protocol() { return this.#parts[PROTOCOL]; }
    set protocol(value) { this.#set('protocol', value); }
    get username() { return this.#parts[USERNAME]; }
    set username(value) { this.#set('username', value); }
    get password() { return this.#parts[PASSWORD]; }
    set password(value) { this.#set('password', value); }
    get host() { return this.#parts[HOST]; }
    set host(value) { this.#set('host', value); }
    get hostname() { return this.#parts[HOSTNAME]; }
    set hostname(value) { this.#set('hostname', value); }
    get port() { return this.#parts[PORT]; }
    set port(value) { this.#set('port', value); }
    get pathname() { return this.#parts[PATHNAME]; }
    set pathname(value) { this.#set('pathname', value); }
    get search() { return this.#parts[SEARCH]; }
    set search(value) { this.#set('search', value); }
    get hash() { return this.#parts[HASH]; }
    set hash(value) { this.#set('hash', value); }

    get searchParams() {
      if (this.#params === null) {
        this.#params = new URLSearchParams();
        resetParams(this.#params, this, this.#parts[SEARCH].slice(1));
      }
      return this.#params;
    }

    toString() {
      return this.#parts[HREF];
    }
    toJSON() {
      return this.#parts[HREF];
    }
    get [Symbol.toStringTag]() {
      return 'URL';
    }

    static {
      setQuery = (url, query) => {
        const parts = native.urlSet(url.#parts[HREF], 'search', query);
        if (parts !== null) url.#parts = parts;
      };
    }
  }

  // Node's accessors are enumerable, so `{ ...url }` and `Object.keys` see the same as there.
  for (const name of ['href', 'origin', 'protocol', 'username', 'password', 'host', 'hostname', 'port', 'pathname',
    'search', 'searchParams', 'hash']) {
    const descriptor = Object.getOwnPropertyDescriptor(URL.prototype, name);
    Object.defineProperty(URL.prototype, name, { ...descriptor, enumerable: true });
  }

  define('URL', URL);
  define('URLSearchParams', URLSearchParams);
})
