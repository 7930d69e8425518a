/**
 * The benchmark's TF.js side: the same networks written with TF.js ops (NHWC), fed the same weights as
 * our models (taken from their state dicts and transposed to TF's layouts). MobileFaceNet runs as the
 * original TF.js graph model through tfjs-converter.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Tensor } from '../src/tensor/tensor.js';

type SD = Map<string, Tensor>;
type T4 = tf.Tensor4D;

/** Weights converted once per model: OIHW -> HWIO, [out, in] -> [in, out]. */
function weights(sd: SD): (name: string) => tf.Tensor {
  const cache = new Map<string, tf.Tensor>();
  return (name) => {
    let t = cache.get(name);
    if (!t) {
      const src = sd.get(name);
      if (!src) throw new Error(`no weight ${name}`);
      const raw = tf.tensor(Float32Array.from(src.data), [...src.shape]);
      t = src.rank === 4 ? tf.transpose(raw, [2, 3, 1, 0]) : src.rank === 2 ? tf.transpose(raw) : raw;
      cache.set(name, tf.keep(t)); // created inside a forward's tidy: must outlive it
    }
    return t;
  };
}

const explicit = (t: number, b: number, l: number, r: number): [[number, number], [number, number], [number, number], [number, number]] => [[0, 0], [t, b], [l, r], [0, 0]];

export function nn4Tfjs(sd: SD): (x: T4) => tf.Tensor {
  const w = weights(sd);
  const bn = (x: T4, p: string, eps = 1e-5): T4 => tf.batchNorm(x, w(`${p}.running_mean`) as tf.Tensor1D, w(`${p}.running_var`) as tf.Tensor1D, w(`${p}.bias`) as tf.Tensor1D, w(`${p}.weight`) as tf.Tensor1D, eps);
  const unit = (x: T4, p: string, k: number, stride = 1): T4 => {
    const pad = (k - 1) / 2;
    return tf.relu(bn(tf.add(tf.conv2d(x, w(`${p}.conv.weight`) as T4, stride, explicit(pad, pad, pad, pad)), w(`${p}.conv.bias`)) as T4, `${p}.bn`));
  };
  const lrn = (x: T4): T4 => tf.localResponseNormalization(x, 2, 1, 1e-4 / 5, 0.75);
  const maxPool = (x: T4, s: number, pad: number): T4 => tf.maxPool(pad ? tf.pad(x, explicit(pad, pad, pad, pad)) : x, 3, s, 'valid'); // inputs are >= 0 (after ReLU)
  const l2Pool = (x: T4): T4 => tf.sqrt(tf.mul(tf.avgPool(tf.square(x), 3, 1, "valid"), 9)) as T4;
  const pad1 = (x: T4): T4 => tf.pad(x, explicit(1, 1, 1, 1));
  const block = (x: T4, name: string, spec: { r3?: boolean; r5?: boolean; pool: 'max1' | 'max2' | 'l2'; proj: boolean; one: boolean; stride?: number }): T4 => {
    const p = `inception_${name}`, s = spec.stride ?? 1, out: T4[] = [];
    out.push(unit(unit(x, `${p}.3x3_reduce`, 1), `${p}.3x3`, 3, s));
    if (spec.r5 !== false) out.push(unit(unit(x, `${p}.5x5_reduce`, 1), `${p}.5x5`, 5, s));
    let pool = spec.pool === 'l2' ? l2Pool(x) : maxPool(x, spec.pool === 'max2' ? 2 : 1, 1);
    if (spec.proj) pool = unit(pool, `${p}.pool_proj`, 1);
    if (spec.pool === 'l2') pool = pad1(pool);
    out.push(pool);
    if (spec.one) out.push(unit(x, `${p}.1x1`, 1));
    return tf.concat(out, 3);
  };
  return (x) => tf.tidy(() => {
    let y = maxPool(unit(x, 'conv1', 7, 2), 2, 1);
    y = lrn(y);
    y = maxPool(lrn(unit(unit(y, 'conv2', 1), 'conv3', 3)), 2, 1);
    y = block(y, '3a', { pool: 'max1', proj: true, one: true });
    y = block(y, '3b', { pool: 'l2', proj: true, one: true });
    y = block(y, '3c', { pool: 'max2', proj: false, one: false, stride: 2 });
    y = block(y, '4a', { pool: 'l2', proj: true, one: true });
    y = block(y, '4e', { pool: 'max2', proj: false, one: false, stride: 2 });
    y = block(y, '5a', { r5: false, pool: 'l2', proj: true, one: true });
    y = block(y, '5b', { r5: false, pool: 'max1', proj: true, one: true });
    const flat = tf.reshape(tf.avgPool(y, 3, 1, 'valid'), [x.shape[0], -1]) as tf.Tensor2D;
    const e = tf.add(tf.matMul(flat, w('dense.weight') as tf.Tensor2D), w('dense.bias'));
    return tf.div(e, tf.norm(e, 2, 1, true));
  });
}

export function irv1Tfjs(sd: SD): (x: T4) => tf.Tensor {
  const w = weights(sd);
  const basic = (x: T4, p: string, stride = 1, pad: [number, number] | 0 = 0): T4 => {
    const pd = pad === 0 ? 'valid' : explicit(pad[0], pad[0], pad[1], pad[1]);
    const c = tf.conv2d(x, w(`${p}.conv.weight`) as T4, stride, pd);
    return tf.relu(tf.batchNorm(c, w(`${p}.bn.running_mean`) as tf.Tensor1D, w(`${p}.bn.running_var`) as tf.Tensor1D, w(`${p}.bn.bias`) as tf.Tensor1D, w(`${p}.bn.weight`) as tf.Tensor1D, 1e-3));
  };
  const mix = (x: T4, p: string, branches: T4[], scale: number, relu = true): T4 => {
    const up = tf.add(tf.conv2d(tf.concat(branches, 3), w(`${p}.conv2d.weight`) as T4, 1, 'valid'), w(`${p}.conv2d.bias`)) as T4;
    const y = tf.add(x, tf.mul(up, scale)) as T4;
    return relu ? tf.relu(y) : y;
  };
  const b35 = (x: T4, p: string): T4 => mix(x, p, [basic(x, `${p}.branch0`), basic(basic(x, `${p}.branch1.0`), `${p}.branch1.1`, 1, [1, 1]),
    basic(basic(basic(x, `${p}.branch2.0`), `${p}.branch2.1`, 1, [1, 1]), `${p}.branch2.2`, 1, [1, 1])], 0.17);
  const b17 = (x: T4, p: string): T4 => mix(x, p, [basic(x, `${p}.branch0`), basic(basic(basic(x, `${p}.branch1.0`), `${p}.branch1.1`, 1, [0, 3]), `${p}.branch1.2`, 1, [3, 0])], 0.1);
  const b8 = (x: T4, p: string, scale: number, relu: boolean): T4 => mix(x, p, [basic(x, `${p}.branch0`), basic(basic(basic(x, `${p}.branch1.0`), `${p}.branch1.1`, 1, [0, 1]), `${p}.branch1.2`, 1, [1, 0])], scale, relu);
  return (x) => tf.tidy(() => {
    let y = basic(basic(basic(x, 'conv2d_1a', 2), 'conv2d_2a'), 'conv2d_2b', 1, [1, 1]);
    y = tf.maxPool(y, 3, 2, 'valid');
    y = basic(basic(basic(y, 'conv2d_3b'), 'conv2d_4a'), 'conv2d_4b', 2);
    for (let i = 0; i < 5; i++) y = b35(y, `repeat_1.${i}`);
    y = tf.concat([basic(y, 'mixed_6a.branch0', 2), basic(basic(basic(y, 'mixed_6a.branch1.0'), 'mixed_6a.branch1.1', 1, [1, 1]), 'mixed_6a.branch1.2', 2), tf.maxPool(y, 3, 2, 'valid')], 3);
    for (let i = 0; i < 10; i++) y = b17(y, `repeat_2.${i}`);
    y = tf.concat([basic(basic(y, 'mixed_7a.branch0.0'), 'mixed_7a.branch0.1', 2), basic(basic(y, 'mixed_7a.branch1.0'), 'mixed_7a.branch1.1', 2),
      basic(basic(basic(y, 'mixed_7a.branch2.0'), 'mixed_7a.branch2.1', 1, [1, 1]), 'mixed_7a.branch2.2', 2), tf.maxPool(y, 3, 2, 'valid')], 3);
    for (let i = 0; i < 5; i++) y = b8(y, `repeat_3.${i}`, 0.2, true);
    y = b8(y, 'block8', 1, false);
    const v = tf.matMul(tf.mean(y, [1, 2]) as tf.Tensor2D, w('last_linear.weight') as tf.Tensor2D);
    const n = tf.batchNorm(v, w('last_bn.running_mean') as tf.Tensor1D, w('last_bn.running_var') as tf.Tensor1D, w('last_bn.bias') as tf.Tensor1D, w('last_bn.weight') as tf.Tensor1D, 1e-3);
    return tf.div(n, tf.norm(n, 2, 1, true));
  });
}

export function resnet34Tfjs(sd: SD): (x: T4) => tf.Tensor {
  const w = weights(sd);
  const conv = (x: T4, p: string, stride: number, relu: boolean): T4 => {
    let y = tf.conv2d(x, w(`${p}.conv.weight`) as T4, stride, stride === 1 ? 'same' : 'valid');
    y = tf.add(tf.mul(tf.add(y, w(`${p}.conv.bias`)), w(`${p}.scale.weight`)), w(`${p}.scale.bias`)) as T4;
    return relu ? tf.relu(y) : y;
  };
  const residual = (x: T4, p: string, down: boolean): T4 => {
    let out = conv(conv(x, `${p}.conv1`, down ? 2 : 1, true), `${p}.conv2`, 1, false);
    let short: T4 = x;
    if (down) {
      short = tf.avgPool(x, 2, 2, 'valid');
      if (out.shape[1] !== short.shape[1]) out = tf.pad(out, explicit(0, 1, 0, 1));
      if (short.shape[3] !== out.shape[3]) short = tf.concat([short, tf.zeros(short.shape)], 3);
    }
    return tf.relu(tf.add(out, short)) as T4;
  };
  const plan: [string, boolean][] = [['conv32_1', false], ['conv32_2', false], ['conv32_3', false], ['conv64_down', true], ['conv64_1', false], ['conv64_2', false], ['conv64_3', false],
    ['conv128_down', true], ['conv128_1', false], ['conv128_2', false], ['conv256_down', true], ['conv256_1', false], ['conv256_2', false], ['conv256_down_out', true]];
  return (x) => tf.tidy(() => {
    let y = tf.maxPool(conv(x, 'conv32_down', 2, true), 3, 2, 'valid');
    for (const [p, down] of plan) y = residual(y, p, down);
    return tf.matMul(tf.mean(y, [1, 2]) as tf.Tensor2D, w('fc.weight') as tf.Tensor2D);
  });
}
