/**
 * A safe, whitelisting reader for Python pickles (protocols 2-4), enough for PyTorch state dicts.
 * Nothing is executed: GLOBAL resolves only names in the caller's whitelist, REDUCE calls only the
 * JavaScript function registered for that name, and any other opcode (INST, OBJ, NEWOBJ, EXT...) or
 * unknown global is an error naming it. Values: str/int/float/bool/None map to JS; tuples and lists to
 * arrays; dicts to Map; LONG1 integers beyond 2^53 to BigInt.
 */
import { WeightFileError } from '../../errors.js';

/** A whitelisted global: `call` is invoked by REDUCE; `build` handles BUILD (setstate) on its results. */
export interface AllowedGlobal {
  call?: (...args: unknown[]) => unknown;
}

export interface PickleOptions {
  /** "module name" -> implementation, e.g. "collections OrderedDict". */
  globals: Record<string, AllowedGlobal>;
  /** Resolves BINPERSID ids (PyTorch storages). */
  persistentLoad?: (pid: unknown) => unknown;
  /** BUILD on an object: return true when handled, false to reject. */
  build?: (obj: unknown, state: unknown) => boolean;
}

export class GlobalRef {
  constructor(readonly name: string, readonly impl: AllowedGlobal) {}
}

const MARK = Symbol('mark');

export class PickleReader {
  private pos: number;
  private readonly stack: unknown[] = [];
  private readonly memo = new Map<number, unknown>();

  constructor(private readonly buf: Buffer, private readonly file: string, private readonly options: PickleOptions, start = 0) {
    this.pos = start;
  }

  /** Offset just after the STOP opcode of the last load(): the next pickle in a stream starts here. */
  get offset(): number {
    return this.pos;
  }

  private fail(problem: string, code = 'BAD_PICKLE'): never {
    throw new WeightFileError(this.file, `pickle at byte ${this.pos}: ${problem}`, code);
  }

  private need(n: number): number {
    if (this.pos + n > this.buf.length) this.fail(`truncated (needs ${n} more bytes)`);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  private u8(): number { return this.buf.readUInt8(this.need(1)); }
  private u16(): number { return this.buf.readUInt16LE(this.need(2)); }
  private u32(): number { return this.buf.readUInt32LE(this.need(4)); }
  private i32(): number { return this.buf.readInt32LE(this.need(4)); }
  private u64(): number {
    const v = this.buf.readBigUInt64LE(this.need(8));
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail('length too large');
    return Number(v);
  }
  private bytes(n: number): Buffer { const at = this.need(n); return this.buf.subarray(at, at + n); }
  private str(n: number): string { return this.bytes(n).toString('utf8'); }
  private line(): string {
    const end = this.buf.indexOf(0x0a, this.pos);
    if (end < 0) this.fail('truncated text line');
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }

  private pop(): unknown {
    if (this.stack.length === 0) this.fail('stack underflow');
    return this.stack.pop();
  }
  private top(): unknown {
    if (this.stack.length === 0) this.fail('stack underflow');
    return this.stack[this.stack.length - 1];
  }
  private popMark(): unknown[] {
    const i = this.stack.lastIndexOf(MARK);
    if (i < 0) this.fail('MARK not found');
    const items = this.stack.splice(i);
    items.shift();
    return items;
  }

  private global(name: string): GlobalRef {
    const impl = this.options.globals[name];
    if (!impl) this.fail(`forbidden global '${name.replace(' ', '.')}': only the names a PyTorch state_dict needs are allowed, nothing is ever executed`, 'FORBIDDEN_PICKLE');
    return new GlobalRef(name, impl);
  }

  private setItems(target: unknown, items: unknown[]): void {
    if (!(target instanceof Map)) this.fail('SETITEM(S) on a non-dict');
    for (let i = 0; i + 1 < items.length; i += 2) target.set(items[i], items[i + 1]);
  }

  /** Reads one pickle, up to and including its STOP opcode. */
  load(): unknown {
    for (;;) {
      const op = this.u8();
      switch (op) {
        case 0x80: this.u8(); break; // PROTO
        case 0x95: this.u64(); break; // FRAME: the frame length is only a hint
        case 0x2e: return this.pop(); // STOP
        case 0x28: this.stack.push(MARK); break;
        case 0x7d: this.stack.push(new Map()); break; // EMPTY_DICT
        case 0x5d: case 0x29: this.stack.push([]); break; // EMPTY_LIST, EMPTY_TUPLE
        case 0x74: case 0x6c: this.stack.push(this.popMark()); break; // TUPLE, LIST
        case 0x64: { const m = new Map(); this.setItems(m, this.popMark()); this.stack.push(m); break; } // DICT
        case 0x85: this.stack.push([this.pop()]); break; // TUPLE1
        case 0x86: { const b = this.pop(), a = this.pop(); this.stack.push([a, b]); break; }
        case 0x87: { const c = this.pop(), b = this.pop(), a = this.pop(); this.stack.push([a, b, c]); break; }
        case 0x61: { const v = this.pop(); const l = this.top(); if (!Array.isArray(l)) this.fail('APPEND on a non-list'); l.push(v); break; }
        case 0x65: { const items = this.popMark(); const l = this.top(); if (!Array.isArray(l)) this.fail('APPENDS on a non-list'); l.push(...items); break; }
        case 0x73: { const v = this.pop(), k = this.pop(); this.setItems(this.top(), [k, v]); break; } // SETITEM
        case 0x75: { const items = this.popMark(); this.setItems(this.top(), items); break; } // SETITEMS
        case 0x4a: this.stack.push(this.i32()); break; // BININT
        case 0x4b: this.stack.push(this.u8()); break; // BININT1
        case 0x4d: this.stack.push(this.u16()); break; // BININT2
        case 0x8a: this.stack.push(this.long(this.u8())); break; // LONG1
        case 0x8b: this.stack.push(this.long(this.u32())); break; // LONG4
        case 0x47: this.stack.push(this.buf.readDoubleBE(this.need(8))); break; // BINFLOAT
        case 0x4e: this.stack.push(null); break;
        case 0x88: this.stack.push(true); break;
        case 0x89: this.stack.push(false); break;
        case 0x58: this.stack.push(this.str(this.u32())); break; // BINUNICODE
        case 0x8c: this.stack.push(this.str(this.u8())); break; // SHORT_BINUNICODE
        case 0x8d: this.stack.push(this.str(this.u64())); break; // BINUNICODE8
        case 0x55: this.stack.push(this.bytes(this.u8()).toString('latin1')); break; // SHORT_BINSTRING
        case 0x54: this.stack.push(this.bytes(this.u32()).toString('latin1')); break; // BINSTRING
        case 0x43: this.stack.push(this.bytes(this.u8())); break; // SHORT_BINBYTES
        case 0x42: this.stack.push(this.bytes(this.u32())); break; // BINBYTES
        case 0x71: this.memo.set(this.u8(), this.top()); break; // BINPUT
        case 0x72: this.memo.set(this.u32(), this.top()); break; // LONG_BINPUT
        case 0x94: this.memo.set(this.memo.size, this.top()); break; // MEMOIZE
        case 0x68: this.stack.push(this.get(this.u8())); break; // BINGET
        case 0x6a: this.stack.push(this.get(this.u32())); break; // LONG_BINGET
        case 0x30: this.pop(); break; // POP
        case 0x31: this.popMark(); break; // POP_MARK
        case 0x32: this.stack.push(this.top()); break; // DUP
        case 0x63: this.stack.push(this.global(`${this.line()} ${this.line()}`)); break; // GLOBAL
        case 0x93: { const name = this.pop(), mod = this.pop(); this.stack.push(this.global(`${String(mod)} ${String(name)}`)); break; } // STACK_GLOBAL
        case 0x52: { // REDUCE
          const args = this.pop(), fn = this.pop();
          if (!(fn instanceof GlobalRef) || !fn.impl.call) this.fail(`REDUCE on ${fn instanceof GlobalRef ? `'${fn.name}', which may not be called` : 'a non-callable'}`, 'FORBIDDEN_PICKLE');
          if (!Array.isArray(args)) this.fail('REDUCE arguments are not a tuple');
          this.stack.push(fn.impl.call(...args));
          break;
        }
        case 0x62: { // BUILD
          const state = this.pop();
          if (!this.options.build?.(this.top(), state)) this.fail('BUILD (setstate) on an object that does not allow it', 'FORBIDDEN_PICKLE');
          break;
        }
        case 0x51: { // BINPERSID
          const pid = this.pop();
          if (!this.options.persistentLoad) this.fail('persistent id without a loader', 'FORBIDDEN_PICKLE');
          this.stack.push(this.options.persistentLoad(pid));
          break;
        }
        default:
          this.pos--;
          this.fail(`opcode 0x${op.toString(16)} ('${String.fromCharCode(op)}') is not allowed in a state dict`, 'FORBIDDEN_PICKLE');
      }
    }
  }

  private get(i: number): unknown {
    if (!this.memo.has(i)) this.fail(`memo key ${i} is not defined`);
    return this.memo.get(i);
  }

  /** Little-endian two's complement integer of n bytes. */
  private long(n: number): number | bigint {
    const b = this.bytes(n);
    if (n === 0) return 0;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
}
