// node:path/posix for flowhost guests.
import path from '../path.js';

export const { sep, delimiter, normalize, isAbsolute, join, resolve, relative, dirname, basename, extname, parse, format } = path;
export default path;
