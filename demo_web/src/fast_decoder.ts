/**
 * The fast decoder pair in the page (`sam-onnx bundle` names it in `bundle.json`'s `fast_decoder`;
 * the graphs are `sam_onnx/export/fast_decoder_graph.py`'s):
 *   `decoder_image.onnx`, once per image: the family's image features (`family.ts`) -> the
 *     per-image tensors (about 30 MB, float32), kept by the worker;
 *   `decoder_click.onnx`, per prompt: those tensors by name + `point_coords`, `point_labels`,
 *     `mask_input`, `has_mask_input` (as `prompt.ts`'s `promptFeeds`, no `orig_im_size`) ->
 *     `low_res_logits` 1x4x256x256 (all four mask tokens, token 0 first, not clamped) and
 *     `iou_predictions` 1x4.
 * The page then does what `decoder.onnx` would have done for its single mask: picks the token
 * (`singleMaskToken`), upscales that one mask (`upscale.ts`) and returns its low-res logits to
 * feed back (`feedbackLowRes`), as the Python runtime does (`runtime/core/decoders.py`'s `PairDecoder`, `SamPredictor`).
 */

import contract from "./contract.json";
import type { Family } from "./family";
import { LOW_RES } from "./upscale";

/** URLs of the pair's two graphs. */
export interface FastDecoderUrls {
  image: string;
  click: string;
}

/** The click graph's prompt inputs and its outputs, from the contract (`contract.json`). */
export const CLICK_PROMPT_INPUTS: readonly string[] = contract.prompt_inputs;
export const CLICK_OUTPUTS: readonly string[] = contract.click_outputs;

const TOKENS = 4;

/** `count(logit > delta) / count(logit > -delta)` of one 256x256 mask in float32 (1 when nothing passes `-delta`). */
export function stabilityScore(logits: Float32Array, delta: number): number {
  const hi = Math.fround(delta);
  const lo = -hi;
  let inter = 0;
  let union = 0;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > lo) {
      union++;
      if (v > hi) inter++;
    }
  }
  return union > 0 ? Math.fround(inter / union) : 1;
}

/** Index of the largest of `values[from..]`, the first on ties. */
function argmax(values: ArrayLike<number>, from = 0): number {
  let best = from;
  for (let i = from + 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/**
 * The token (0..3) `decoder.onnx` returns as its single mask, from the click graph's four tokens:
 * `lowRes` 4x256x256 float32 logits, `iou` 4 scores, `numPoints` the points fed (`point_labels`'
 * length: with SAM v1's padding point, without SAM 2's, which its graph appends). See `family.ts`.
 */
export function singleMaskToken(lowRes: Float32Array, iou: Float32Array, numPoints: number, family: Family): number {
  if (lowRes.length !== TOKENS * LOW_RES * LOW_RES || iou.length !== TOKENS) {
    throw new RangeError(`click graph outputs: expected 4x256x256 low-res logits and 4 scores, got ${lowRes.length} and ${iou.length} values`);
  }
  if (family.stability === null) {
    // the official ONNX rule in float32: token 0 forced with 3 or more points, pushed down with 1 or 2
    const scores = Float32Array.from(iou);
    scores[0] = Math.fround(scores[0] + Math.fround((numPoints - 2.5) * 1000));
    return argmax(scores);
  }
  const { delta, thresh } = family.stability;
  const stable = stabilityScore(lowRes.subarray(0, LOW_RES * LOW_RES), delta) >= Math.fround(thresh);
  return stable ? 0 : argmax(iou, 1);
}

/** A copy of one token's low-res logits as `decoder.onnx` returns them to feed back (SAM 2: clamped to +-32). */
export function feedbackLowRes(lowRes: Float32Array, family: Family): Float32Array {
  const out = lowRes.slice();
  const limit = family.lowResClamp;
  if (limit !== null) for (let i = 0; i < out.length; i++) out[i] = Math.min(limit, Math.max(-limit, out[i]));
  return out;
}
