/**
 * Messages between the page and the encoder worker (`encoder_worker.ts`), which embeds the
 * person's own images in the page. Every request is answered by its result or by an `error`
 * naming it; an `encode` answer carries the `generation` it was asked with, so that the page can
 * tell a stale answer from the one it waits for.
 */

import type { EngineName } from "./engine";
import type { FamilyName } from "./family";
import type { HW } from "./geometry";
import type { ImageFeatures } from "./prompt";

/** The family whose images the encoder worker embeds: SAM v1's preprocessing, `image_embeddings` only. */
export const ENCODER_FAMILY: FamilyName = "sam";

export type ToEncoder =
  /**
   * Open the encoder graph at `url` (absolute) on `engine`; `threads`: wasm threads wanted
   * (honoured only when cross-origin isolated).
   */
  | { type: "load-encoder"; url: string; engine: EngineName; threads: number }
  /** Embed one image file (any format the browser decodes; EXIF orientation applied). */
  | { type: "encode"; generation: number; image: Blob; name: string };

/** The encoder graph's input: `image` (normalised and padded, 1x3x1024x1024 float32) or `resized_image` (h x w x 3 uint8). */
export type EncoderInput = "image" | "resized_image";

export type FromEncoder =
  | { type: "encoder-ready"; engine: EngineName; threads: number; loadMs: number; input: EncoderInput }
  | {
      type: "encoded";
      generation: number;
      /** `image_embeddings` 1x256x64x64 float32. */
      features: ImageFeatures;
      /** The decoded image's size [H, W]. */
      orig: HW;
      /** Decoding, resizing and normalising the image, milliseconds. */
      preprocessMs: number;
      /** Time in the encoder's `session.run`, milliseconds. */
      encodeMs: number;
    }
  | { type: "error"; request: ToEncoder["type"]; generation?: number; message: string };
