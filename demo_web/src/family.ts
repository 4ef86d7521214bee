/**
 * The model families the page decodes, as data: what differs between SAM v1's decoder contract and
 * SAM 2's is which image features it takes, the frame of the point coordinates and where the box
 * corners and the padding point go. `prompt.ts` builds the feeds from this, `geometry.ts` scales
 * by `resize`; nothing else in the page branches on the family.
 *
 * The family comes from the decoder graph's metadata (`family`, `resize`), which `sam-onnx serve`
 * repeats in `api/config` and `sam-onnx bundle` in `bundle.json`; pages and bundles that predate
 * SAM 2 say nothing, which means SAM v1.
 *
 * The records are not written here: they are read from `contract.json`, which
 * `python -m sam_onnx.web_contract` generates from the Python family records (a Python test fails
 * when the committed copy is stale), so the page and the runtime cannot disagree on a name or shape.
 */

import contract from "./contract.json";
import type { Resize } from "./geometry";

/** The family names, as `sam_onnx/families.py` declares them (`contract.json`). */
export type FamilyName = keyof typeof contract.families;

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

/** A family as `contract.json` spells it (Python's field names). */
interface ContractFamily {
  features: FeatureSpec[];
  resize: string;
  box_first: boolean;
  pad_without_box: boolean;
  stability: { delta: number; thresh: number } | null;
  low_res_clamp: number | null;
}

const RESIZES: readonly Resize[] = ["long_side", "square"];

function fromContract(name: FamilyName, raw: ContractFamily): Family {
  if (!(RESIZES as readonly string[]).includes(raw.resize)) {
    throw new RangeError(`contract.json family ${name}: expected resize ${RESIZES.join(" or ")}, got ${JSON.stringify(raw.resize)}`);
  }
  return {
    name,
    features: raw.features,
    resize: raw.resize as Resize,
    boxFirst: raw.box_first,
    padWithoutBox: raw.pad_without_box,
    stability: raw.stability,
    lowResClamp: raw.low_res_clamp,
  };
}

const CONTRACT_FAMILIES: Record<FamilyName, ContractFamily> = contract.families;

export const FAMILIES: Readonly<Record<FamilyName, Family>> = Object.fromEntries(
  (Object.keys(CONTRACT_FAMILIES) as FamilyName[]).map((name) => [name, fromContract(name, CONTRACT_FAMILIES[name])]),
) as Record<FamilyName, Family>;

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
