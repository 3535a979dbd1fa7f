// node:http for flowhost guests: the client (request, get, ClientRequest, IncomingMessage) on the
// host's outbound requests; see internal/http-client.js. A flow cannot listen: flowhost owns the
// server, so createServer throws.
import * as client from './internal/http-client.js';

export const { STATUS_CODES, METHODS, Agent, ClientRequest, IncomingMessage, validateHeaderName, validateHeaderValue, createServer } = client;
export const globalAgent = new Agent({ defaultPort: 80, protocol: 'http:' });
export const maxHeaderSize = 16384;

export function request(input, options, callback) {
  return client.request('http:', input, options, callback);
}

export function get(input, options, callback) {
  return client.get('http:', input, options, callback);
}

export function setMaxIdleHTTPParsers() {}

export default {
  STATUS_CODES,
  METHODS,
  Agent,
  ClientRequest,
  IncomingMessage,
  validateHeaderName,
  validateHeaderValue,
  createServer,
  globalAgent,
  maxHeaderSize,
  request,
  get,
  setMaxIdleHTTPParsers,
};
