// Probe of the guest's Node modules (guest-shim/js/node/). Each event names a case; the result
// is plain JSON that must be the same in flowhost (bundled with the guest's modules) and in Node
// (tests/compat.rs).
import { Buffer } from 'node:buffer';
import crypto, { createHash, createHmac } from 'crypto';
import EventEmitter, { once } from 'events';
import * as http from 'http';
import util from 'node:util';
import url from 'url';
import qs from 'querystring';
import path from 'path';
import { StringDecoder } from 'string_decoder';
import { Readable, Transform, PassThrough } from 'stream';
import assert from 'assert';

export async function push(name) {
  const sink = process.env.SINK_URL;
  switch (name) {
    case 'buffer': {
      const b = Buffer.from('hello world');
      const c = Buffer.alloc(10);
      return [b.toString('hex'), b.toString('base64'), b.toString('base64url'), Buffer.from('aGk', 'base64url').toString(),
        b.indexOf('o'), b.lastIndexOf('o'), b.includes('wor'), b.readUInt32BE(0), b.readInt16LE(1), b.readDoubleLE(0), String(b.readBigUInt64BE(0)),
        b.readUIntBE(0, 6), b.readIntLE(0, 3), c.write('héllo', 2), c.toJSON(), Buffer.alloc(5, 'ab').toString(), Buffer.compare(Buffer.from('a'), Buffer.from('b')),
        Buffer.byteLength('héllo'), Buffer.byteLength('aGk=', 'base64'), Buffer.concat([Buffer.from('a'), new Uint8Array([98])], 5).toJSON().data,
        b.slice(0, 5).toString(), Buffer.isBuffer(b.subarray(1)), b.map((x) => x + 1) instanceof Buffer, JSON.stringify(Buffer.from('ab')),
        Buffer.from([300, -1, 1.7, '7']).toJSON().data, Buffer.from('€').toString('latin1'), Buffer.from([0xff, 0xfe, 0x41]).toString(), Buffer.from('a\ud800b').toString('hex'),
        Buffer.from('  aGk= ', 'base64').toString(), Buffer.from([1, 2, 3, 4]).swap16().toJSON().data, Buffer.from('ff', 'hex').readInt8(0), util.inspect(Buffer.from('hi'))];
    }
    case 'errors': {
      const out = [];
      for (const f of [() => Buffer.alloc(4).readUInt32LE(1), () => Buffer.from(123), () => Buffer.from('a').toString('nope'),
        () => Buffer.alloc(4).writeUInt8(300), () => Buffer.alloc(-1), () => createHash('nope'), () => createHash('md5').digest() && null]) {
        try { f(); out.push('no error'); } catch (e) { out.push([e.name, e.code, e.message]); }
      }
      const h = createHash('sha1'); h.digest();
      try { h.update('x'); } catch (e) { out.push([e.code, e.message]); }
      return out;
    }
    case 'crypto': {
      return [createHash('sha256').update('abc').digest('hex'), createHash('md5').update('a').update(Buffer.from('bc')).digest('base64'),
        createHash('sha1').update('616263', 'hex').digest('hex'), createHmac('sha256', 'key').update('The quick brown fox jumps over the lazy dog').digest('hex'),
        createHmac('sha1', Buffer.from('k')).update('d').digest('base64'), createHash('sha512').update('').digest('hex').slice(0, 20),
        crypto.randomBytes(16).length, typeof crypto.randomUUID(), crypto.randomInt(10) < 10, crypto.timingSafeEqual(Buffer.from('a'), Buffer.from('a')),
        createHash('sha384').update('x').digest().length, createHash('sha224').update('x').digest('hex')];
    }
    case 'events': {
      const e = new EventEmitter();
      const seen = [];
      e.on('a', (x) => seen.push(['a1', x]));
      e.prependListener('a', (x) => seen.push(['a0', x]));
      e.once('a', (x) => seen.push(['once', x]));
      e.emit('a', 1); e.emit('a', 2);
      let err;
      try { e.emit('error', new Error('boom')); } catch (x) { err = x.message; }
      setTimeout(() => e.emit('later', 5), 1);
      const [v] = await once(e, 'later');
      return [seen, err, v, e.listenerCount('a'), e.eventNames()];
    }
    case 'stream': {
      const chunks = [];
      const r = Readable.from(['a', 'b', 'c']);
      for await (const c of r) chunks.push(c);
      const t = new Transform({ transform(chunk, enc, cb) { cb(null, chunk.toString().toUpperCase()); } });
      const out = [];
      t.on('data', (d) => out.push(d.toString()));
      const done = new Promise((r) => t.on('end', r));
      t.write('x'); t.end('y');
      await done;
      const d = new StringDecoder('utf8');
      const euro = Buffer.from('€');
      return [chunks, out, d.write(euro.subarray(0, 1)) + '|' + d.write(euro.subarray(1)) + '|' + d.end()];
    }
    case 'util': {
      return [util.format('%s=%d %j %o', 'a', 42, { x: 1 }, [1]), util.format('a', { b: [1, { c: { d: 1 } }] }, 'c'), util.inspect({ a: 'x', b: [1, 2], m: new Map([[1, 2]]), s: new Set(['a']), d: new Date(0), n: null, u: undefined, f() {} }),
        util.inspect('str'), util.isDeepStrictEqual({ a: [1] }, { a: [1] }), util.types.isDate(new Date()), await util.promisify((a, cb) => cb(null, a + 1))(1)];
    }
    case 'url': {
      const p = url.parse('http://user:pw@Host.com:8080/p/a/t/h?query=string#hash');
      return [{ ...p }, url.parse('/p?x=1&x=2', true).query, url.format({ protocol: 'http', host: 'a.com', pathname: '/x', query: { a: 1 } }),
        url.resolve('http://a/b/c', '../d'), url.fileURLToPath('file:///a/b%20c'), url.pathToFileURL('/a b#c').href, url.domainToASCII('bücher.de'),
        qs.parse('a=1&b=2&a=3&c&d=&=e&f=%zz&g=a+b&h=%E2%82%AC'), qs.stringify({ a: [1, 2], b: 'x y', c: true, d: null, g: "€!*()'" }),
        path.join('/a', 'b/../c', './d'), path.resolve('x', '/y', 'z'), path.relative('/a/b/c', '/a/d'), path.extname('a/b.tar.gz'), path.parse('/srv/u/f.txt')];
    }
    case 'assert': {
      const out = [];
      for (const f of [() => assert.strictEqual(1, 1), () => assert.deepStrictEqual({ a: 1 }, { a: 2 }), () => assert(0), () => assert.throws(() => { throw new TypeError('x'); }, TypeError)]) {
        try { f(); out.push('ok'); } catch (e) { out.push([e.name, e.code]); }
      }
      return out;
    }
    case 'http': {
      const get = (url) => new Promise((resolve) => {
        const req = http.request(url, { method: 'POST', headers: { 'x-flow': 'node-http', 'content-type': 'text/plain' } }, (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolve([res.statusCode, res.statusMessage, res.headers['content-type'], Buffer.concat(chunks).toString(), typeof res.headers]));
        });
        req.on('error', (e) => resolve(['error', e.code]));
        req.write('part1,');
        req.end(Buffer.from('part2'));
      });
      const encoded = await new Promise((resolve) => {
        http.get(new URL(sink), (res) => {
          res.setEncoding('utf8');
          let body = '';
          res.on('data', (c) => { body += typeof c; });
          res.on('end', () => resolve([res.statusCode, body]));
        }).on('error', (e) => resolve(['error', e.code]));
      });
      const refused = await new Promise((resolve) => {
        const req = http.request({ host: '127.0.0.1', port: 9, path: '/x', method: 'POST' }, () => resolve('response'));
        req.on('error', (e) => resolve(e.code));
        req.end('x');
      });
      // The order of the events of a request and its response.
      const order = await new Promise((resolve) => {
        const seen = [];
        const req = http.request(sink, { method: 'POST' }, (res) => {
          seen.push('response');
          res.on('data', () => seen.push('data'));
          res.on('end', () => seen.push('end'));
          res.on('close', () => seen.push('res close'));
        });
        req.on('finish', () => seen.push('finish'));
        req.on('close', () => {
          seen.push('req close');
          resolve(seen);
        });
        req.end('x');
      });
      const hungUp = await new Promise((resolve) => {
        const seen = [];
        const req = http.request(sink, { method: 'POST' }, () => seen.push('response'));
        req.on('error', (e) => seen.push(['error', e.code, e.message]));
        req.on('close', () => resolve([...seen, 'close', req.destroyed]));
        req.end('x');
        req.destroy();
      });
      let mismatch;
      try { http.request('https://example.com/'); } catch (e) { mismatch = [e.code, e.message]; }
      return [await get(sink), encoded, refused, order, hungUp, mismatch, http.STATUS_CODES[404], http.METHODS.includes('PATCH')];
    }
  }
}
