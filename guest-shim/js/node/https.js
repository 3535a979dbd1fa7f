// node:https for flowhost guests: node:http's client for https: URLs. TLS is the host's: the
// options `ca`, `cert`, `key` and `rejectUnauthorized` are accepted and have no effect.
import * as client from './internal/http-client.js';

export const { Agent } = client;
export const globalAgent = new Agent({ defaultPort: 443, protocol: 'https:' });
export const createServer = client.createServer;

export function request(input, options, callback) {
  return client.request('https:', input, options, callback);
}

export function get(input, options, callback) {
  return client.get('https:', input, options, callback);
}

export default { Agent, globalAgent, createServer, request, get };
