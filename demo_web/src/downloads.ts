/**
 * What the page lets the person save: the cut-out under the mask (PNG) and the image's embedding
 * (`.npy`, as `numpy.save` writes it). Both go through one `download`.
 */

import { cutout } from "./masks";
import { toNpy } from "./npy";
import type { LoadedImage } from "./sources";

/** `imageName` without its extension, then `suffix`: ("photo.jpg", "_cutout.png") → "photo_cutout.png". */
export function downloadName(imageName: string, suffix: string): string {
  return `${imageName.replace(/\.[^.]*$/, "")}${suffix}`;
}

/** Hand `blob` to the browser as a download named `fileName`. */
export function download(blob: Blob, fileName: string): void {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = fileName;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

/**
 * The image's embedding as a `.npy` file: its family's first feature (`image_embeddings`), with
 * the dims the family gives it (1x256x64x64 for SAM v1 and SAM 2).
 */
export function embeddingNpy(image: LoadedImage): Uint8Array<ArrayBuffer> {
  const spec = image.family.features[0];
  return toNpy(image.features[spec.name], spec.dims);
}

/** Download the image's embedding (`NAME_embedding.npy`). */
export function downloadEmbedding(image: LoadedImage): void {
  download(new Blob([embeddingNpy(image)], { type: "application/octet-stream" }), downloadName(image.name, "_embedding.npy"));
}

/** Download the image's pixels under `mask` (H x W, 1 inside), transparent elsewhere (`NAME_cutout.png`). */
export async function downloadCutout(image: LoadedImage, pixels: ImageData, mask: Uint8Array): Promise<void> {
  const [h, w] = image.orig;
  const canvas = new OffscreenCanvas(w, h);
  canvas.getContext("2d")!.putImageData(new ImageData(cutout(pixels.data, mask, h, w), w, h), 0, 0);
  download(await canvas.convertToBlob({ type: "image/png" }), downloadName(image.name, "_cutout.png"));
}
