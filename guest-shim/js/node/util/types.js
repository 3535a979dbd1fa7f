// node:util/types for flowhost guests: type checks by internal tag, as Node makes them.

const tag = (value) => Object.prototype.toString.call(value).slice(8, -1);
const objectTag = (name) => (value) => value !== null && typeof value === 'object' && tag(value) === name;

export const isDate = objectTag('Date');
export const isRegExp = objectTag('RegExp');
export const isMap = objectTag('Map');
export const isSet = objectTag('Set');
export const isWeakMap = objectTag('WeakMap');
export const isWeakSet = objectTag('WeakSet');
export const isPromise = objectTag('Promise');
export const isDataView = objectTag('DataView');
export const isMapIterator = objectTag('Map Iterator');
export const isSetIterator = objectTag('Set Iterator');
export const isGeneratorObject = objectTag('Generator');
export const isModuleNamespaceObject = objectTag('Module');
export const isArrayBuffer = objectTag('ArrayBuffer');
export const isSharedArrayBuffer = objectTag('SharedArrayBuffer');
export const isAnyArrayBuffer = (value) => isArrayBuffer(value) || isSharedArrayBuffer(value);
export const isArrayBufferView = (value) => ArrayBuffer.isView(value);
export const isTypedArray = (value) => ArrayBuffer.isView(value) && !isDataView(value);
export const isNativeError = (value) => value instanceof Error || tag(value) === 'Error';
export const isBooleanObject = objectTag('Boolean');
export const isNumberObject = objectTag('Number');
export const isStringObject = objectTag('String');
export const isSymbolObject = objectTag('Symbol');
export const isBigIntObject = objectTag('BigInt');
export const isBoxedPrimitive = (value) =>
  isBooleanObject(value) || isNumberObject(value) || isStringObject(value) || isSymbolObject(value) || isBigIntObject(value);
export const isAsyncFunction = (value) => typeof value === 'function' && (tag(value) === 'AsyncFunction' || tag(value) === 'AsyncGeneratorFunction');
export const isGeneratorFunction = (value) => typeof value === 'function' && (tag(value) === 'GeneratorFunction' || tag(value) === 'AsyncGeneratorFunction');
export const isProxy = () => false;
export const isExternal = () => false;
export const isKeyObject = () => false;
export const isCryptoKey = (value) => typeof CryptoKey === 'function' && value instanceof CryptoKey;
export const isArgumentsObject = objectTag('Arguments');

export const isUint8Array = (value) => ArrayBuffer.isView(value) && tag(value) === 'Uint8Array';
export const isUint8ClampedArray = (value) => ArrayBuffer.isView(value) && tag(value) === 'Uint8ClampedArray';
export const isUint16Array = (value) => ArrayBuffer.isView(value) && tag(value) === 'Uint16Array';
export const isUint32Array = (value) => ArrayBuffer.isView(value) && tag(value) === 'Uint32Array';
export const isInt8Array = (value) => ArrayBuffer.isView(value) && tag(value) === 'Int8Array';
export const isInt16Array = (value) => ArrayBuffer.isView(value) && tag(value) === 'Int16Array';
export const isInt32Array = (value) => ArrayBuffer.isView(value) && tag(value) === 'Int32Array';
export const isFloat32Array = (value) => ArrayBuffer.isView(value) && tag(value) === 'Float32Array';
export const isFloat64Array = (value) => ArrayBuffer.isView(value) && tag(value) === 'Float64Array';
export const isBigInt64Array = (value) => ArrayBuffer.isView(value) && tag(value) === 'BigInt64Array';
export const isBigUint64Array = (value) => ArrayBuffer.isView(value) && tag(value) === 'BigUint64Array';

export default {
  isDate, isRegExp, isMap, isSet, isWeakMap, isWeakSet, isPromise, isDataView, isMapIterator, isSetIterator,
  isGeneratorObject, isModuleNamespaceObject, isArrayBuffer, isSharedArrayBuffer, isAnyArrayBuffer, isArrayBufferView,
  isTypedArray, isNativeError, isBooleanObject, isNumberObject, isStringObject, isSymbolObject, isBigIntObject,
  isBoxedPrimitive, isAsyncFunction, isGeneratorFunction, isProxy, isExternal, isKeyObject, isCryptoKey,
  isArgumentsObject, isUint8Array, isUint8ClampedArray, isUint16Array, isUint32Array, isInt8Array, isInt16Array,
  isInt32Array, isFloat32Array, isFloat64Array, isBigInt64Array, isBigUint64Array,
};
