// A destination that needs a Node module no sandbox offers: bundling it must fail clearly.
import { spawn } from 'node:child_process';

export default {
  type: 'spawn',
  config: {},
  push(event) {
    spawn('logger', [event.name]);
  },
};
