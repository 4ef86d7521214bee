/**
 * Prompts and the decoder's feeds, for either family's contract (see `family.ts`).
 *
 * Inputs (all float32): the image features (`image_embeddings` 1x256x64x64; SAM 2 also
 * `high_res_feats_0` 1x32x256x256 and `high_res_feats_1` 1x64x128x128); `point_coords` 1xNx2 (x, y)
 * in the family's 1024 frame; `point_labels` 1xN (1 positive, 0 negative, 2 box top-left, 3 box
 * bottom-right, -1 padding); `mask_input` 1x1x256x256; `has_mask_input` [1]; `orig_im_size` [2] =
 * (H, W). SAM v1: points first, then the box corners; without a box one padding point (0, 0)
 * labelled -1 is appended, as the official predictor does. SAM 2: the box corners first, then the
 * points, and no padding point (the graph appends it).
 */

import contract from "./contract.json";
import { type Family, FAMILIES, featureSize } from "./family";
import { type HW, type XY, toModelFrame } from "./geometry";

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

/** One image's features by decoder input name (`image_embeddings`, SAM 2's `high_res_feats_*`). */
export type ImageFeatures = Record<string, Float32Array>;

/** The decoder's feeds by input name: the family's features and the five prompt inputs. */
export type DecoderFeeds = Record<string, TensorData>;

/** Point coordinates (the family's 1024 frame) and labels for a prompt; throws on an empty prompt. */
export function promptPoints(
  prompt: Prompt,
  orig: HW,
  family: Family = FAMILIES.sam,
): { coords: Float32Array; labels: Float32Array } {
  if (prompt.clicks.length === 0 && prompt.box === null) {
    throw new RangeError("prompt: expected at least one point or a box, got neither");
  }
  const toFrame = (p: XY) => toModelFrame(p, orig, family.resize);
  const clicks: XY[] = prompt.clicks.map(toFrame);
  const clickLabels: number[] = prompt.clicks.map((c) => (c.positive ? 1 : 0));
  let corners: XY[] = [];
  let cornerLabels: number[] = [];
  if (prompt.box) {
    const { x0, y0, x1, y1 } = prompt.box;
    corners = [toFrame({ x: Math.min(x0, x1), y: Math.min(y0, y1) }), toFrame({ x: Math.max(x0, x1), y: Math.max(y0, y1) })];
    cornerLabels = [2, 3];
  } else if (family.padWithoutBox) {
    corners = [{ x: 0, y: 0 }];
    cornerLabels = [-1];
  }
  const points = family.boxFirst ? [...corners, ...clicks] : [...clicks, ...corners];
  const labels = family.boxFirst ? [...cornerLabels, ...clickLabels] : [...clickLabels, ...cornerLabels];
  const coords = new Float32Array(points.length * 2);
  points.forEach((p, i) => {
    coords[2 * i] = p.x;
    coords[2 * i + 1] = p.y;
  });
  return { coords, labels: Float32Array.from(labels) };
}

/** Throws a RangeError naming the first of the family's features that is missing or of the wrong size. */
export function checkFeatures(features: ImageFeatures, family: Family, what = "image features"): ImageFeatures {
  for (const spec of family.features) {
    const data = features[spec.name];
    const want = featureSize(spec);
    if (!(data instanceof Float32Array) || data.length !== want) {
      const got = data instanceof Float32Array ? `${data.length} floats` : "none";
      throw new RangeError(`${what}: ${spec.name}: expected ${want} floats (${spec.dims.join("x")}), got ${got}`);
    }
  }
  return features;
}

/**
 * The decoder's feeds. `features` holds the family's image features; `maskInput` is the previous
 * decode's 256x256 low-res logits (refinement), or null for none (zeros, `has_mask_input` 0).
 */
export function decoderFeeds(
  features: ImageFeatures,
  prompt: Prompt,
  orig: HW,
  maskInput: Float32Array | null,
  family: Family = FAMILIES.sam,
): DecoderFeeds {
  return {
    ...featureFeeds(features, family),
    ...promptFeeds(prompt, orig, maskInput, family),
    orig_im_size: { data: Float32Array.of(orig[0], orig[1]), dims: [2] },
  };
}

/** The image features alone, checked (`checkFeatures`): the feeds of the fast decoder pair's image graph. */
export function featureFeeds(features: ImageFeatures, family: Family = FAMILIES.sam): DecoderFeeds {
  checkFeatures(features, family);
  const feeds: DecoderFeeds = {};
  for (const spec of family.features) feeds[spec.name] = { data: features[spec.name], dims: [...spec.dims] };
  return feeds;
}

/**
 * The four prompt inputs alone (`point_coords`, `point_labels`, `mask_input`, `has_mask_input`):
 * what the fast decoder pair's click graph takes besides the per-image tensors.
 */
export function promptFeeds(prompt: Prompt, orig: HW, maskInput: Float32Array | null, family: Family = FAMILIES.sam): DecoderFeeds {
  if (maskInput !== null && maskInput.length !== LOW_RES * LOW_RES) {
    throw new RangeError(`mask_input: expected ${LOW_RES * LOW_RES} floats (256x256), got ${maskInput.length}`);
  }
  const { coords, labels } = promptPoints(prompt, orig, family);
  const n = labels.length;
  return {
    point_coords: { data: coords, dims: [1, n, 2] },
    point_labels: { data: labels, dims: [1, n] },
    mask_input: { data: maskInput ?? new Float32Array(LOW_RES * LOW_RES), dims: [1, 1, LOW_RES, LOW_RES] },
    has_mask_input: { data: Float32Array.of(maskInput ? 1 : 0), dims: [1] },
  };
}

/** The decoder's input names for a family: the features, the prompt inputs, `orig_im_size` (`contract.json`). */
export function decoderInputNames(family: Family): string[] {
  return [...family.features.map((f) => f.name), ...contract.prompt_inputs, contract.orig_im_size];
}
