/**
 * Node's built-in modules, reached without a static import (process.getBuiltinModule, Node >= 20.16).
 * Modules that touch files or threads in a few functions thus still load in a browser, where those
 * functions say clearly that they need Node, and the rest of the module works.
 */
import { FacenetError } from '../errors.js';

interface Builtins {
  'node:fs': typeof import('node:fs');
  'node:os': typeof import('node:os');
  'node:worker_threads': typeof import('node:worker_threads');
}

/** The module, or null outside Node. */
export function builtin<K extends keyof Builtins>(name: K): Builtins[K] | null {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  return (proc?.getBuiltinModule?.(name) as Builtins[K] | undefined) ?? null;
}

/** The module, or a NODE_ONLY error naming what needed it. */
export function requireBuiltin<K extends keyof Builtins>(name: K, what: string): Builtins[K] {
  const mod = builtin(name);
  if (!mod) throw new FacenetError('NODE_ONLY', `${what} needs Node's ${name}; in a browser, pass bytes or pixels instead of paths`);
  return mod;
}
