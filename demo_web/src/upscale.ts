/**
 * Low-res mask logits (256x256) to the original image size, as the decoder graphs do: the fast
 * decoder pair's click graph stops at the low-res logits, and the page upscales only the mask it
 * picked. The same computation as the Python runtime's `sam_onnx/runtime/core/upscale.py`:
 *   `long_side` (SAM v1): bilinear (`align_corners=False`) x4 to the 1024 frame, crop to the
 *     resized image (long side 1024), bilinear to [H, W];
 *   `square` (SAM 2): bilinear straight from 256x256 to [H, W].
 * Both are separable: along each axis an output sample is a weighted sum of at most 4 (SAM v1) or
 * 2 (SAM 2) low-res samples (`axisTaps`). Columns are resized first (256 x W, small), then each
 * output row is a weighted sum of a few of those rows, a contiguous pass over W (no gathers per
 * pixel; about twice as fast as rows first at 480x640 in Node). Taps that read the same sample
 * are merged first, as the Python side's band matrices merge them. Weights and the intermediate
 * rows are float32, as in the graphs; results agree with them to about 1e-5, so thresholded masks
 * differ only where a logit is that close to 0.
 */

import { type HW, type Resize, LONG_SIDE, resizedHW } from "./geometry";

export const LOW_RES = 256;

/** torch's linear resize taps (`align_corners=False`) of each output sample: two input indexes and their weights. */
export interface LinearTaps {
  i0: Int32Array;
  i1: Int32Array;
  w0: Float32Array;
  w1: Float32Array;
}

/**
 * `sam_onnx.preprocess.linear_taps`: source `scale * (i + 0.5) - 0.5` with `scale` in float32,
 * the source rounded to float32 once (as torch's fused multiply-add), clamped at 0.
 */
export function linearTaps(inSize: number, outSize: number): LinearTaps {
  const scale = Math.fround(inSize / outSize); // = float32(in) / float32(out), correctly rounded
  const taps: LinearTaps = {
    i0: new Int32Array(outSize),
    i1: new Int32Array(outSize),
    w0: new Float32Array(outSize),
    w1: new Float32Array(outSize),
  };
  for (let i = 0; i < outSize; i++) {
    const src = Math.max(Math.fround(scale * (i + 0.5) - 0.5), 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const w1 = Math.min(Math.max(Math.fround(src - i0), 0), 1);
    taps.i0[i] = i0;
    taps.i1[i] = i0 < inSize - 1 ? i0 + 1 : i0;
    taps.w1[i] = w1;
    taps.w0[i] = 1 - w1;
  }
  return taps;
}

/** Along one axis, `k` low-res indexes and float32 weights (summing to 1) per output sample, row-major `out x k`. */
export interface AxisTaps {
  k: number;
  index: Int32Array;
  weight: Float32Array;
}

/**
 * `axis_taps`: the taps of `origSize` output samples. `resizedSize`: SAM v1's crop in the 1024
 * frame (k = 4: x4 to the frame, then the frame's first `resizedSize` samples to `origSize`);
 * null for SAM 2's direct resize (k = 2).
 */
export function axisTaps(origSize: number, resizedSize: number | null): AxisTaps {
  if (resizedSize === null) {
    const { i0, i1, w0, w1 } = linearTaps(LOW_RES, origSize);
    const index = new Int32Array(2 * origSize);
    const weight = new Float32Array(2 * origSize);
    for (let o = 0; o < origSize; o++) {
      index.set([i0[o], i1[o]], 2 * o);
      weight.set([w0[o], w1[o]], 2 * o);
    }
    return { k: 2, index, weight };
  }
  const a = linearTaps(LOW_RES, 4 * LOW_RES);
  const b = linearTaps(resizedSize, origSize);
  const index = new Int32Array(4 * origSize);
  const weight = new Float32Array(4 * origSize); // float32 products, as the Python side's
  for (let o = 0; o < origSize; o++) {
    const [b0, b1] = [b.i0[o], b.i1[o]];
    index.set([a.i0[b0], a.i1[b0], a.i0[b1], a.i1[b1]], 4 * o);
    weight.set([b.w0[o] * a.w0[b0], b.w0[o] * a.w1[b0], b.w1[o] * a.w0[b1], b.w1[o] * a.w1[b1]], 4 * o);
  }
  return { k: 4, index, weight };
}

/**
 * `taps` with the weights of equal indexes summed (float32), each output sample's distinct indexes
 * first and its unused slots at weight 0 on its first index: fewer reads for the same sums.
 */
export function mergedTaps(taps: AxisTaps): AxisTaps {
  const { k, index, weight } = taps;
  const outIndex = new Int32Array(index.length);
  const outWeight = new Float32Array(weight.length);
  for (let o = 0; o < index.length; o += k) {
    let n = 0;
    for (let t = o; t < o + k; t++) {
      let slot = o;
      while (slot < o + n && outIndex[slot] !== index[t]) slot++;
      if (slot === o + n) {
        outIndex[slot] = index[t];
        n++;
      }
      outWeight[slot] = Math.fround(outWeight[slot] + weight[t]);
    }
    for (let t = o + n; t < o + k; t++) outIndex[t] = outIndex[o];
  }
  return { k, index: outIndex, weight: outWeight };
}

/** Row taps (along H) and column taps (along W) for an image of size `orig` [H, W], merged (`mergedTaps`). */
export interface UpscaleTaps {
  orig: HW;
  rows: AxisTaps;
  cols: AxisTaps;
}

export function upscaleTaps(orig: HW, resize: Resize): UpscaleTaps {
  const [h, w] = orig;
  const [rh, rw] = resize === "square" ? [null, null] : resizedHW(orig, LONG_SIDE);
  return { orig, rows: mergedTaps(axisTaps(h, rh)), cols: mergedTaps(axisTaps(w, rw)) };
}

let cached: { key: string; taps: UpscaleTaps } | null = null;

/** `upscaleTaps`, kept for the last image: a person clicks many times on one. */
function tapsFor(orig: HW, resize: Resize): UpscaleTaps {
  const key = `${orig[0]}x${orig[1]}:${resize}`;
  if (cached?.key !== key) cached = { key, taps: upscaleTaps(orig, resize) };
  return cached.taps;
}

/** The columns resized: `256 x W` float32 from 256x256 `lowRes`. */
function resizeCols(lowRes: Float32Array, cols: AxisTaps, w: number): Float32Array {
  const partial = new Float32Array(LOW_RES * w);
  const { k, index, weight } = cols;
  for (let y = 0; y < LOW_RES; y++) {
    const src = y * LOW_RES;
    const out = y * w;
    if (k === 2) {
      for (let x = 0, t = 0; x < w; x++, t += 2) {
        partial[out + x] = weight[t] * lowRes[src + index[t]] + weight[t + 1] * lowRes[src + index[t + 1]];
      }
      continue;
    }
    for (let x = 0; x < w; x++) {
      let sum = 0;
      for (let t = x * k; t < (x + 1) * k; t++) sum += weight[t] * lowRes[src + index[t]];
      partial[out + x] = sum;
    }
  }
  return partial;
}

function checkLowRes(lowRes: Float32Array): void {
  if (lowRes.length !== LOW_RES * LOW_RES) {
    throw new RangeError(`low-res logits: expected ${LOW_RES * LOW_RES} floats (256x256), got ${lowRes.length}`);
  }
}

/**
 * Fill `out` (H x W at `orig` [H, W], row-major) from 256x256 `lowRes`: columns first (256 x W),
 * then each output row from the (at most 4) rows its taps read; float32 logits, or with
 * `threshold` 1 where the logit is above 0 and 0 elsewhere (as the Python runtime's `_resized`).
 */
function resized<T extends Float32Array | Uint8Array>(
  lowRes: Float32Array,
  orig: HW,
  resize: Resize,
  out: T,
  threshold: boolean,
): T {
  checkLowRes(lowRes);
  const { rows, cols } = tapsFor(orig, resize);
  const [h, w] = orig;
  const partial = resizeCols(lowRes, cols, w);
  const { k, index, weight } = rows;
  for (let y = 0; y < h; y++) {
    // up to 4 source rows (unused slots: weight 0 on the first), one pass over W
    const t = y * k;
    const last = t + k - 1;
    const [w0, w1, w2, w3] = [weight[t], weight[t + 1], k > 2 ? weight[t + 2] : 0, k > 3 ? weight[last] : 0];
    const [s0, s1, s2, s3] = [index[t] * w, index[t + 1] * w, index[k > 2 ? t + 2 : t] * w, index[last] * w];
    const base = y * w;
    for (let x = 0; x < w; x++) {
      const sum = w0 * partial[s0 + x] + w1 * partial[s1 + x] + w2 * partial[s2 + x] + w3 * partial[s3 + x];
      out[base + x] = threshold ? (Math.fround(sum) > 0 ? 1 : 0) : sum;
    }
  }
  return out;
}

/** 256x256 float32 logits -> H x W float32 logits at `orig` [H, W], row-major (`upscale_logits`). */
export function upscaleLogits(lowRes: Float32Array, orig: HW, resize: Resize): Float32Array {
  return resized(lowRes, orig, resize, new Float32Array(orig[0] * orig[1]), false);
}

/**
 * 256x256 float32 logits -> H x W mask at `orig` [H, W], 1 where the upscaled logit is above 0
 * (`upscale_masks`), without holding the float32 logits.
 */
export function upscaleMask(lowRes: Float32Array, orig: HW, resize: Resize): Uint8Array {
  return resized(lowRes, orig, resize, new Uint8Array(orig[0] * orig[1]), true);
}
