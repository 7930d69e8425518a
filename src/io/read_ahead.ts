/**
 * Decoding image files ahead of their use, on a worker thread (Node). JPEG decoding is pure JavaScript
 * (jpeg-js) and took a third of the pipeline's time per photo here (58-64 of 160-176 ms, the OpenFace
 * example photos), on the thread that then runs the networks. A command that goes through a list of files
 * hands the list to a ReadAhead; while the networks work on one photo, the worker decodes the next ones,
 * and the decoded pixels are handed over without a copy (their buffer is transferred). The worker runs the
 * same readImage with the same limits, so the pixels, and the errors of a bad file, are the ones decoding
 * here gives.
 */
import { builtin } from '../util/node_builtin.js';
import { FacenetError } from '../errors.js';
import { ImageError, type ImageLimits, type RgbImage } from './image.js';

type Worker = InstanceType<typeof import('node:worker_threads').Worker>;
interface Slot { promise: Promise<RgbImage | null>; resolve: (image: RgbImage | null) => void; reject: (e: Error) => void; settled: boolean; taken: boolean }

/** What the worker is asked, and what it answers: the pixels, or the error readImage threw. */
export interface ReadRequest { index: number; path: string }
export type ReadAnswer =
  | { index: number; data: Uint8Array; width: number; height: number }
  | { index: number; error: { code?: string; file?: string; message: string } };

/** An error the worker reported, rebuilt as the same class (ImageError keeps its code and file). */
export function rebuildError(e: { code?: string; file?: string; message: string }): Error {
  const prefix = `${e.file}: `;
  if (e.code !== undefined && e.file !== undefined && e.message.startsWith(prefix)) return new ImageError(e.code, e.file, e.message.slice(prefix.length));
  if (e.code !== undefined) return new FacenetError(e.code, e.message);
  return new Error(e.message);
}

/** The answer for an error thrown while decoding (the inverse of rebuildError). */
export function describeError(index: number, err: unknown): ReadAnswer {
  const e = err as { code?: unknown; file?: unknown; message?: unknown };
  return {
    index,
    error: {
      ...(err instanceof FacenetError ? { code: err.code } : {}),
      ...(typeof e?.file === 'string' ? { file: e.file } : {}),
      message: typeof e?.message === 'string' ? e.message : String(err),
    },
  };
}

/**
 * A list of files decoded in order on a worker thread, up to `depth` files ahead of the one in use.
 * take(path) hands over the next file's image; a path out of order (or any path, once the worker has
 * failed) gets null, and the caller decodes it itself. The first file is not sent to the worker: it is
 * needed at once, and decoding it here costs less than waiting for the worker to start.
 */
export class ReadAhead {
  private worker: Worker | null;
  private firstTaken = false;
  private next = 1; // the index take() expects after the first
  private requested = 1; // files [1, requested) have been sent to the worker
  /** A file sent to the worker, kept until it is both answered (its promise settled) and taken (the promise handed over). */
  private readonly slots = new Map<number, Slot>();

  /** Null where there are no worker threads (a browser) or fewer than two files. */
  static start(paths: readonly string[], limits: ImageLimits, depth = 2): ReadAhead | null {
    const threads = builtin('node:worker_threads');
    if (!threads || paths.length < 2) return null;
    const worker = new threads.Worker(new URL('./read_ahead_worker.js', import.meta.url), { workerData: { limits } });
    return new ReadAhead(paths, worker, depth);
  }

  private constructor(private readonly paths: readonly string[], worker: Worker, private readonly depth: number) {
    this.worker = worker;
    worker.unref(); // an unfinished read-ahead does not keep the process alive
    worker.on('message', (answer: ReadAnswer) => this.answer(answer));
    // A worker that fails (it cannot even load, or runs out of memory) hands every file back to the caller.
    worker.on('error', () => this.stop());
    worker.on('exit', () => this.stop());
    this.request();
  }

  /** The image of `path` if it is the next file of the list (or a later one: those before it are skipped); else null. */
  take(path: string): Promise<RgbImage | null> | null {
    if (!this.firstTaken && path === this.paths[0]) { this.firstTaken = true; return null; } // the caller decodes it
    this.firstTaken = true;
    const at = this.paths.indexOf(path, this.next);
    if (!this.worker || at < 0) return null;
    for (const index of this.slots.keys()) if (index < at) this.slots.delete(index); // skipped: their images are dropped
    this.next = at + 1;
    this.requested = Math.max(this.requested, at); // files skipped before they were sent are not sent
    const slot = this.slot(at);
    this.request();
    slot.taken = true;
    if (slot.settled) this.slots.delete(at); // else answer() lets go of it
    return slot.promise;
  }

  /** Stops the worker; files not yet taken are decoded by the caller. */
  close(): void {
    const w = this.worker;
    this.stop();
    void w?.terminate();
  }

  /** Sends the worker the files up to `depth` past the one in use. */
  private request(): void {
    for (; this.worker && this.requested < Math.min(this.paths.length, this.next + this.depth); this.requested++) {
      this.slot(this.requested);
      const request: ReadRequest = { index: this.requested, path: this.paths[this.requested]! };
      this.worker.postMessage(request);
    }
  }

  private slot(index: number): Slot {
    let s = this.slots.get(index);
    if (!s) {
      let resolve!: Slot['resolve'], reject!: Slot['reject'];
      const promise = new Promise<RgbImage | null>((res, rej) => { resolve = res; reject = rej; });
      promise.catch(() => undefined); // a skipped file's error is nobody's
      s = { resolve, reject, promise, settled: false, taken: false };
      this.slots.set(index, s);
    }
    return s;
  }

  /** Settles the file's promise; an answer that arrives first waits in its slot until taken (or skipped). */
  private answer(a: ReadAnswer): void {
    const s = this.slots.get(a.index);
    if (!s) return; // skipped
    if ('error' in a) s.reject(rebuildError(a.error));
    else s.resolve({ data: a.data, width: a.width, height: a.height });
    s.settled = true;
    if (s.taken) this.slots.delete(a.index);
  }

  /** No more worker: every file still waited for is the caller's to decode (null; settled ones keep their answer). */
  private stop(): void {
    this.worker = null;
    for (const s of this.slots.values()) s.resolve(null);
    this.slots.clear();
  }
}
