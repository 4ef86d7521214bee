/**
 * Prompts and the six feeds of the official SAM ONNX decoder contract.
 *
 * Inputs (all float32): `image_embeddings` 1x256x64x64; `point_coords` 1xNx2 (x, y) in the 1024
 * frame; `point_labels` 1xN (1 positive, 0 negative, 2 box top-left, 3 box bottom-right,
 * -1 padding); `mask_input` 1x1x256x256; `has_mask_input` [1]; `orig_im_size` [2] = (H, W).
 * Points come first, then the box corners; without a box one padding point (0, 0) labelled -1 is
 * appended, as the official predictor does.
 */

import { type HW, type XY, toModelFrame } from "./geometry";

export const EMBEDDING_DIMS = [1, 256, 64, 64] as const;
export const EMBEDDING_SIZE = 256 * 64 * 64;
export const LOW_RES = 256;

export interface Click extends XY {
  positive: boolean;
}

/** A box in original-image pixels, corners in any order. */
export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export interface Prompt {
  clicks: readonly Click[];
  box: Box | null;
}

/** A float32 tensor as plain data: the worker wraps it into an `ort.Tensor`. */
export interface TensorData {
  data: Float32Array;
  dims: number[];
}

export type DecoderFeeds = Record<
  "image_embeddings" | "point_coords" | "point_labels" | "mask_input" | "has_mask_input" | "orig_im_size",
  TensorData
>;

/** Point coordinates (1024 frame) and labels for a prompt; throws on an empty prompt. */
export function promptPoints(prompt: Prompt, orig: HW): { coords: Float32Array; labels: Float32Array } {
  if (prompt.clicks.length === 0 && prompt.box === null) {
    throw new RangeError("prompt: expected at least one point or a box, got neither");
  }
  const points: XY[] = prompt.clicks.map((c) => toModelFrame(c, orig));
  const labels: number[] = prompt.clicks.map((c) => (c.positive ? 1 : 0));
  if (prompt.box) {
    const { x0, y0, x1, y1 } = prompt.box;
    points.push(toModelFrame({ x: Math.min(x0, x1), y: Math.min(y0, y1) }, orig));
    points.push(toModelFrame({ x: Math.max(x0, x1), y: Math.max(y0, y1) }, orig));
    labels.push(2, 3);
  } else {
    points.push({ x: 0, y: 0 });
    labels.push(-1);
  }
  const coords = new Float32Array(points.length * 2);
  points.forEach((p, i) => {
    coords[2 * i] = p.x;
    coords[2 * i + 1] = p.y;
  });
  return { coords, labels: Float32Array.from(labels) };
}

/**
 * The decoder's feeds. `maskInput` is the previous decode's 256x256 low-res logits (refinement),
 * or null for none (zeros, `has_mask_input` 0).
 */
export function decoderFeeds(
  embedding: Float32Array,
  prompt: Prompt,
  orig: HW,
  maskInput: Float32Array | null,
): DecoderFeeds {
  if (embedding.length !== EMBEDDING_SIZE) {
    throw new RangeError(`image_embeddings: expected ${EMBEDDING_SIZE} floats (1x256x64x64), got ${embedding.length}`);
  }
  if (maskInput !== null && maskInput.length !== LOW_RES * LOW_RES) {
    throw new RangeError(`mask_input: expected ${LOW_RES * LOW_RES} floats (256x256), got ${maskInput.length}`);
  }
  const { coords, labels } = promptPoints(prompt, orig);
  const n = labels.length;
  return {
    image_embeddings: { data: embedding, dims: [...EMBEDDING_DIMS] },
    point_coords: { data: coords, dims: [1, n, 2] },
    point_labels: { data: labels, dims: [1, n] },
    mask_input: { data: maskInput ?? new Float32Array(LOW_RES * LOW_RES), dims: [1, 1, LOW_RES, LOW_RES] },
    has_mask_input: { data: Float32Array.of(maskInput ? 1 : 0), dims: [1] },
    orig_im_size: { data: Float32Array.of(orig[0], orig[1]), dims: [2] },
  };
}
