// A flow whose module does not parse: the missing brace is deliberate.
export async function push(event) {
  return { name: event.name ;
}
