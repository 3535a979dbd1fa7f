// node:assert for flowhost guests: ok/equal/deepEqual and their strict and negated forms,
// throws/rejects, match and fail, with AssertionError.
//
// CommonJS on purpose, as events.js: Node's `require('assert')` is itself the assert function.
'use strict';

const { isDeepEqual } = require('./internal/compare.js');
const { inspect } = require('./internal/inspect.js');

class AssertionError extends Error {
  constructor(options) {
    const { message, actual, expected, operator } = options;
    super(message ?? `${inspect(actual)} ${operator} ${inspect(expected)}`);
    this.name = 'AssertionError';
    this.code = 'ERR_ASSERTION';
    this.actual = actual;
    this.expected = expected;
    this.operator = operator;
    this.generatedMessage = message === undefined;
  }
}

function fail(actual, expected, message, operator) {
  if (message instanceof Error) throw message;
  throw new AssertionError({ message, actual, expected, operator });
}

function ok(value, message) {
  if (!value) {
    fail(value, true, message ?? (arguments.length === 0 ? 'No value argument passed to `assert.ok()`' : 'The expression evaluated to a falsy value'), '==');
  }
}

function assert(value, message) {
  ok.apply(null, arguments.length === 0 ? [] : [value, message]);
}

function matchesError(error, expected) {
  if (expected === undefined) return true;
  if (typeof expected === 'function') {
    if (expected.prototype !== undefined && error instanceof expected) return true;
    if (Error.isPrototypeOf(expected) || expected === Error) return false;
    return expected.call({}, error) === true;
  }
  if (expected instanceof RegExp) return expected.test(String(error));
  if (typeof expected === 'object' && expected !== null) {
    return Object.keys(expected).every((key) =>
      expected[key] instanceof RegExp && typeof error?.[key] === 'string' ? expected[key].test(error[key]) : isDeepEqual(error?.[key], expected[key], true));
  }
  return false;
}

function throws(fn, expected, message) {
  if (typeof expected === 'string') {
    message = expected;
    expected = undefined;
  }
  try {
    fn();
  } catch (error) {
    if (!matchesError(error, expected)) throw error;
    return;
  }
  fail(undefined, expected, message ?? 'Missing expected exception.', 'throws');
}

async function rejects(promiseOrFn, expected, message) {
  if (typeof expected === 'string') {
    message = expected;
    expected = undefined;
  }
  try {
    await (typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn);
  } catch (error) {
    if (!matchesError(error, expected)) throw error;
    return;
  }
  fail(undefined, expected, message ?? 'Missing expected rejection.', 'rejects');
}

function doesNotThrow(fn, expected, message) {
  try {
    fn();
  } catch (error) {
    fail(error, expected, typeof expected === 'string' ? expected : message ?? `Got unwanted exception.\nActual message: "${error?.message}"`, 'doesNotThrow');
  }
}

async function doesNotReject(promiseOrFn, expected, message) {
  try {
    await (typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn);
  } catch (error) {
    fail(error, expected, typeof expected === 'string' ? expected : message ?? `Got unwanted rejection.\nActual message: "${error?.message}"`, 'doesNotReject');
  }
}

Object.assign(assert, {
  AssertionError,
  ok,
  fail(message = 'Failed') {
    if (message instanceof Error) throw message;
    throw new AssertionError({ message, operator: 'fail' });
  },
  equal: (actual, expected, message) => {
    if (!(actual == expected || (actual !== actual && expected !== expected))) fail(actual, expected, message, '==');
  },
  notEqual: (actual, expected, message) => {
    if (actual == expected || (actual !== actual && expected !== expected)) fail(actual, expected, message, '!=');
  },
  strictEqual: (actual, expected, message) => {
    if (!Object.is(actual, expected)) fail(actual, expected, message, 'strictEqual');
  },
  notStrictEqual: (actual, expected, message) => {
    if (Object.is(actual, expected)) fail(actual, expected, message, 'notStrictEqual');
  },
  deepEqual: (actual, expected, message) => {
    if (!isDeepEqual(actual, expected, false)) fail(actual, expected, message, 'deepEqual');
  },
  notDeepEqual: (actual, expected, message) => {
    if (isDeepEqual(actual, expected, false)) fail(actual, expected, message, 'notDeepEqual');
  },
  deepStrictEqual: (actual, expected, message) => {
    if (!isDeepEqual(actual, expected, true)) fail(actual, expected, message, 'deepStrictEqual');
  },
  notDeepStrictEqual: (actual, expected, message) => {
    if (isDeepEqual(actual, expected, true)) fail(actual, expected, message, 'notDeepStrictEqual');
  },
  match: (string, regexp, message) => {
    if (!regexp.test(string)) fail(string, regexp, message ?? `The input did not match the regular expression ${regexp}. Input:\n\n${inspect(string)}\n`, 'match');
  },
  doesNotMatch: (string, regexp, message) => {
    if (regexp.test(string)) fail(string, regexp, message ?? `The input was expected to not match the regular expression ${regexp}. Input:\n\n${inspect(string)}\n`, 'doesNotMatch');
  },
  throws,
  rejects,
  doesNotThrow,
  doesNotReject,
  ifError: (value) => {
    if (value !== null && value !== undefined) throw value instanceof Error ? value : new AssertionError({ message: `ifError got unwanted exception: ${inspect(value)}`, actual: value, operator: 'ifError' });
  },
});

// assert.strict: the same functions with the loose ones replaced by their strict forms.
function strict(value, message) {
  ok.apply(null, arguments.length === 0 ? [] : [value, message]);
}
Object.assign(strict, assert, {
  equal: assert.strictEqual,
  notEqual: assert.notStrictEqual,
  deepEqual: assert.deepStrictEqual,
  notDeepEqual: assert.notDeepStrictEqual,
});
strict.strict = strict;
assert.strict = strict;

module.exports = assert;
