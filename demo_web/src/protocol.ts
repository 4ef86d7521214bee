/**
 * Messages between the page and the inference worker. Every request that can fail is answered,
 * either by its result or by an `error` message naming the request; the worker never throws
 * into the void.
 */

import type { FamilyName } from "./family";
import type { HW } from "./geometry";
import type { ImageFeatures, Prompt } from "./prompt";

export type ToWorker =
  /**
   * Open the decoder at `url` (absolute: a worker resolves relative URLs against its own script).
   * `threads`: wasm threads wanted (honoured only when cross-origin isolated). `family`: the
   * decoder's contract (its metadata `family`), which sets the feeds it gets.
   */
  | { type: "load-decoder"; url: string; threads: number; family: FamilyName }
  /** The image's features (float32, transferred; see `family.ts`) and its original size. */
  | { type: "set-embedding"; features: ImageFeatures; orig: HW }
  /** Decode one prompt; `maskInput`: previous low-res logits (256x256) to refine, or null. */
  | { type: "decode"; id: number; prompt: Prompt; maskInput: Float32Array | null };

export type FromWorker =
  | { type: "decoder-ready"; threads: number; crossOriginIsolated: boolean; loadMs: number; inputs: string[] }
  | { type: "embedding-ready" }
  | {
      type: "decoded";
      id: number;
      /** H x W, 1 inside the mask (logit > 0), row-major, original size. */
      mask: Uint8Array;
      orig: HW;
      score: number;
      /** 1x1x256x256 low-res logits, to feed back as `maskInput`. */
      lowRes: Float32Array;
      /** Time in `session.run`, milliseconds. */
      runMs: number;
    }
  | { type: "error"; request: ToWorker["type"]; id?: number; message: string };
