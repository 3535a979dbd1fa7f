// node:stream/promises for flowhost guests.
import { promises } from '../stream.js';

export const pipeline = promises.pipeline;
export const finished = promises.finished;

export default { pipeline, finished };
