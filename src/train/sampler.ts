/**
 * P x K batches for triplet training: P identities drawn at random, K examples of each (without
 * replacement when the identity has K or more, otherwise with). Seeded, so a run is reproducible.
 */
import { ArgumentError } from '../errors.js';
import { Rng } from '../util/random.js';

export class PKSampler {
  private readonly byLabel: Map<number, number[]>;
  private readonly identities: number[];
  readonly rng: Rng;

  constructor(labels: ArrayLike<number>, readonly P: number, readonly K: number, seed = 1) {
    this.byLabel = new Map();
    for (let i = 0; i < labels.length; i++) {
      const l = labels[i]!;
      if (!this.byLabel.has(l)) this.byLabel.set(l, []);
      this.byLabel.get(l)!.push(i);
    }
    this.identities = [...this.byLabel.keys()].filter((l) => this.byLabel.get(l)!.length >= 2).sort((a, b) => a - b);
    if (this.identities.length < P) throw new ArgumentError('PKSampler', `needs ${P} identities with at least 2 examples, the data has ${this.identities.length}`);
    this.rng = new Rng(seed);
  }

  private shuffled<T>(items: T[]): T[] {
    const a = [...items];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.rng.next() * (i + 1));
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a;
  }

  /** Example indices and their labels, identity by identity (K consecutive entries each). */
  next(): { indices: number[]; labels: number[] } {
    const ids = this.shuffled(this.identities).slice(0, this.P);
    const indices: number[] = [], labels: number[] = [];
    for (const id of ids) {
      const pool = this.byLabel.get(id)!;
      const chosen = pool.length >= this.K ? this.shuffled(pool).slice(0, this.K) : Array.from({ length: this.K }, () => pool[Math.floor(this.rng.next() * pool.length)]!);
      indices.push(...chosen);
      labels.push(...chosen.map(() => id));
    }
    return { indices, labels };
  }
}
