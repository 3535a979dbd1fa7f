// Bench flow that leaves things behind on every push, as careless destinations do: a promise
// that never settles, a timer it never clears, a timeout race whose loser stays armed, an
// interval cleared only by a later event and an unreferenced timer. benches/collector.rs pushes
// 100,000 events through it and prints the instance's memory: it must level off once the
// timers fire, because nothing the guest keeps refers to the garbage.

let interval = null;

export async function push(event) {
  // Never settles; nothing refers to it once push returns.
  new Promise(() => {});
  // Fires 20 ms later and does nothing.
  setTimeout(() => {}, 20);
  // The walkerOS timeout race without clearTimeout: the rejecting timer stays armed for 50 ms.
  const work = Promise.resolve(event.name);
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('late')), 50));
  timeout.catch(() => {});
  const name = await Promise.race([work, timeout]);
  // An interval each event replaces, and an unreferenced timer.
  if (interval !== null) clearInterval(interval);
  interval = setInterval(() => {}, 1000);
  setTimeout(() => {}, 10).unref();
  return name;
}
