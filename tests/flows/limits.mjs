// Test flow for the sandbox's limits: some event names make the handler misbehave on purpose.
// `count` starts at 0 in every new instance, so results show when an instance was replaced.

let count = 0;
const hoard = [];

export async function push(event) {
  count += 1;
  switch (event.name) {
    case 'loop forever':
      for (;;) {}
    case 'hog memory':
      for (;;) hoard.push(new Array(100000).fill(count));
    case 'throw error':
      throw new TypeError('the flow rejected this event on purpose');
    case 'unserialisable result':
      return { count: 1n };
    case 'cyclic result': {
      const cycle = { error: new TypeError('kept'), shared: {} };
      cycle.self = cycle;
      cycle.again = cycle.shared;
      return cycle;
    }
    default:
      return { name: event.name, count };
  }
}
