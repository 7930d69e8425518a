/**
 * Module: a tree of named parameters (trainable), buffers (state such as BN running statistics) and
 * child modules, as in PyTorch. stateDict() flattens the tree to dotted names ("conv1.bn.running_mean");
 * loadStateDict() copies values in with shape checks and reports missing and unexpected names.
 * train()/eval() switch the whole tree (batchnorm uses batch statistics only in training mode).
 */
import { ShapeError, FacenetError } from '../errors.js';
import { keep } from '../autograd/memory.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

export interface LoadReport {
  missing: string[];
  unexpected: string[];
}

export class StateDictError extends FacenetError {
  readonly report: LoadReport;
  constructor(report: LoadReport, source: string) {
    const parts = [
      report.missing.length ? `missing ${report.missing.length}: ${report.missing.slice(0, 8).join(', ')}${report.missing.length > 8 ? ', ...' : ''}` : '',
      report.unexpected.length ? `unexpected ${report.unexpected.length}: ${report.unexpected.slice(0, 8).join(', ')}${report.unexpected.length > 8 ? ', ...' : ''}` : '',
    ].filter(Boolean);
    super('STATE_DICT', `${source}: state dict does not match the model (${parts.join('; ')})`);
    this.report = report;
  }
}

export abstract class Module {
  training = true;
  private readonly params = new Map<string, Tensor>();
  private readonly buffers = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();

  /** Registers a trainable tensor: it requires grad and lives outside tidy() scopes. */
  protected param(name: string, t: Tensor): Tensor {
    t.requiresGrad = true;
    this.params.set(name, keep(t));
    return t;
  }

  /** Registers state that is saved and loaded but not trained. */
  protected buffer(name: string, t: Tensor): Tensor {
    this.buffers.set(name, keep(t));
    return t;
  }

  protected child<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }

  namedParameters(prefix = ''): [string, Tensor][] {
    return [
      ...[...this.params].map(([n, t]): [string, Tensor] => [prefix + n, t]),
      ...[...this.children].flatMap(([n, c]) => c.namedParameters(`${prefix}${n}.`)),
    ];
  }

  /** The tensors of namedParameters, in its order (without making the names: layers ask on every forward). */
  parameters(): Tensor[] {
    const out: Tensor[] = [];
    this.collectParameters(out);
    return out;
  }

  private collectParameters(out: Tensor[]): void {
    for (const t of this.params.values()) out.push(t);
    for (const c of this.children.values()) c.collectParameters(out);
  }

  /** Parameters and buffers by dotted name, in registration order. The tensors are the live ones. */
  stateDict(prefix = ''): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [n, t] of this.params) out.set(prefix + n, t);
    for (const [n, t] of this.buffers) out.set(prefix + n, t);
    for (const [n, c] of this.children) for (const [k, t] of c.stateDict(`${prefix}${n}.`)) out.set(k, t);
    return out;
  }

  /**
   * Copies values from `entries` (name -> tensor or typed values with a shape) into this module.
   * Shapes must match exactly (a ShapeError names the key). With strict (default) any missing or
   * unexpected name throws a StateDictError listing them; otherwise they are returned.
   */
  loadStateDict(entries: Map<string, { shape: readonly number[]; data: ArrayLike<number> }>, options: { strict?: boolean; source?: string } = {}): LoadReport {
    const own = this.stateDict();
    const report: LoadReport = {
      missing: [...own.keys()].filter((k) => !entries.has(k)),
      unexpected: [...entries.keys()].filter((k) => !own.has(k)),
    };
    if ((options.strict ?? true) && (report.missing.length || report.unexpected.length)) throw new StateDictError(report, options.source ?? 'loadStateDict');
    for (const [name, target] of own) {
      const src = entries.get(name);
      if (!src) continue;
      if (!shapesEqual(src.shape, target.shape)) throw new ShapeError('loadStateDict', `${name} of shape ${formatShape(target.shape)}`, src.shape);
      target.data.set(src.data);
    }
    return report;
  }

  train(mode = true): this {
    this.training = mode;
    for (const c of this.children.values()) c.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /** Number of trainable scalars. */
  parameterCount(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }

  dispose(): void {
    for (const t of this.stateDict().values()) t.dispose();
  }
}
