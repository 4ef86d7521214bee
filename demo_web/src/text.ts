/**
 * Text prompts (`sam-onnx serve --detector`): the server finds the boxes of a prompt such as
 * "a cat. a remote." on the shown image (`POST api/detect`, Grounding DINO in the Python runtime);
 * the page then decodes each box as it decodes a drawn one (`useTextPrompt.ts`).
 *
 * The request sends the image's own bytes (the upload, or the bundle's image file) with the prompt
 * in the URL's query; the answer's boxes are in original-image pixels (x0, y0, x1, y1), in the
 * detector's order, each with its score and phrase. A prompt the detector refuses (empty, only
 * separators, too long, words it cannot spell) and a prompt that finds nothing come back as typed
 * errors whose message the page shows as it is (the server names the best score seen).
 */

import type { HW } from "./geometry";
import type { Box } from "./prompt";
import { type LoadedImage, SourceError } from "./sources";

/** One box the detector found: its phrase, its score (best token probability) and the box. */
export interface TextBox {
  label: string;
  score: number;
  box: Box;
}

export interface TextBoxes {
  prompt: string;
  boxes: TextBox[];
}

/** One palette colour per found object (tab10, as the Python overlay of `predict --text`). */
export const TEXT_COLOURS: readonly (readonly [number, number, number])[] = [
  [31, 119, 180],
  [255, 127, 14],
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
];

/** The colour of the `i`-th found object. */
export function textColour(i: number): readonly [number, number, number] {
  return TEXT_COLOURS[i % TEXT_COLOURS.length];
}

/**
 * Ask the server's detector (`url`: the config's `detector`) for the boxes of `prompt` on `image`;
 * `thresholds`: `box_threshold` and `text_threshold` where the page's URL gives them (the
 * server's defaults otherwise). Throws a SourceError with the server's message (nothing found, a
 * refused prompt or threshold, ...).
 */
export async function detectText(
  url: string,
  image: LoadedImage,
  prompt: string,
  maxUploadBytes: number,
  thresholds: Record<string, string> = {},
): Promise<TextBoxes> {
  if (!prompt.trim()) throw new SourceError("text prompt: type one or more phrases ended by '.', e.g. 'a cat. a remote.'");
  const blob = await (await fetch(image.url)).blob();
  if (blob.size > maxUploadBytes) {
    throw new SourceError(`${image.name}: ${(blob.size / 2 ** 20).toFixed(1)} MiB is over the server's upload limit`);
  }
  const query = new URLSearchParams({ text: prompt, ...thresholds });
  const response = await fetch(`${url}?${query}`, {
    method: "POST",
    headers: { "Content-Type": blob.type || "application/octet-stream", "X-File-Name": encodeURIComponent(image.name) },
    body: blob,
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new SourceError(body?.error?.message ?? `text prompt ${JSON.stringify(prompt)}: HTTP ${response.status} ${response.statusText}`);
  }
  return parseTextBoxes(body, image.orig);
}

/** The answer of `api/detect`, checked: boxes of four finite numbers, a score and a label each. */
export function parseTextBoxes(body: unknown, orig: HW): TextBoxes {
  const b = body as { prompt?: unknown; boxes_xyxy?: unknown; scores?: unknown; labels?: unknown; orig_hw?: unknown };
  const boxes = b?.boxes_xyxy;
  const scores = b?.scores;
  const labels = b?.labels;
  if (!Array.isArray(boxes) || !Array.isArray(scores) || !Array.isArray(labels) || boxes.length !== scores.length || boxes.length !== labels.length) {
    throw new SourceError(`api/detect: expected boxes_xyxy, scores and labels of one length, got ${JSON.stringify(body).slice(0, 200)}`);
  }
  if (Array.isArray(b.orig_hw) && (b.orig_hw[0] !== orig[0] || b.orig_hw[1] !== orig[1])) {
    throw new SourceError(`api/detect: boxes for an image of ${b.orig_hw.join("x")} (HxW), the page shows ${orig.join("x")}`);
  }
  return {
    prompt: String(b.prompt ?? ""),
    boxes: boxes.map((xyxy, i) => {
      if (!Array.isArray(xyxy) || xyxy.length !== 4 || !xyxy.every(Number.isFinite) || !Number.isFinite(scores[i])) {
        throw new SourceError(`api/detect: box ${i}: expected four numbers and a score, got ${JSON.stringify([xyxy, scores[i]])}`);
      }
      const [x0, y0, x1, y1] = xyxy as number[];
      return { label: String(labels[i]), score: scores[i] as number, box: { x0, y0, x1, y1 } };
    }),
  };
}
