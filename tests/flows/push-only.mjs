// Test flow for `flowhost run` without the intake contract: no `ingest` and no `sources`
// export, so the host serves the default source at /collect and calls `push` per event.

export async function push(event) {
  if (event.name === 'fail it') throw new Error('Destination refused');
  await flowhost.request({
    method: 'POST',
    url: `${process.env.SINK_URL}/collect`,
    headers: { 'content-type': 'application/json', 'x-flow': 'push-only' },
    body: JSON.stringify({ event }),
  });
  return { ok: true, id: `push-${event.name}` };
}
