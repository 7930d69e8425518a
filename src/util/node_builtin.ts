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

/**
 * Writes an output file atomically: the bytes go to a temporary name in the same folder, then a rename puts
 * them in place, so no reader ever sees a partial file and a failed write leaves nothing behind. A failure
 * (no such folder, no permission, a full disk) is a WRITE_FAILED error naming the file.
 */
export function writeFileAtomically(path: string, data: Uint8Array | string): void {
  const { writeFileSync, renameSync, unlinkSync } = requireBuiltin('node:fs', 'writing a file');
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (err) {
    try { unlinkSync(tmp); } catch { /* never written, or already gone */ }
    const reason = (err as { code?: string }).code ?? (err as Error).message;
    throw new FacenetError('WRITE_FAILED', `${path}: cannot write it (${reason}); check that its folder exists and is writable, and that the disk has room`);
  }
}
