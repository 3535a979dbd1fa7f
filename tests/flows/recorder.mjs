// Test flow for `flowhost run`: implements the intake contract (`ingest`) the way a walkerOS
// collector would answer it, and reports every accepted event, with its request scope, to the
// sink at SINK_URL so tests can assert delivery.
//
// Event names steer it: "fail it" is refused by a destination (ok: false), "throw it" makes
// ingest reject, "hold <key>" waits until an event "release <key>" arrives, "error it" is
// refused as invalid input. SOURCES_JSON, when set, is what `sources()` returns.

const held = new Map();
let accepted = 0;

export function sources() {
  if (process.env.SOURCES_JSON) return JSON.parse(process.env.SOURCES_JSON);
  return { http: { config: { settings: { paths: ['/collect'], cors: true } } } };
}

function check(event) {
  const name = event?.name;
  if (typeof name !== 'string') return name === undefined ? 'Event name is required' : 'Event name is invalid';
  if (!name) return 'Event name is required';
  const [entity, action] = name.split(' ');
  if (!entity || !action) return 'Event name is invalid';
  if (name === 'error it') return 'Event refused by the flow';
  return null;
}

async function report(source, event, scope) {
  const response = await flowhost.request({
    method: 'POST',
    url: `${process.env.SINK_URL}/collect`,
    headers: { 'content-type': 'application/json', 'x-flow': 'recorder' },
    body: JSON.stringify({ source, event, scope }),
  });
  if (response.status !== 200) throw new Error(`sink answered ${response.status}`);
}

export async function ingest({ source, events, batch, bodyFromEvents, scope }) {
  // The host does not send a body that is just the events again.
  if (bodyFromEvents) scope = { ...scope, body: batch ? events : events[0] };
  const results = [];
  for (const event of events) {
    const problem = check(event);
    if (problem) {
      results.push({ ok: false, invalid: true, error: problem });
      continue;
    }
    const [verb, key] = event.name.split(' ');
    if (event.name === 'throw it') throw new Error('the collector threw');
    if (event.name === 'fail it') {
      results.push({ ok: false, error: 'Destination refused' });
      continue;
    }
    if (verb === 'hold') {
      await new Promise((resolve) => held.set(key, resolve));
    }
    if (verb === 'release' && held.has(key)) {
      held.get(key)();
      held.delete(key);
    }
    accepted += 1;
    const id = event.id ?? `id-${accepted}`;
    await report(source, event, scope);
    results.push({ ok: true, id });
  }
  return results;
}
