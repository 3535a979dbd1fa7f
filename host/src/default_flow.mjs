// The flow `flowhost exec` runs when it is given no bundle. It checks each event's name the way
// the walkerOS collector does ("entity action"), fills in the defaults a collector adds, and
// returns the enriched event, so a first run shows what a flow receives and returns.

let count = 0;

export async function push(event) {
  const name = typeof event?.name === 'string' ? event.name : '';
  const [entity, action, ...rest] = name.split(' ');
  if (!entity || !action || rest.length > 0) {
    throw new TypeError(`Event name is invalid: "${name}" (expected "entity action")`);
  }
  count += 1;
  return {
    ...event,
    entity,
    action,
    data: event.data ?? {},
    timestamp: event.timestamp ?? Date.now(),
    source: { type: 'flowhost', count },
  };
}
