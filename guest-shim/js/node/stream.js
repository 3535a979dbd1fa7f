// node:stream for flowhost guests: Readable, Writable, Duplex, Transform and PassThrough with
// Node's events ('data', 'end', 'readable', 'finish', 'drain', 'error', 'close'), flowing and
// paused modes, pipe, async iteration, objectMode, plus pipeline and finished.
//
// A smaller machine than Node's: highWaterMark only decides what `write` and `push` return, and
// there is no stream/web. It is what the guest's http module and ordinary packages need.
import EventEmitter from './events.js';
import { Buffer } from './buffer.js';
import { StringDecoder } from './string_decoder.js';
import { codedError } from './internal/errors.js';

const nextTick = (fn, ...args) => process.nextTick(fn, ...args);
const DEFAULT_HWM = 16 * 1024;
const DEFAULT_OBJECT_HWM = 16;

function inherit(Child, Parent) {
  Object.setPrototypeOf(Child.prototype, Parent.prototype);
  Object.setPrototypeOf(Child, Parent);
}

function highWaterMark(options, objectMode, key) {
  const hwm = options?.[key] ?? options?.highWaterMark;
  return typeof hwm === 'number' ? hwm : objectMode ? DEFAULT_OBJECT_HWM : DEFAULT_HWM;
}

// ---------------------------------------------------------------------------------------------
// Stream: the legacy base, an EventEmitter with a simple pipe.

export function Stream(options) {
  EventEmitter.call(this, options);
}
inherit(Stream, EventEmitter);

Stream.prototype.pipe = function pipe(dest, options) {
  const source = this;
  source.on('data', (chunk) => {
    if (dest.write(chunk) === false && typeof source.pause === 'function') source.pause();
  });
  dest.on('drain', () => {
    if (typeof source.resume === 'function') source.resume();
  });
  if (options?.end !== false) source.on('end', () => dest.end());
  dest.emit('pipe', source);
  return dest;
};

// ---------------------------------------------------------------------------------------------
// Destruction, shared by both halves.

function destroyImpl(stream, err, cb) {
  const r = stream._readableState;
  const w = stream._writableState;
  if ((r ?? w).destroyed) {
    if (typeof cb === 'function') cb(err);
    return stream;
  }
  if (r) r.destroyed = true;
  if (w) w.destroyed = true;
  const finish = (error) => {
    if (error) {
      if (r) r.errored = error;
      if (w) w.errored = error;
    }
    if (typeof cb === 'function') cb(error);
    nextTick(() => {
      if (error && !(r?.errorEmitted || w?.errorEmitted)) {
        if (r) r.errorEmitted = true;
        if (w) w.errorEmitted = true;
        stream.emit('error', error);
      }
      if (r) r.closed = true;
      if (w) w.closed = true;
      if ((r ?? w).emitClose !== false) stream.emit('close');
    });
  };
  if (typeof stream._destroy === 'function') {
    stream._destroy(err ?? null, (error) => finish(error ?? err));
  } else {
    finish(err);
  }
  return stream;
}

// ---------------------------------------------------------------------------------------------
// Readable

export function Readable(options) {
  if (!(this instanceof Readable)) return new Readable(options);
  const objectMode = !!(options?.objectMode || options?.readableObjectMode);
  this._readableState = {
    objectMode,
    highWaterMark: highWaterMark(options, objectMode, 'readableHighWaterMark'),
    buffer: [],
    length: 0,
    flowing: null,
    ended: false,
    endEmitted: false,
    reading: false,
    scheduled: false,
    decoder: null,
    encoding: null,
    destroyed: false,
    errored: null,
    errorEmitted: false,
    closed: false,
    emitClose: options?.emitClose !== false,
    autoDestroy: options?.autoDestroy !== false,
    readableListening: false,
  };
  if (options?.encoding) this.setEncoding(options.encoding);
  if (typeof options?.read === 'function') this._read = options.read;
  if (typeof options?.destroy === 'function') this._destroy = options.destroy;
  if (typeof options?.construct === 'function') this._construct = options.construct;
  Stream.call(this, options);
  if (options?.signal) addAbortSignal(options.signal, this);
}
inherit(Readable, Stream);

Readable.prototype._read = function _read() {
  throw codedError(Error, 'ERR_METHOD_NOT_IMPLEMENTED', 'The _read() method is not implemented');
};

function chunkLength(state, chunk) {
  return state.objectMode ? 1 : chunk.length;
}

Readable.prototype.push = function push(chunk, encoding) {
  const state = this._readableState;
  state.reading = false;
  if (chunk === null) {
    state.ended = true;
    scheduleFlow(this);
    return false;
  }
  if (state.ended) {
    destroyImpl(this, codedError(Error, 'ERR_STREAM_PUSH_AFTER_EOF', 'stream.push() after EOF'));
    return false;
  }
  if (!state.objectMode) {
    if (typeof chunk === 'string') {
      chunk = state.decoder ? chunk : Buffer.from(chunk, encoding);
    } else if (chunk instanceof Uint8Array && !(chunk instanceof Buffer)) {
      chunk = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
    if (state.decoder && typeof chunk !== 'string') chunk = state.decoder.write(chunk);
    if (chunk.length === 0) return state.length < state.highWaterMark;
  }
  state.buffer.push(chunk);
  state.length += chunkLength(state, chunk);
  scheduleFlow(this);
  return state.length < state.highWaterMark;
};

Readable.prototype.unshift = function unshift(chunk) {
  const state = this._readableState;
  state.buffer.unshift(chunk);
  state.length += chunkLength(state, chunk);
  scheduleFlow(this);
};

function scheduleFlow(stream) {
  const state = stream._readableState;
  if (state.scheduled) return;
  state.scheduled = true;
  nextTick(flow, stream);
}

function maybeRead(stream) {
  const state = stream._readableState;
  if (state.ended || state.reading || state.destroyed || state.length >= state.highWaterMark) return;
  state.reading = true;
  try {
    stream._read(state.objectMode ? state.highWaterMark : state.highWaterMark);
  } catch (err) {
    destroyImpl(stream, err);
  }
}

function flow(stream) {
  const state = stream._readableState;
  state.scheduled = false;
  if (state.destroyed) return;
  if (state.flowing) {
    while (state.flowing && state.buffer.length > 0) {
      const chunk = state.buffer.shift();
      state.length -= chunkLength(state, chunk);
      stream.emit('data', chunk);
    }
  } else if (state.buffer.length > 0 && state.readableListening) {
    stream.emit('readable');
  }
  if (state.ended && state.buffer.length === 0) {
    endReadable(stream);
    return;
  }
  if (state.flowing || state.buffer.length === 0) maybeRead(stream);
}

function endReadable(stream) {
  const state = stream._readableState;
  if (state.endEmitted) return;
  if (!state.flowing && state.readableListening && state.buffer.length === 0 && !state.readableEmittedForEnd) {
    state.readableEmittedForEnd = true;
    stream.emit('readable');
  }
  if (!state.flowing && !state.readableListening) return;
  state.endEmitted = true;
  stream.emit('end');
  const w = stream._writableState;
  if (state.autoDestroy && (!w || w.finished || w.ended === undefined)) destroyImpl(stream);
}

Readable.prototype.read = function read(n) {
  const state = this._readableState;
  if (state.buffer.length === 0) {
    if (state.ended) {
      nextTick(endReadable, this);
    } else {
      maybeRead(this);
    }
    return null;
  }
  let chunk;
  if (state.objectMode) {
    chunk = state.buffer.shift();
    state.length -= 1;
  } else if (n === undefined || n >= state.length) {
    chunk = state.decoder ? state.buffer.join('') : Buffer.concat(state.buffer);
    state.buffer = [];
    state.length = 0;
  } else {
    const all = state.decoder ? state.buffer.join('') : Buffer.concat(state.buffer);
    chunk = all.slice(0, n);
    const rest = all.slice(n);
    state.buffer = [rest];
    state.length = rest.length;
  }
  if (state.buffer.length === 0 && state.ended) nextTick(endReadable, this);
  else maybeRead(this);
  if (chunk !== null) this.emit('data', chunk);
  return chunk;
};

Readable.prototype.on = function on(event, listener) {
  const result = Stream.prototype.on.call(this, event, listener);
  const state = this._readableState;
  if (event === 'data') {
    if (state.flowing !== false) this.resume();
  } else if (event === 'readable') {
    state.readableListening = true;
    state.flowing = false;
    scheduleFlow(this);
  }
  return result;
};
Readable.prototype.addListener = Readable.prototype.on;

Readable.prototype.resume = function resume() {
  const state = this._readableState;
  if (!state.flowing) {
    state.flowing = true;
    this.emit('resume');
  }
  scheduleFlow(this);
  return this;
};

Readable.prototype.pause = function pause() {
  const state = this._readableState;
  if (state.flowing !== false) {
    state.flowing = false;
    this.emit('pause');
  }
  return this;
};

Readable.prototype.isPaused = function isPaused() {
  return this._readableState.flowing === false;
};

Readable.prototype.setEncoding = function setEncoding(encoding) {
  const state = this._readableState;
  state.decoder = new StringDecoder(encoding);
  state.encoding = state.decoder.encoding;
  const text = state.buffer.map((chunk) => (typeof chunk === 'string' ? chunk : state.decoder.write(chunk))).join('');
  state.buffer = text.length > 0 ? [text] : [];
  state.length = text.length;
  return this;
};

Readable.prototype.pipe = function pipe(dest, options) {
  const source = this;
  const ondata = (chunk) => {
    if (dest.write(chunk) === false) source.pause();
  };
  source.on('data', ondata);
  dest.on('drain', () => source.resume());
  if (options?.end !== false) source.once('end', () => dest.end());
  (source._readableState.pipes ??= []).push({ dest, ondata });
  dest.emit('pipe', source);
  return dest;
};

Readable.prototype.unpipe = function unpipe(dest) {
  const pipes = this._readableState.pipes ?? [];
  for (const pipe of pipes.slice()) {
    if (dest === undefined || pipe.dest === dest) {
      this.removeListener('data', pipe.ondata);
      pipes.splice(pipes.indexOf(pipe), 1);
      pipe.dest.emit('unpipe', this);
    }
  }
  return this;
};

Readable.prototype.destroy = function destroy(err, cb) {
  return destroyImpl(this, err, cb);
};

Readable.prototype.wrap = function wrap(stream) {
  stream.on('data', (chunk) => {
    if (!this.push(chunk)) stream.pause?.();
  });
  stream.on('end', () => this.push(null));
  stream.on('error', (err) => destroyImpl(this, err));
  this._read = () => stream.resume?.();
  return this;
};

Readable.prototype[Symbol.asyncIterator] = function () {
  const stream = this;
  const chunks = [];
  const waiting = [];
  let error = null;
  let ended = false;
  const settle = () => {
    while (waiting.length > 0 && (chunks.length > 0 || ended || error)) {
      const { resolve, reject } = waiting.shift();
      if (chunks.length > 0) resolve({ value: chunks.shift(), done: false });
      else if (error) reject(error);
      else resolve({ value: undefined, done: true });
    }
  };
  stream.on('data', (chunk) => {
    chunks.push(chunk);
    settle();
  });
  stream.once('end', () => {
    ended = true;
    settle();
  });
  stream.once('error', (err) => {
    error = err;
    settle();
  });
  stream.once('close', () => {
    ended = true;
    settle();
  });
  return {
    next() {
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        settle();
      });
    },
    return() {
      stream.destroy();
      return Promise.resolve({ value: undefined, done: true });
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
};

for (const [name, get] of Object.entries({
  readable: (s) => !s.destroyed && !s.endEmitted,
  readableEnded: (s) => s.endEmitted,
  readableFlowing: (s) => s.flowing,
  readableLength: (s) => s.length,
  readableObjectMode: (s) => s.objectMode,
  readableHighWaterMark: (s) => s.highWaterMark,
  readableEncoding: (s) => s.encoding,
  readableAborted: (s) => s.destroyed && !s.endEmitted,
  destroyed: (s) => s.destroyed,
  closed: (s) => s.closed,
  errored: (s) => s.errored,
})) {
  Object.defineProperty(Readable.prototype, name, {
    get() {
      return this._readableState ? get(this._readableState) : undefined;
    },
    set(value) {
      if (name === 'destroyed' && this._readableState) this._readableState.destroyed = value;
    },
    configurable: true,
    enumerable: false,
  });
}

Readable.from = function from(iterable, options) {
  if (typeof iterable === 'string' || iterable instanceof Uint8Array) {
    const stream = new Readable({ objectMode: true, ...options, read() {} });
    stream.push(iterable);
    stream.push(null);
    return stream;
  }
  const iterator = iterable[Symbol.asyncIterator] ? iterable[Symbol.asyncIterator]() : iterable[Symbol.iterator]();
  let reading = false;
  return new Readable({
    objectMode: true,
    ...options,
    read() {
      if (reading) return;
      reading = true;
      const step = () =>
        Promise.resolve(iterator.next()).then(
          ({ value, done }) => {
            reading = false;
            if (done) this.push(null);
            else Promise.resolve(value).then((v) => {
              if (this.push(v)) {
                reading = true;
                step();
              }
            });
          },
          (err) => this.destroy(err),
        );
      step();
    },
  });
};

// ---------------------------------------------------------------------------------------------
// Writable

export function Writable(options) {
  if (!(this instanceof Writable) && !(this instanceof Duplex)) return new Writable(options);
  const objectMode = !!(options?.objectMode || options?.writableObjectMode);
  this._writableState = {
    objectMode,
    highWaterMark: highWaterMark(options, objectMode, 'writableHighWaterMark'),
    queue: [],
    length: 0,
    writing: false,
    corked: 0,
    ending: false,
    ended: false,
    finished: false,
    needDrain: false,
    destroyed: false,
    errored: null,
    errorEmitted: false,
    closed: false,
    emitClose: options?.emitClose !== false,
    autoDestroy: options?.autoDestroy !== false,
    decodeStrings: options?.decodeStrings !== false,
    defaultEncoding: options?.defaultEncoding ?? 'utf8',
    finalCalled: false,
  };
  if (typeof options?.write === 'function') this._write = options.write;
  if (typeof options?.writev === 'function') this._writev = options.writev;
  if (typeof options?.final === 'function') this._final = options.final;
  if (typeof options?.destroy === 'function') this._destroy = options.destroy;
  if (!(this instanceof Duplex)) Stream.call(this, options);
  if (options?.signal) addAbortSignal(options.signal, this);
}
inherit(Writable, Stream);

Writable.prototype._write = function _write(chunk, encoding, cb) {
  if (typeof this._writev === 'function') {
    this._writev([{ chunk, encoding }], cb);
    return;
  }
  throw codedError(Error, 'ERR_METHOD_NOT_IMPLEMENTED', 'The _write() method is not implemented');
};

Writable.prototype.write = function write(chunk, encoding, cb) {
  const state = this._writableState;
  if (typeof encoding === 'function') {
    cb = encoding;
    encoding = null;
  }
  encoding = encoding ?? state.defaultEncoding;
  if (chunk === null) throw codedError(TypeError, 'ERR_STREAM_NULL_VALUES', 'May not write null values to stream');
  if (!state.objectMode) {
    if (typeof chunk === 'string') {
      if (state.decodeStrings) {
        chunk = Buffer.from(chunk, encoding);
        encoding = 'buffer';
      }
    } else if (chunk instanceof Uint8Array) {
      if (!(chunk instanceof Buffer)) chunk = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      encoding = 'buffer';
    } else {
      throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "chunk" argument must be of type string or an instance of Buffer or Uint8Array');
    }
  }
  if (state.ending || state.destroyed) {
    const err = state.destroyed
      ? codedError(Error, 'ERR_STREAM_DESTROYED', 'Cannot call write after a stream was destroyed')
      : codedError(Error, 'ERR_STREAM_WRITE_AFTER_END', 'write after end');
    nextTick(() => {
      if (typeof cb === 'function') cb(err);
      if (!state.destroyed) destroyImpl(this, err);
    });
    return false;
  }
  state.length += state.objectMode ? 1 : chunk.length;
  const ok = state.length < state.highWaterMark;
  if (!ok) state.needDrain = true;
  state.queue.push({ chunk, encoding, cb });
  if (!state.writing && state.corked === 0) writeNext(this);
  return ok;
};

function writeNext(stream) {
  const state = stream._writableState;
  if (state.writing || state.destroyed) return;
  const entry = state.queue.shift();
  if (entry === undefined) {
    if (state.needDrain && !state.ending) {
      state.needDrain = false;
      nextTick(() => stream.emit('drain'));
    }
    if (state.ending) finishMaybe(stream);
    return;
  }
  state.writing = true;
  let sync = true;
  const onwrite = (err) => {
    const done = () => {
      state.writing = false;
      state.length -= state.objectMode ? 1 : entry.chunk.length;
      if (err) {
        if (typeof entry.cb === 'function') entry.cb(err);
        destroyImpl(stream, err);
        return;
      }
      if (typeof entry.cb === 'function') entry.cb(null);
      writeNext(stream);
    };
    if (sync) nextTick(done);
    else done();
  };
  try {
    stream._write(entry.chunk, entry.encoding, onwrite);
  } catch (err) {
    onwrite(err);
  }
  sync = false;
}

function finishMaybe(stream) {
  const state = stream._writableState;
  if (state.finished || state.writing || state.queue.length > 0 || state.destroyed) return;
  const finish = () => {
    if (state.finished || state.destroyed) return;
    state.finished = true;
    state.ended = true;
    stream.emit('finish');
    const r = stream._readableState;
    if (state.autoDestroy && (!r || r.endEmitted)) destroyImpl(stream);
  };
  if (typeof stream._final === 'function' && !state.finalCalled) {
    state.finalCalled = true;
    state.writing = true;
    try {
      stream._final((err) => {
        state.writing = false;
        if (err) destroyImpl(stream, err);
        else nextTick(finish);
      });
    } catch (err) {
      state.writing = false;
      destroyImpl(stream, err);
    }
  } else if (!state.finalCalled) {
    state.finalCalled = true;
    nextTick(finish);
  }
}

Writable.prototype.end = function end(chunk, encoding, cb) {
  const state = this._writableState;
  if (typeof chunk === 'function') {
    cb = chunk;
    chunk = null;
  } else if (typeof encoding === 'function') {
    cb = encoding;
    encoding = null;
  }
  if (chunk !== null && chunk !== undefined) this.write(chunk, encoding);
  if (typeof cb === 'function') {
    if (state.finished) nextTick(cb);
    else this.once('finish', () => cb());
  }
  if (!state.ending) {
    state.ending = true;
    state.corked = 0;
    if (!state.writing) writeNext(this);
  }
  return this;
};

Writable.prototype.cork = function cork() {
  this._writableState.corked++;
};

Writable.prototype.uncork = function uncork() {
  const state = this._writableState;
  if (state.corked > 0 && --state.corked === 0 && !state.writing) writeNext(this);
};

Writable.prototype.setDefaultEncoding = function setDefaultEncoding(encoding) {
  this._writableState.defaultEncoding = encoding;
  return this;
};

Writable.prototype.destroy = function destroy(err, cb) {
  return destroyImpl(this, err, cb);
};

for (const [name, get] of Object.entries({
  writable: (s) => !s.destroyed && !s.ending,
  writableEnded: (s) => s.ending,
  writableFinished: (s) => s.finished,
  writableLength: (s) => s.length,
  writableObjectMode: (s) => s.objectMode,
  writableHighWaterMark: (s) => s.highWaterMark,
  writableNeedDrain: (s) => s.needDrain,
  writableCorked: (s) => s.corked,
})) {
  Object.defineProperty(Writable.prototype, name, {
    get() {
      return this._writableState ? get(this._writableState) : undefined;
    },
    configurable: true,
    enumerable: false,
  });
}
for (const name of ['destroyed', 'closed', 'errored']) {
  Object.defineProperty(Writable.prototype, name, {
    get() {
      return this._writableState?.[name];
    },
    set(value) {
      if (name === 'destroyed' && this._writableState) this._writableState.destroyed = value;
    },
    configurable: true,
    enumerable: false,
  });
}

// ---------------------------------------------------------------------------------------------
// Duplex, Transform, PassThrough

export function Duplex(options) {
  if (!(this instanceof Duplex)) return new Duplex(options);
  Readable.call(this, options);
  Writable.call(this, options);
  this.allowHalfOpen = options?.allowHalfOpen !== false;
  if (!this.allowHalfOpen) this.once('end', () => this.end());
}
inherit(Duplex, Readable);
for (const key of Reflect.ownKeys(Writable.prototype)) {
  if (key === 'constructor' || Object.prototype.hasOwnProperty.call(Duplex.prototype, key)) continue;
  if (key === 'destroyed' || key === 'closed' || key === 'errored') continue;
  Object.defineProperty(Duplex.prototype, key, Object.getOwnPropertyDescriptor(Writable.prototype, key));
}
Duplex.prototype.destroy = Readable.prototype.destroy;

Object.defineProperty(Writable, Symbol.hasInstance, {
  value(object) {
    if (Function.prototype[Symbol.hasInstance].call(this, object)) return true;
    return this === Writable && object?._writableState !== undefined;
  },
});

export function Transform(options) {
  if (!(this instanceof Transform)) return new Transform(options);
  Duplex.call(this, options);
  if (typeof options?.transform === 'function') this._transform = options.transform;
  if (typeof options?.flush === 'function') this._flush = options.flush;
}
inherit(Transform, Duplex);

Transform.prototype._transform = function _transform() {
  throw codedError(Error, 'ERR_METHOD_NOT_IMPLEMENTED', 'The _transform() method is not implemented');
};

Transform.prototype._write = function _write(chunk, encoding, cb) {
  this._transform(chunk, encoding, (err, data) => {
    if (err) {
      cb(err);
      return;
    }
    if (data !== undefined && data !== null) this.push(data);
    cb();
  });
};

Transform.prototype._final = function _final(cb) {
  const done = (err, data) => {
    if (err) {
      cb(err);
      return;
    }
    if (data !== undefined && data !== null) this.push(data);
    this.push(null);
    cb();
  };
  if (typeof this._flush === 'function') this._flush(done);
  else done();
};

Transform.prototype._read = function _read() {};

export function PassThrough(options) {
  if (!(this instanceof PassThrough)) return new PassThrough(options);
  Transform.call(this, options);
}
inherit(PassThrough, Transform);
PassThrough.prototype._transform = function _transform(chunk, encoding, cb) {
  cb(null, chunk);
};

// ---------------------------------------------------------------------------------------------
// Utilities

export function finished(stream, options, callback) {
  if (typeof options === 'function') {
    callback = options;
    options = {};
  }
  let done = false;
  const call = (err) => {
    if (done) return;
    done = true;
    cleanup();
    callback.call(stream, err);
  };
  const readable = options?.readable !== false && stream._readableState !== undefined;
  const writable = options?.writable !== false && stream._writableState !== undefined;
  let ended = !readable || stream._readableState.endEmitted;
  let finishedWriting = !writable || stream._writableState.finished;
  const onEnd = () => {
    ended = true;
    if (finishedWriting) call();
  };
  const onFinish = () => {
    finishedWriting = true;
    if (ended) call();
  };
  const onError = (err) => call(err);
  const onClose = () => {
    if (ended && finishedWriting) call();
    else call(codedError(Error, 'ERR_STREAM_PREMATURE_CLOSE', 'Premature close'));
  };
  stream.on('end', onEnd);
  stream.on('finish', onFinish);
  if (options?.error !== false) stream.on('error', onError);
  stream.on('close', onClose);
  function cleanup() {
    stream.removeListener('end', onEnd);
    stream.removeListener('finish', onFinish);
    stream.removeListener('error', onError);
    stream.removeListener('close', onClose);
  }
  if (ended && finishedWriting) nextTick(call);
  return cleanup;
}

export function pipeline(...streams) {
  const callback = typeof streams[streams.length - 1] === 'function' ? streams.pop() : null;
  if (streams.length === 1 && Array.isArray(streams[0])) streams = streams[0];
  if (streams.length < 2) throw codedError(TypeError, 'ERR_MISSING_ARGS', 'The "streams" argument must be specified');
  let error = null;
  let done = false;
  const finish = (err) => {
    if (done) return;
    if (err) {
      error = err;
      for (const stream of streams) if (!stream.destroyed) stream.destroy?.(err);
    }
    done = true;
    if (callback) callback(error);
  };
  for (let i = 0; i < streams.length - 1; i++) {
    streams[i].pipe(streams[i + 1]);
    streams[i].on('error', finish);
  }
  const last = streams[streams.length - 1];
  finished(last, (err) => finish(err));
  return last;
}

export function addAbortSignal(signal, stream) {
  const onAbort = () => {
    const error = new Error('The operation was aborted');
    error.name = 'AbortError';
    error.code = 'ABORT_ERR';
    error.cause = signal.reason;
    stream.destroy(error);
  };
  if (signal.aborted) nextTick(onAbort);
  else signal.addEventListener('abort', onAbort, { once: true });
  return stream;
}

export const isReadable = (stream) => !!stream?.readable && !stream.destroyed;
export const isWritable = (stream) => !!stream?.writable && !stream.destroyed;
export const isErrored = (stream) => !!stream?.errored;
export const isDisturbed = (stream) => !!(stream?._readableState?.endEmitted || stream?._readableState?.flowing !== null);
export const getDefaultHighWaterMark = (objectMode) => (objectMode ? DEFAULT_OBJECT_HWM : DEFAULT_HWM);
export const setDefaultHighWaterMark = () => {};

export const promises = {
  pipeline: (...streams) =>
    new Promise((resolve, reject) => pipeline(...streams, (err) => (err ? reject(err) : resolve()))),
  finished: (stream, options) =>
    new Promise((resolve, reject) => finished(stream, options ?? {}, (err) => (err ? reject(err) : resolve()))),
};

Object.assign(Stream, {
  Stream,
  Readable,
  Writable,
  Duplex,
  Transform,
  PassThrough,
  finished,
  pipeline,
  addAbortSignal,
  isReadable,
  isWritable,
  isErrored,
  isDisturbed,
  getDefaultHighWaterMark,
  setDefaultHighWaterMark,
  promises,
});

export default Stream;
