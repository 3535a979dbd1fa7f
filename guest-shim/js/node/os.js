// node:os for flowhost guests. A flow runs in a sandbox without a machine of its own; these
// answer with fixed, neutral values so that packages that ask (user agents, temp paths) work.

export const EOL = '\n';
export const devNull = '/dev/null';
export const constants = { signals: {}, errno: {}, priority: {} };

export const arch = () => 'wasm32';
export const machine = () => 'wasm32';
export const platform = () => 'linux';
export const type = () => 'Linux';
export const release = () => '';
export const version = () => '';
export const hostname = () => 'flowhost';
export const homedir = () => '/';
export const tmpdir = () => '/tmp';
export const endianness = () => 'LE';
export const uptime = () => 0;
export const loadavg = () => [0, 0, 0];
export const totalmem = () => 0;
export const freemem = () => 0;
export const availableParallelism = () => 1;
export const cpus = () => [];
export const networkInterfaces = () => ({});
export const userInfo = () => ({ uid: -1, gid: -1, username: 'flowhost', homedir: '/', shell: null });
export const getPriority = () => 0;
export const setPriority = () => {};

export default {
  EOL, devNull, constants, arch, machine, platform, type, release, version, hostname, homedir, tmpdir, endianness,
  uptime, loadavg, totalmem, freemem, availableParallelism, cpus, networkInterfaces, userInfo, getPriority, setPriority,
};
