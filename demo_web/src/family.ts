/**
 * The model families the page decodes, as data: what differs between SAM v1's decoder contract and
 * SAM 2's is which image features it takes, the frame of the point coordinates and where the box
 * corners and the padding point go. `prompt.ts` builds the feeds from this, `geometry.ts` scales
 * by `resize`; nothing else in the page branches on the family.
 *
 * The family comes from the decoder graph's metadata (`family`, `resize`), which `sam-onnx serve`
 * repeats in `api/config` and `sam-onnx bundle` in `bundle.json`; pages and bundles that predate
 * SAM 2 say nothing, which means SAM v1.
 */

import type { Resize } from "./geometry";

export type FamilyName = "sam" | "sam2";

/** One image-feature input of the decoder: its name (the graph's input name) and 1xCxHxW dims. */
export interface FeatureSpec {
  name: string;
  dims: readonly number[];
}

export interface Family {
  name: FamilyName;
  /** The image features the decoder takes, in the order of its inputs. */
  features: readonly FeatureSpec[];
  /** The frame of `point_coords`. */
  resize: Resize;
  /** Box corners (labels 2, 3) before the clicks (SAM 2) or after them (SAM v1). */
  boxFirst: boolean;
  /**
   * The page appends the padding point (0, 0) labelled -1 to a prompt without a box, as SAM v1's
   * official predictor does. SAM 2's graph appends it itself, always: the page must not.
   */
  padWithoutBox: boolean;
  /**
   * The single-mask rule of the family's `decoder.onnx`, which the page applies itself to the fast
   * decoder pair's four tokens (`fast_decoder.ts`). null (SAM v1): the official ONNX rule, argmax of
   * `iou + (N - 2.5) * 1000` on token 0 (N fed points, the padding point counted). SAM 2: token 0
   * unless its low-res stability `count(> delta) / count(> -delta)` is under `thresh`, then the best
   * IoU among tokens 1..3 (the SAM 2.1 variants' `dynamic_multimask_stability_*`).
   */
  stability: { delta: number; thresh: number } | null;
  /** Low-res logits the decoder returns to feed back are clamped to +-this (SAM 2), or not (null). */
  lowResClamp: number | null;
}

const IMAGE_EMBEDDINGS: FeatureSpec = { name: "image_embeddings", dims: [1, 256, 64, 64] };

export const FAMILIES: Readonly<Record<FamilyName, Family>> = {
  sam: {
    name: "sam",
    features: [IMAGE_EMBEDDINGS],
    resize: "long_side",
    boxFirst: false,
    padWithoutBox: true,
    stability: null,
    lowResClamp: null,
  },
  sam2: {
    name: "sam2",
    features: [
      IMAGE_EMBEDDINGS,
      { name: "high_res_feats_0", dims: [1, 32, 256, 256] },
      { name: "high_res_feats_1", dims: [1, 64, 128, 128] },
    ],
    resize: "square",
    boxFirst: true,
    padWithoutBox: false,
    stability: { delta: 0.05, thresh: 0.98 },
    lowResClamp: 32,
  },
};

/** Number of float32 values of a feature. */
export function featureSize(spec: FeatureSpec): number {
  return spec.dims.reduce((a, b) => a * b, 1);
}

/**
 * The family a server config or bundle names (`family`, `resize`; both absent: SAM v1). Throws a
 * RangeError naming `where` for an unknown family or a `resize` that is not the family's.
 */
export function familyOf(family: unknown, resize: unknown, where: string): Family {
  const name = family ?? "sam";
  if (typeof name !== "string" || !Object.hasOwn(FAMILIES, name)) {
    throw new RangeError(`${where}: expected family ${Object.keys(FAMILIES).join(" or ")}, got ${JSON.stringify(family)}`);
  }
  const found = FAMILIES[name as FamilyName];
  if (resize !== undefined && resize !== null && resize !== found.resize) {
    throw new RangeError(`${where}: family ${name} resizes "${found.resize}", got resize ${JSON.stringify(resize)}`);
  }
  return found;
}
