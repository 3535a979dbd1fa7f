// Test flow that takes LOAD_DELAY_MS (default a minute) to load, so tests can see the runner
// before its flow is ready.

await new Promise((resolve) => setTimeout(resolve, Number(process.env.LOAD_DELAY_MS ?? 60000)));

export function push() {
  return { ok: true };
}
