// Node-style errors with `code`, shared by the guest's Node modules.

export function describeReceived(value) {
  if (value === null) return 'Received null';
  if (value === undefined) return 'Received undefined';
  if (typeof value === 'function') return `Received function ${value.name || '(anonymous)'}`;
  if (typeof value === 'object') {
    const name = value.constructor?.name;
    return name ? `Received an instance of ${name}` : 'Received an instance of Object';
  }
  let shown = typeof value === 'string' ? `'${value.length > 25 ? value.slice(0, 25) + '...' : value}'` : String(value);
  if (typeof value === 'bigint') shown += 'n';
  return `Received type ${typeof value} (${shown})`;
}

export function codedError(Base, code, message) {
  const error = new Base(message);
  Object.defineProperty(error, 'code', { value: code, writable: true, configurable: true, enumerable: true });
  return error;
}

export function invalidArgType(name, expected, value) {
  const what = name.includes(' ') ? name : `"${name}" argument`;
  return codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `The ${what} must be ${expected}. ${describeReceived(value)}`);
}

export function outOfRange(name, range, value) {
  // Node groups the digits of big integers: 4_294_967_296.
  const group = (digits) => digits.replace(/\B(?=(\d{3})+(?!\d))/g, '_');
  let received = String(value);
  if (typeof value === 'bigint') received = (value > 2n ** 32n || value < -(2n ** 32n) ? group(received) : received) + 'n';
  else if (Number.isInteger(value) && Math.abs(value) > 2 ** 32) received = group(received);
  return codedError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be ${range}. Received ${received}`);
}

export function notAvailable(what) {
  return codedError(Error, 'ERR_FLOWHOST_UNSUPPORTED', `${what} is not available in flowhost`);
}
