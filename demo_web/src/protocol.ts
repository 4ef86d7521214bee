/**
 * Messages between the page and the inference worker. Every request that can fail is answered,
 * either by its result or by an `error` message naming the request; the worker never throws
 * into the void.
 */

import type { FastDecoderUrls } from "./fast_decoder";
import type { FamilyName } from "./family";
import type { HW } from "./geometry";
import type { ImageFeatures, Prompt } from "./prompt";

export type ToWorker =
  /**
   * Open the decoder at `url` (absolute: a worker resolves relative URLs against its own script).
   * `threads`: wasm threads wanted (honoured only when cross-origin isolated). `family`: the
   * decoder's contract (its metadata `family`), which sets the feeds it gets. `fast`: the fast
   * decoder pair's graphs (absolute URLs), run instead of `url` when given (`fast_decoder.ts`).
   */
  | { type: "load-decoder"; url: string; threads: number; family: FamilyName; fast: FastDecoderUrls | null }
  /** The image's features (float32, transferred; see `family.ts`) and its original size. */
  | { type: "set-embedding"; features: ImageFeatures; orig: HW }
  /** Decode one prompt; `maskInput`: previous low-res logits (256x256) to refine, or null. */
  | { type: "decode"; id: number; prompt: Prompt; maskInput: Float32Array | null };

export type FromWorker =
  | {
      type: "decoder-ready";
      threads: number;
      crossOriginIsolated: boolean;
      loadMs: number;
      inputs: string[];
      /** What decodes each prompt: "fast decoder pair", or the decoder's file name ("decoder.onnx"). */
      decoder: string;
    }
  /** `imageMs`: the fast pair's per-image graph run on these features (0 without the pair);
   * `warmUpMs`: the click graph's warm-up runs on a fresh pair's first image (0 otherwise). */
  | { type: "embedding-ready"; imageMs: number; warmUpMs: number }
  | {
      type: "decoded";
      id: number;
      /** H x W, 1 inside the mask (logit > 0), row-major, original size. */
      mask: Uint8Array;
      orig: HW;
      score: number;
      /** 1x1x256x256 low-res logits, to feed back as `maskInput`. */
      lowRes: Float32Array;
      /**
       * The whole decode, milliseconds: `session.run` of `decoder.onnx`, or with the fast pair its
       * click graph's run, the token pick and the upscaling.
       */
      runMs: number;
      /** Time in `session.run` alone (`decoder.onnx`'s, or the click graph's), milliseconds. */
      clickMs: number;
    }
  | { type: "error"; request: ToWorker["type"]; id?: number; message: string };
