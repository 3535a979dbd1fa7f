// Test flow: each event waits on a timer, then its destination posts it to a sink and reports
// what the sink answered. The event's `delay` (ms) lets tests reorder completions on purpose.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let pushed = 0;

export async function push(event) {
  pushed += 1;
  await sleep(event.delay ?? 5);
  const response = await flowhost.request({
    method: 'POST',
    url: `${process.env.SINK_URL}/collect`,
    headers: { 'content-type': 'application/json', 'x-flow': 'timer-http' },
    body: JSON.stringify({ name: event.name, seq: event.seq }),
  });
  return { name: event.name, seq: event.seq, status: response.status, sink: JSON.parse(response.body) };
}

export function stats() {
  return { pushed };
}
