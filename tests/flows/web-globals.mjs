// Probe of the guest's Web globals. Each event names a case; the result is plain JSON that must
// be the same in flowhost and in Node (tests/compat.rs). Random values are reduced to shapes.

const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
const error = (fn) => {
  try {
    fn();
    return 'no error';
  } catch (e) {
    return [e.name, e.message, e.code ?? null];
  }
};

const cases = {
  url() {
    const u = new URL('HTTPS://user:pw@Bücher.example:443/a/./b/../c?x=1&y=2 3#frag');
    u.searchParams.append('z', 'ä &');
    const v = new URL('http://example.com:8080/p?q=1#h');
    v.port = '80';
    v.pathname = '/new path';
    v.hash = '';
    v.search = '?a=b';
    v.searchParams.set('c', 'd');
    v.hostname = 'Other.Example';
    return [u.href, u.origin, u.host, u.hostname, u.port, u.pathname, u.search, u.hash, v.href,
      String(new URL('../d?q', 'http://h/a/b/c')), new URL('//x.org/p', 'https://y.org').href,
      URL.canParse('nope'), URL.canParse('/p', 'http://h'), error(() => new URL('nope')), error(() => new URL('/p')),
      new URL('http://[::1]:3000/').host, new URL('http://192.168.0.1.').hostname, new URL('http://0x7f.1/').hostname,
      new URL('mailto:a@b.c').pathname, new URL('data:text/plain,hi').protocol, new URL('file:///a/b').href,
      JSON.stringify({ u: new URL('http://a/') }), Object.keys(new URL('http://a/')).length];
  },
  searchParams() {
    const p = new URLSearchParams('?a=1&b=2&a=3&c=%zz&d=%E2%82%AC+x&e');
    p.sort();
    const q = new URLSearchParams({ x: '1', y: 'ä ö', z: '+&=' });
    const r = new URLSearchParams([['k', 'v'], ['k', 'w']]);
    r.delete('k', 'w');
    return [p.toString(), p.getAll('a'), p.get('d'), p.get('missing'), [...p.keys()], p.size, p.has('e'), q.toString(),
      r.toString(), [...new URLSearchParams('a=b&c=d').entries()], String(new URLSearchParams(null)),
      error(() => new URLSearchParams([['only']]))];
  },
  encoding() {
    const e = new TextEncoder().encode('h€llo \ud83d\ude00 \ud800');
    const d = new TextDecoder();
    const euro = new TextEncoder().encode('€');
    const streamed = d.decode(euro.subarray(0, 1), { stream: true }) + '|' + d.decode(euro.subarray(1), { stream: true }) + '|' + d.decode();
    const into = new Uint8Array(5);
    const written = new TextEncoder().encodeInto('a€b€', into);
    return [Array.from(e), new TextDecoder().decode(e), streamed, written, Array.from(into),
      new TextDecoder().decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x61])), new TextDecoder('utf-8', { ignoreBOM: true }).decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x61])).length,
      new TextDecoder('utf-16le').decode(new Uint8Array([0x61, 0, 0x3d, 0xd8, 0, 0xde])), new TextDecoder('latin1').decode(new Uint8Array([0x41, 0xe9, 0xff])),
      error(() => new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array([0xff]))), error(() => new TextDecoder('nope')),
      new TextDecoder().decode(new Uint8Array([0xff, 0xfe, 0x41, 0xed, 0xa0, 0x80, 0xe2, 0x82])),
      btoa('hello'), atob('aGVsbG8='), atob(' aGVs bG8 '), btoa(String.fromCharCode(0, 255)), error(() => atob('a')), error(() => btoa('€'))];
  },
  async crypto() {
    const r = crypto.getRandomValues(new Uint8Array(8));
    const u32 = crypto.getRandomValues(new Uint32Array(4));
    const enc = new TextEncoder();
    const d1 = await crypto.subtle.digest('SHA-256', enc.encode('abc'));
    const d2 = await crypto.subtle.digest({ name: 'SHA-1' }, enc.encode('abc'));
    const d3 = await crypto.subtle.digest('SHA-512', new ArrayBuffer(0));
    const key = await crypto.subtle.importKey('raw', enc.encode('key'), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    const sig = await crypto.subtle.sign('HMAC', key, enc.encode('The quick brown fox jumps over the lazy dog'));
    const ok = await crypto.subtle.verify('HMAC', key, sig, enc.encode('The quick brown fox jumps over the lazy dog'));
    const bad = await crypto.subtle.verify('HMAC', key, sig, enc.encode('other'));
    const uuid = crypto.randomUUID();
    let rejected;
    try {
      await crypto.subtle.digest('MD5', enc.encode('x'));
    } catch (e) {
      rejected = e.name;
    }
    return [r.length, u32.length, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(uuid), hex(d1), hex(d2), hex(d3).slice(0, 16),
      hex(sig), ok, bad, key.type, key.algorithm.name, key.algorithm.hash.name, key.usages, rejected,
      error(() => crypto.getRandomValues(new Float32Array(1))), error(() => crypto.getRandomValues(new Uint8Array(65537)))];
  },
  clone() {
    const a = { d: new Date(0), m: new Map([[1, { x: 1 }]]), s: new Set([1]), arr: [1, , 3], re: /a/g, n: new Number(3), u8: new Uint8Array([1, 2]), big: 10n };
    a.self = a;
    a.shared = [a.m, a.m];
    const c = structuredClone(a);
    const e = structuredClone(new RangeError('boom', { cause: 'why' }));
    class K { constructor() { this.v = 1; } get g() { return 2; } }
    return [c.self === c, c.shared[0] === c.shared[1], c.d.toISOString(), c.m.get(1).x, c.s.has(1), c.arr.length, 1 in c.arr, String(c.re),
      typeof c.n, Array.from(c.u8), String(c.big), e instanceof RangeError, e.message, e.cause, JSON.stringify(structuredClone(new K())),
      Object.getPrototypeOf(structuredClone(new K())) === Object.prototype, error(() => structuredClone(Symbol('x'))), error(() => structuredClone({ f() {} }))[0]];
  },
  async abort() {
    const c = new AbortController();
    const seen = [];
    c.signal.addEventListener('abort', (e) => seen.push([e.type, e.target === c.signal]));
    c.signal.onabort = () => seen.push('onabort');
    c.signal.addEventListener('abort', () => seen.push('once'), { once: true });
    c.abort();
    c.abort('again');
    const t = AbortSignal.timeout(10);
    const any = AbortSignal.any([t, new AbortController().signal]);
    await new Promise((r) => setTimeout(r, 30));
    const custom = new AbortController();
    custom.abort(new Error('mine'));
    const target = new EventTarget();
    let count = 0;
    const listener = () => count++;
    target.addEventListener('x', listener);
    target.addEventListener('x', listener);
    target.dispatchEvent(new Event('x'));
    target.removeEventListener('x', listener);
    target.dispatchEvent(new Event('x'));
    const cancelable = new Event('y', { cancelable: true });
    target.addEventListener('y', (e) => e.preventDefault());
    return [seen, c.signal.aborted, c.signal.reason.name, c.signal.reason.message, c.signal.reason instanceof DOMException, c.signal.reason.code,
      t.aborted, t.reason.name, any.aborted, any.reason.name, custom.signal.reason.message, error(() => custom.signal.throwIfAborted()),
      AbortSignal.abort().reason.name, count, target.dispatchEvent(cancelable), cancelable.defaultPrevented,
      error(() => new AbortSignal()), new DOMException('m', 'NotFoundError').code];
  },
  async fetch(sink) {
    const c = new AbortController();
    const p = fetch('http://127.0.0.1:9/never', { signal: c.signal, method: 'POST', body: 'x' });
    c.abort();
    let aborted;
    try {
      await p;
    } catch (e) {
      aborted = [e.name, e.message];
    }
    const res = await fetch(sink, { method: 'POST', headers: { 'x-flow': 'fetch', 'content-type': 'application/json' }, body: JSON.stringify({ a: 1 }) });
    const text = await res.clone().text();
    const json = await res.json();
    let used;
    try {
      await res.text();
    } catch (e) {
      used = e.name;
    }
    const made = new Response('{"a":1}', { status: 201, headers: { 'X-A': '1' } });
    const h = new Headers([['b', '2'], ['a', '1'], ['a', '3'], ['set-cookie', 'x=1'], ['set-cookie', 'y=2']]);
    const req = new Request('http://example.com/path?q', { method: 'post', headers: { 'X-T': 'v' }, body: 'payload' });
    const blob = new Blob(['ab', new Uint8Array([99])], { type: 'Text/Plain' });
    return [aborted, res.status, res.ok, res.headers.get('content-type'), text, json, used, made.status, made.ok, await made.json(),
      [...h], h.get('a'), h.getSetCookie(), req.method, req.url, req.headers.get('x-t'), req.headers.get('content-type'), await req.clone().text(),
      blob.size, blob.type, await blob.text(), await blob.slice(1).text(), Response.json({ b: 2 }).headers.get('content-type'),
      Response.redirect('http://a/', 301).headers.get('location'), Response.error().type,
      error(() => new Headers({ 'bad name': 'x' }))[0], error(() => new Request('/relative'))[0], error(() => new Request('http://a/', { method: 'GET', body: 'x' }))[0],
      error(() => new Response('x', { status: 99 }))[0], error(() => new Response('x', { status: 204 }))[0]];
  },
};

export async function push(name) {
  return cases[name](process.env.SINK_URL);
}
