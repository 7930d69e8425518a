/**
 * Typed errors. Every error the library throws on purpose is a FacenetError with a stable `code`
 * that tools can switch on, and a message that names what was wrong and how to fix it.
 */
export class FacenetError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A tensor has the wrong rank or size for an op. Names the op, the expected and the actual shape. */
export class ShapeError extends FacenetError {
  readonly op: string;
  readonly expected: string;
  readonly actual: readonly number[];
  constructor(op: string, expected: string, actual: readonly number[], detail = '') {
    super('SHAPE', `${op}: expected ${expected}, got [${actual.join(', ')}]${detail ? ` (${detail})` : ''}`);
    this.op = op;
    this.expected = expected;
    this.actual = actual;
  }
}

/** Inputs of one op must share a dtype: the library never converts silently. */
export class DTypeError extends FacenetError {
  constructor(op: string, dtypes: readonly string[]) {
    super('DTYPE', `${op}: inputs must share one dtype, got ${dtypes.join(', ')}; convert with .to('float32'|'float64') first`);
  }
}

/** A bad attribute (stride 0, even LRN size, unknown option...). */
export class ArgumentError extends FacenetError {
  constructor(op: string, message: string) {
    super('ARGUMENT', `${op}: ${message}`);
  }
}

/** Use of a tensor after dispose(). */
export class DisposedError extends FacenetError {
  constructor(what: string) {
    super('DISPOSED', `${what} was used after dispose(); keep it out of tidy() with keep(), or stop disposing it`);
  }
}

/** A weight file (or directory) that is missing, truncated, corrupt or does not fit the model. */
export class WeightFileError extends FacenetError {
  readonly file: string;
  constructor(file: string, problem: string, code = 'BAD_WEIGHTS') {
    super(code, `${file}: ${problem}`);
    this.file = file;
  }
}
