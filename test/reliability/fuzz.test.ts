/**
 * Property-based fuzzing (fast-check, bounded runs) of everything that parses untrusted bytes: image
 * decoders, safetensors, PyTorch zip/pickle, TF.js manifests. Property: any input either decodes or throws
 * a FacenetError (typed, with a code); never another exception, never a hang.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FacenetError } from '../../src/errors.js';
import { decodeImage } from '../../src/io/image.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/io/safetensors.js';
import { readTorchStateDict } from '../../src/io/convert/torch_pt.js';
import { readTfjsWeights } from '../../src/io/convert/tfjs_manifest.js';
import { encodeJpeg, encodePng, testCard } from '../fixtures/images.js';
import { floatBytes, PickleWriter, zipStored } from '../fixtures/torch_files.js';
import { tempDir } from '../tmp.js';

const tmp = tempDir('fuzz');
const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

/** Runs fn; passes when it returns or throws a FacenetError. */
function typedOrOk(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    if (err instanceof FacenetError) return true;
    throw err;
  }
}

/** A valid file with a few bytes flipped, cut, or inserted. */
function mutated(base: Buffer): fc.Arbitrary<Buffer> {
  return fc.record({
    flips: fc.array(fc.record({ at: fc.nat(base.length - 1), xor: fc.integer({ min: 1, max: 255 }) }), { maxLength: 6 }),
    cut: fc.option(fc.nat(base.length), { nil: undefined }),
    insert: fc.option(fc.record({ at: fc.nat(base.length), bytes: fc.uint8Array({ maxLength: 16 }) }), { nil: undefined }),
  }).map(({ flips, cut, insert }) => {
    let b = Buffer.from(base);
    for (const f of flips) b[f.at]! ^= f.xor;
    if (insert) b = Buffer.concat([b.subarray(0, insert.at), Buffer.from(insert.bytes), b.subarray(insert.at)]);
    if (cut !== undefined) b = b.subarray(0, cut);
    return b;
  });
}

describe('fuzzing untrusted-input parsers (fast-check)', function () {
  this.timeout(300000);
  it('PNG decoder: mutated files decode or throw a typed error', () => {
    const base = encodePng(testCard(24, 16));
    fc.assert(fc.property(mutated(base), (b) => typedOrOk(() => decodeImage(b, 'fuzz.png'))), { numRuns: RUNS, seed: 1 });
  });
  it('JPEG decoder: mutated files decode or throw a typed error', () => {
    const base = encodeJpeg(testCard(24, 16));
    fc.assert(fc.property(mutated(base), (b) => typedOrOk(() => decodeImage(b, 'fuzz.jpg'))), { numRuns: RUNS, seed: 2 });
  });
  it('image decoder: arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), (b) => typedOrOk(() => decodeImage(b, 'fuzz.bin'))), { numRuns: RUNS, seed: 3 });
  });
  it('safetensors: mutated files decode or throw a typed error', () => {
    const base = Buffer.from(encodeSafetensors(new Map([['a', { shape: [2, 3], data: new Float32Array(6).fill(1) }], ['b', { shape: [1], data: new Float64Array([2]) }]]), { k: 'v' }));
    fc.assert(fc.property(mutated(base), (b) => typedOrOk(() => decodeSafetensors(b, 'fuzz.safetensors'))), { numRuns: RUNS, seed: 4 });
  });
  it('safetensors: arbitrary JSON headers', () => {
    const header = fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(
      fc.record({ dtype: fc.constantFrom('F32', 'F64', 'F16', 'I64', 'U8', 'X'), shape: fc.array(fc.integer({ min: -2, max: 5 }), { maxLength: 3 }), data_offsets: fc.array(fc.integer({ min: -4, max: 64 }), { maxLength: 3 }) }),
      fc.anything(),
    ));
    fc.assert(fc.property(header, fc.nat(64), (h, extra) => {
      const json = Buffer.from(JSON.stringify(h));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      return typedOrOk(() => decodeSafetensors(Buffer.concat([len, json, Buffer.alloc(extra)]), 'fuzz'));
    }), { numRuns: RUNS, seed: 5 });
  });
  it('PyTorch zip + pickle: mutated checkpoints load or throw a typed error', () => {
    const base = zipStored([
      { name: 'c/data.pkl', data: PickleWriter.stateDict([{ name: 'w', key: '0', shape: [2, 2], numel: 4 }]) },
      { name: 'c/data/0', data: floatBytes([1, 2, 3, 4]) },
    ]);
    const file = join(tmp, 'f.pt');
    fc.assert(fc.property(mutated(base), (b) => { writeFileSync(file, b); return typedOrOk(() => readTorchStateDict(file)); }), { numRuns: RUNS, seed: 6 });
  });
  it('pickle reader: arbitrary opcode streams inside a valid zip', () => {
    const file = join(tmp, 'p.pt');
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      writeFileSync(file, zipStored([{ name: 'x/data.pkl', data: Buffer.concat([Buffer.from([0x80, 2]), Buffer.from(bytes), Buffer.from([0x2e])]) }]));
      return typedOrOk(() => readTorchStateDict(file));
    }), { numRuns: RUNS, seed: 7 });
  });
  it('TF.js manifests: arbitrary shapes and quantizations against a small shard', () => {
    writeFileSync(join(tmp, 'shard'), Buffer.alloc(64, 7));
    const weight = fc.record({
      name: fc.string({ maxLength: 4 }), shape: fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 3 }),
      dtype: fc.constantFrom('float32', 'int32', 'uint8', 'complex64'),
      quantization: fc.option(fc.record({ dtype: fc.constantFrom('uint8', 'uint16', 'float16'), scale: fc.double(), min: fc.double() }), { nil: undefined }),
    });
    fc.assert(fc.property(fc.array(weight, { maxLength: 4 }), (weights) =>
      typedOrOk(() => readTfjsWeights([{ paths: ['shard'], weights: weights as never }], tmp, 'fuzz.json'))), { numRuns: RUNS, seed: 8 });
  });
  it('the properties can fail: a non-typed exception is reported', () => {
    expect(() => typedOrOk(() => { throw new TypeError('boom'); })).to.throw(TypeError);
  });
});
