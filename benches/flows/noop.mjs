// Stand-in for the "noop" bench flow (collect-noop.json) until walkerOS collector flows run in
// the guest: an HTTP source at /collect with CORS, respond-first, and per event what a
// collector does before it reaches a no-op destination: check the name, fill in the defaults,
// count. It measures flowhost's HTTP path and the guest call, not the collector.

let delivered = 0;
let count = 0;
const trace = Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join('');

export function sources() {
  return { http: { config: { settings: { path: '/collect', cors: true } } } };
}

function enrich(event) {
  const name = event.name;
  if (typeof name !== 'string' || !name) return { error: 'Event name is required' };
  const [entity, action] = name.split(' ');
  if (!entity || !action) return { error: 'Event name is invalid' };
  count += 1;
  return {
    event: {
      data: {}, context: {}, globals: {}, custom: {}, user: {}, nested: [], consent: {},
      id: Math.random().toString(16).slice(2, 18), trigger: '', entity, action,
      timestamp: Date.now(), timing: 0,
      ...event,
      source: { type: 'collector', schema: '4', ...(event.source ?? {}), count, trace },
    },
  };
}

export function ingest({ events }) {
  return events.map((input) => {
    const { event, error } = enrich(input);
    if (error) return { ok: false, invalid: true, error };
    delivered += 1;
    if (delivered % 10000 === 0) console.error(`[noop] delivered ${delivered}`);
    return { ok: true, id: event.id };
  });
}
