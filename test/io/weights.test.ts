import { expect } from 'chai';
import { copyFileSync, cpSync, mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { WeightFileError } from '../../src/index.js';
import { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { readTorchStateDict } from '../../src/io/convert/torch_pt.js';
import { readTfjsManifestFile } from '../../src/io/convert/tfjs_manifest.js';
import { convertWeights } from '../../src/io/convert/index.js';
import { loadModelFile } from '../../src/models/load.js';
import { ARCHITECTURES, buildModel } from '../../src/models/factory.js';
import { floatBytes, PickleWriter, zipStored } from '../fixtures/torch_files.js';
import { sharedPath } from '../shared.js';
import { tempDir } from '../tmp.js';

const tmp = tempDir('weights');

/** A safetensors file from a hand-written header, to test the validator. */
function rawSafetensors(header: object, dataBytes: number): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, Buffer.alloc(dataBytes)]);
}

describe('safetensors', () => {
  it('round-trips float32 and float64 tensors with metadata, 8-byte aligned, as views without copies', () => {
    const file = join(tmp, 'rt.safetensors');
    writeSafetensors(file, new Map([
      ['a', { shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) }],
      ['b', { shape: [1], data: new Float64Array([Math.PI]) }],
      ['empty', { shape: [0, 4], data: new Float32Array(0) }],
    ]), { architecture: 'x', note: 'y' });
    const r = readSafetensors(file);
    expect(r.metadata).to.deep.equal({ architecture: 'x', note: 'y' });
    expect(Array.from(r.tensors.get('a')!.data)).to.deep.equal([1, 2, 3, 4, 5, 6]);
    expect(r.tensors.get('b')!.dtype).to.equal('F64');
    expect(r.tensors.get('b')!.data[0]).to.equal(Math.PI);
    expect(r.tensors.get('empty')!.shape).to.deep.equal([0, 4]);
    expect(readFileSync(file).readBigUInt64LE(0) % 8n).to.equal(0n);
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).to.deep.equal([]); // atomic write left nothing
  });
  it('a write that cannot happen (no such folder; the target is a folder) is WRITE_FAILED naming the file, and leaves nothing behind', () => {
    const tensors = new Map([['a', { shape: [1], data: new Float32Array([1]) }]]);
    const folder = join(tmp, 'a-folder');
    mkdirSync(folder, { recursive: true });
    for (const file of [join(tmp, 'missing', 'w.safetensors'), folder]) {
      expect(() => writeSafetensors(file, tensors), file).to.throw(file).with.property('code', 'WRITE_FAILED');
    }
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).to.deep.equal([]);
  });
  it('decodes the header layout other tools write (F16 and I64 entries, unsorted keys)', () => {
    const half = Buffer.from([0x00, 0x3c, 0x00, 0xc0]); // 1.0, -2.0
    const long = Buffer.alloc(8);
    long.writeBigInt64LE(42n);
    const header = { n: { dtype: 'I64', shape: [], data_offsets: [4, 12] }, h: { dtype: 'F16', shape: [2], data_offsets: [0, 4] } };
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    const r = decodeSafetensors(Buffer.concat([len, json, half, long]));
    expect(Array.from(r.tensors.get('h')!.data)).to.deep.equal([1, -2]);
    expect(r.tensors.get('n')!.data[0]).to.equal(42);
  });
  const bad: [string, Buffer, RegExp][] = [
    ['a file shorter than 8 bytes', Buffer.alloc(5), /shorter than the 8-byte header length/],
    ['a header length beyond the file', (() => { const b = Buffer.alloc(16); b.writeBigUInt64LE(1000n); return b; })(), /header length 1000 exceeds the file/],
    ['a header that is not JSON', Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{{{{')]), /header is not JSON/],
    ['out-of-range offsets', rawSafetensors({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8), /outside the 8-byte data section/],
    ['overlapping offsets', rawSafetensors({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12), /overlap the previous tensor/],
    ['a byte length that does not match shape x dtype', rawSafetensors({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8), /8 bytes for shape \[3\] of F32 \(needs 12\)/],
    ['an unknown dtype', rawSafetensors({ a: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, 16), /unknown dtype "F128"/],
    ['a hole in the data', rawSafetensors({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), /a hole of 4 bytes/],
    ['trailing bytes', rawSafetensors({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 8), /4 trailing bytes/],
    ['a negative dimension', rawSafetensors({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4), /non-negative integers/],
  ];
  for (const [what, buf, message] of bad) {
    it(`rejects ${what} with a typed error naming the file`, () => {
      const file = join(tmp, 'bad.safetensors');
      writeFileSync(file, buf);
      expect(() => readSafetensors(file)).to.throw(WeightFileError, message).with.property('file', file);
    });
  }
  it('reports a missing file as NOT_FOUND', () => {
    expect(() => readSafetensors(join(tmp, 'nope.safetensors'))).to.throw(WeightFileError).with.property('code', 'NOT_FOUND');
  });
  it('refuses a model file with an integer weight tensor (BAD_DTYPE), and converts F64 weights', () => {
    const model = buildModel('mtcnn-pnet');
    const file = join(tmp, 'pnet.safetensors');
    const buf = Buffer.from(encodeSafetensors(new Map([...model.stateDict()].map(([k, t]) => [k, { shape: t.shape, data: t.data }])), { architecture: 'mtcnn-pnet' }));
    writeFileSync(file, buf);
    expect(() => loadModelFile(file)).to.not.throw();
    // Same byte size per element, so only the header's dtype changes.
    const headerLength = Number(buf.readBigUInt64LE(0));
    const header = buf.subarray(8, 8 + headerLength).toString('utf8').replace('"dtype":"F32"', '"dtype":"I32"');
    writeFileSync(file, Buffer.concat([buf.subarray(0, 8), Buffer.from(header, 'utf8'), buf.subarray(8 + headerLength)]));
    expect(() => loadModelFile(file)).to.throw(WeightFileError, /is stored as I32.*floating point/).with.property('code', 'BAD_DTYPE');
    const f64 = new Map([...model.stateDict()].map(([k, t]) => [k, { shape: t.shape, data: Float64Array.from(t.data) }]));
    writeFileSync(file, encodeSafetensors(f64, { architecture: 'mtcnn-pnet' }));
    const loaded = loadModelFile(file).model.stateDict();
    for (const [k, t] of model.stateDict()) expect(Array.from(loaded.get(k)!.data)).to.deep.equal(Array.from(t.data));
  });

  it("models built to be loaded skip sampling their weights (init 'none': zeros, same layout), and load every value from the file", () => {
    for (const arch of ARCHITECTURES) { // the separable convolutions' pointwise halves sampled theirs until the eighteenth session
      const random = buildModel(arch, { seed: 5 }).stateDict(), empty = buildModel(arch, { init: 'none' }).stateDict();
      expect([...empty.keys()], arch).to.deep.equal([...random.keys()]);
      for (const [k, t] of empty) {
        expect(t.shape, k).to.deep.equal(random.get(k)!.shape);
        if (k.endsWith('.weight') && t.rank >= 2) expect(t.data.every((v) => v === 0), k).to.equal(true);
      }
    }
    const model = buildModel('mtcnn-onet', { seed: 9 });
    const file = join(tmp, 'onet.safetensors');
    writeFileSync(file, encodeSafetensors(new Map([...model.stateDict()].map(([k, t]) => [k, { shape: [...t.shape], data: Float32Array.from(t.data) }])), { architecture: 'mtcnn-onet' }));
    const loaded = loadModelFile(file).model.stateDict();
    for (const [k, t] of model.stateDict()) expect(Buffer.from(Float32Array.from(loaded.get(k)!.data).buffer).equals(Buffer.from(Float32Array.from(t.data).buffer)), k).to.equal(true);
  });

  it('encodes a model file that loads back into the same architecture', () => {
    const file = join(tmp, 'enc.safetensors');
    writeFileSync(file, encodeSafetensors(new Map([['x', { shape: [1], data: new Float32Array([1]) }]])));
    expect(() => loadModelFile(file)).to.throw(WeightFileError, /no architecture in the metadata/);
  });
});

describe('PyTorch checkpoints', () => {
  const sd = PickleWriter.stateDict([{ name: 'w', key: '0', shape: [2, 2], numel: 4 }, { name: 'b', key: '1', shape: [2], numel: 2 }]);
  const goodZip = (): Buffer => zipStored([
    { name: 'ckpt/data.pkl', data: sd },
    { name: 'ckpt/data/0', data: floatBytes([1, 2, 3, 4]) },
    { name: 'ckpt/data/1', data: floatBytes([5, 6]) },
    { name: 'ckpt/version', data: Buffer.from('3\n') },
  ]);
  const write = (name: string, buf: Buffer): string => { const f = join(tmp, name); writeFileSync(f, buf); return f; };

  it('reads a zip-format state dict written by the fixture builder', () => {
    const r = readTorchStateDict(write('good.pt', goodZip()));
    expect([...r.keys()]).to.deep.equal(['w', 'b']);
    expect(Array.from(r.get('w')!.data)).to.deep.equal([1, 2, 3, 4]);
    expect(r.get('b')!.shape).to.deep.equal([2]);
  });
  it('reads the legacy (pre-1.6) format of the real facenet-pytorch MTCNN files', function () {
    const r = readTorchStateDict(sharedPath(this, 'weights/mtcnn-pytorch/onet.pt'));
    expect(r.size).to.equal(21);
    expect(r.get('dense5.weight')!.shape).to.deep.equal([256, 1152]);
  });
  it('rejects a truncated zip', () => {
    const buf = goodZip();
    expect(() => readTorchStateDict(write('trunc.pt', buf.subarray(0, buf.length - 30)))).to.throw(WeightFileError, /corrupt zip archive: no end-of-central-directory/).with.property('code', 'BAD_ZIP');
  });
  it('rejects a zip whose central directory points outside the file', () => {
    const buf = Buffer.from(goodZip());
    buf.writeUInt32LE(0x7ffffff0, buf.length - 6); // central directory offset
    expect(() => readTorchStateDict(write('cd.pt', buf))).to.throw(WeightFileError, /central directory entry 0 is out of bounds/);
  });
  it('rejects entry names with path traversal', () => {
    const buf = zipStored([{ name: '../../etc/passwd', data: Buffer.from('x') }, { name: 'a/data.pkl', data: sd }]);
    expect(() => readTorchStateDict(write('trav.pt', buf))).to.throw(WeightFileError, /unsafe entry name "..\/..\/etc\/passwd"/);
  });
  it('refuses a pickle that references a forbidden global, without executing anything', () => {
    const evil = new PickleWriter().global('os', 'system').mark().str('echo pwned').tuple().reduce().stop();
    const buf = zipStored([{ name: 'x/data.pkl', data: evil }]);
    expect(() => readTorchStateDict(write('evil.pt', buf))).to.throw(WeightFileError, /forbidden global 'os.system'/).with.property('code', 'FORBIDDEN_PICKLE');
  });
  it('refuses pickle opcodes a state dict never uses (INST, OBJ, NEWOBJ...)', () => {
    const inst = new PickleWriter().mark().raw(...Buffer.from('ibuiltins\neval\n', 'latin1')).stop();
    expect(() => readTorchStateDict(write('inst.pt', zipStored([{ name: 'x/data.pkl', data: inst }])))).to.throw(WeightFileError, /opcode 0x69 \('i'\) is not allowed/);
  });
  it('refuses calling an allowed non-callable global (a storage type)', () => {
    const p = new PickleWriter().global('torch', 'FloatStorage').emptyTuple().reduce().stop();
    expect(() => readTorchStateDict(write('call.pt', zipStored([{ name: 'x/data.pkl', data: p }])))).to.throw(WeightFileError, /may not be called/);
  });
  it('rejects a storage shorter than its tensors need', () => {
    const buf = zipStored([{ name: 'c/data.pkl', data: sd }, { name: 'c/data/0', data: floatBytes([1, 2]) }, { name: 'c/data/1', data: floatBytes([5, 6]) }]);
    expect(() => readTorchStateDict(write('short.pt', buf))).to.throw(WeightFileError, /storage 0 holds 8 bytes, needs 16/);
  });
  it('rejects a truncated legacy file at every cut point without crashing', function () {
    const full = readFileSync(sharedPath(this, 'weights/mtcnn-pytorch/pnet.pt'));
    for (const cut of [0, 1, 10, 100, 1000, 1657, 5000, full.length - 1]) {
      const f = write('cut.pt', full.subarray(0, cut));
      expect(() => readTorchStateDict(f), `cut at ${cut}`).to.throw(WeightFileError);
    }
  });
  it('rejects files that are neither format', () => {
    expect(() => readTorchStateDict(write('txt.pt', Buffer.from('hello')))).to.throw(WeightFileError, /not a PyTorch checkpoint/);
  });
});

describe('Keras-OpenFace CSV', () => {
  it('the real (incomplete) nn4.small2.v1 directory: names exactly the 5 absent files and refuses to write', function () {
    const src = sharedPath(this, 'weights/openface-nn4.small2.v1');
    const out = join(tmp, 'real.safetensors');
    let err: WeightFileError | null = null;
    try { convertWeights({ src, format: 'keras-openface-csv', arch: 'nn4.small2', out }); } catch (e) { err = e as WeightFileError; }
    expect(err).to.be.instanceOf(WeightFileError);
    expect(err!.code).to.equal('INCOMPLETE');
    expect(err!.message).to.contain('missing 5: inception_3c_3x3_conv2_w.csv, inception_4e_3x3_conv2_w.csv, inception_5a_1x1_conv_w.csv, inception_5a_3x3_conv2_w.csv, inception_5b_3x3_conv2_w.csv');
    expect(err!.message).to.contain('--allow-missing');
    expect(existsSync(out)).to.equal(false);
  });
  it('--allow-missing writes the rest for inspection, marked incomplete so it never runs', function () {
    const out = join(tmp, 'partial.safetensors');
    const r = convertWeights({ src: sharedPath(this, 'weights/openface-nn4.small2.v1'), format: 'keras-openface-csv', arch: 'nn4.small2', out, allowMissing: true });
    expect(r.missing).to.have.length(5);
    expect(r.tensors).to.equal(219);
    expect(readSafetensors(out).metadata.incomplete).to.contain('inception_5a_1x1_conv_w.csv');
    expect(() => loadModelFile(out)).to.throw(WeightFileError, /written with --allow-missing/).with.property('code', 'INCOMPLETE');
  });
  it('a CSV with the wrong number of values names the file and both counts', function () {
    const dir = join(tmp, 'csv');
    cpSync(sharedPath(this, 'goldens/nn4-synthetic-csv'), dir, { recursive: true });
    writeFileSync(join(dir, 'bn1_w.csv'), '1,2,3\n');
    expect(() => convertWeights({ src: dir, format: 'keras-openface-csv', arch: 'nn4.small2', out: join(tmp, 'x.safetensors') }))
      .to.throw(WeightFileError, /bn1_w\.csv: has 3 values, conv1\.bn\.weight of shape \[64\] needs 64/);
    writeFileSync(join(dir, 'bn1_w.csv'), `${'0.5,'.repeat(63)}abc\n`);
    expect(() => convertWeights({ src: dir, format: 'keras-openface-csv', arch: 'nn4.small2', out: join(tmp, 'x.safetensors') }))
      .to.throw(WeightFileError, /value 63 is not a finite number: "abc"/);
  });
});

describe('TF.js manifests', () => {
  it('a manifest pointing at a missing shard names the shard', function () {
    const dir = join(tmp, 'tfjs');
    mkdirSync(dir, { recursive: true });
    copyFileSync(sharedPath(this, 'weights/face-api/mtcnn_model-weights_manifest.json'), join(dir, 'm.json'));
    expect(() => readTfjsManifestFile(join(dir, 'm.json'))).to.throw(WeightFileError, /shard mtcnn_model-shard1 is missing/).with.property('code', 'NOT_FOUND');
  });
  it('a truncated shard names the weight that does not fit', function () {
    const dir = join(tmp, 'tfjs2');
    mkdirSync(dir, { recursive: true });
    copyFileSync(sharedPath(this, 'weights/face-api/mtcnn_model-weights_manifest.json'), join(dir, 'm.json'));
    writeFileSync(join(dir, 'mtcnn_model-shard1'), readFileSync(sharedPath(this, 'weights/face-api/mtcnn_model-shard1')).subarray(0, 5000));
    expect(() => readTfjsManifestFile(join(dir, 'm.json'))).to.throw(WeightFileError, /weight pnet\/conv\d\/\w+ needs bytes \d+\.\.\d+ but the shards .* hold 5000: truncated shard\?/);
  });
  it('decodes uint8-quantized weights as q * scale + min', function () {
    const w = readTfjsManifestFile(sharedPath(this, 'weights/face-api/tiny_face_detector_model-weights_manifest.json'));
    const bias = w.get('conv0/bias')!;
    const raw = readFileSync(sharedPath(this, 'weights/face-api/tiny_face_detector_model-shard1'));
    // conv0/filters (432 bytes) comes first; conv0/bias starts right after it.
    expect(bias.data[0]).to.be.closeTo(raw[432]! * 0.005263455241334205 - 0.9211046672334858, 1e-6);
  });
});
