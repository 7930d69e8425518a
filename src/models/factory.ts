/**
 * Architectures by id, so that converters, loaders and the CLI build the same module from a name.
 * Each architecture knows its state-dict layout (the module's own names) and, for embedding models,
 * its spec (src/models/specs.ts).
 */
import { ArgumentError } from '../errors.js';
import type { DType, Tensor } from '../tensor/tensor.js';
import type { Module } from '../nn/module.js';
import { Nn4Small2, type Nn4Variant } from './nn4_small2.js';
import { Nn2 } from './nn2.js';
import { InceptionResnetV1 } from './inception_resnet_v1.js';
import { ONet, PNet, RNet } from './mtcnn.js';
import { FaceRecognitionResNet34 } from './resnet34.js';
import { TinyFaceDetector } from './tiny_face_detector.js';
import { FaceLandmark68Net } from './landmarks68.js';

export interface BuildOptions {
  variant?: string;
  dtype?: DType;
  seed?: number;
  /** 'none': weights start at zero, not sampled, for a model whose state dict is loaded next (faster). */
  init?: 'random' | 'none';
}

/** A module whose forward maps a batch of images to whatever the architecture outputs. */
export type AnyModel = Module & { forward(x: Tensor): unknown };

const BUILDERS: Record<string, { variants?: string[]; build: (o: BuildOptions) => AnyModel }> = {
  'nn4.small2': { variants: ['torch', 'keras'], build: (o) => new Nn4Small2({ ...o, variant: (o.variant ?? 'torch') as Nn4Variant }) },
  nn2: { build: (o) => new Nn2(o) },
  'inception-resnet-v1': { build: (o) => new InceptionResnetV1(o) },
  'mtcnn-pnet': { build: (o) => new PNet(o) },
  'mtcnn-rnet': { build: (o) => new RNet(o) },
  'mtcnn-onet': { build: (o) => new ONet(o) },
  'dlib-resnet34': { build: (o) => new FaceRecognitionResNet34(o) },
  'tiny-face-detector': { build: (o) => new TinyFaceDetector(o) },
  'landmarks68': { build: (o) => new FaceLandmark68Net(o) },
};

export const ARCHITECTURES = Object.keys(BUILDERS);

export function buildModel(architecture: string, options: BuildOptions = {}): AnyModel {
  const b = BUILDERS[architecture];
  if (!b) throw new ArgumentError('buildModel', `unknown architecture '${architecture}'; known: ${ARCHITECTURES.join(', ')}`);
  if (options.variant !== undefined && !(b.variants ?? []).includes(options.variant)) {
    throw new ArgumentError('buildModel', `architecture '${architecture}' has no variant '${options.variant}'${b.variants ? ` (variants: ${b.variants.join(', ')})` : ''}`);
  }
  return b.build(options);
}

/** The default variant of an architecture, or undefined. */
export function defaultVariant(architecture: string): string | undefined {
  return BUILDERS[architecture]?.variants?.[0];
}
