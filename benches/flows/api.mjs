// Stand-in for the "api" bench flow (collect-api.json) until walkerOS collector flows run in
// the guest: the same HTTP source, the same mapping written by hand (page view → page_view,
// order complete → purchase with a consent-gated email and an items loop over nested), and one
// POST per event to SINK_URL, as the api destination sends it.

const sinkUrl = process.env.SINK_URL ?? 'http://127.0.0.1:9901/sink';

export function sources() {
  return { http: { config: { settings: { path: '/collect', cors: true } } } };
}

function map(event) {
  if (event.name === 'page view') {
    return {
      name: 'page_view',
      data: {
        event_name: 'page_view',
        page_title: event.data?.title,
        page_location: event.data?.url,
        page_referrer: event.data?.referrer,
        session_id: event.user?.session,
        client_id: event.user?.device,
        language: event.globals?.language,
        ts: event.timestamp,
      },
    };
  }
  if (event.name === 'order complete') {
    return {
      name: 'purchase',
      data: {
        event_name: 'purchase',
        transaction_id: event.data?.id,
        value: event.data?.total,
        currency: event.data?.currency ?? 'EUR',
        tax: event.data?.tax,
        shipping: event.data?.shipping,
        email: event.consent?.marketing ? event.user?.email : undefined,
        client_id: event.user?.device,
        items: (event.nested ?? []).map((n) => ({
          item_id: n.data?.id,
          item_name: n.data?.name,
          price: n.data?.price,
          quantity: n.data?.quantity ?? 1,
        })),
        ts: event.timestamp,
      },
    };
  }
  return { name: event.name, data: event };
}

export async function ingest({ events }) {
  const results = [];
  for (const event of events) {
    const [entity, action] = String(event.name ?? '').split(' ');
    if (!entity || !action) {
      results.push({ ok: false, invalid: true, error: 'Event name is invalid' });
      continue;
    }
    const { data } = map(event);
    await flowhost.request({
      method: 'POST',
      url: sinkUrl,
      headers: { 'content-type': 'application/json; charset=utf-8', 'x-bench': 'flowhost' },
      body: JSON.stringify(data),
      timeoutMs: 5000,
    });
    results.push({ ok: true, id: event.id });
  }
  return results;
}
