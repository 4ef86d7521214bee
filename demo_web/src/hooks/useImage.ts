/**
 * The image shown: its features handed to the decoder worker, its pixels (for the cut-out), and
 * the checks that it belongs to the decoder (its family, its checkpoint, its size).
 */

import { type RefObject, useCallback, useState } from "react";

import type { DecoderClient } from "../client";
import type { Family } from "../family";
import type { LoadedImage } from "../sources";

/** Show `loaded`; throws when its family is not `decoderFamily` or its checkpoint not `expectedSha` (null: any). */
export type ShowImage = (loaded: LoadedImage, expectedSha: string | null, decoderFamily: Family) => Promise<void>;

/** `onShown`: called once the image is shown (its prompts start afresh). */
export function useImage(
  client: RefObject<DecoderClient | null>,
  onShown: () => void,
): { image: LoadedImage | null; pixels: ImageData | null; showImage: ShowImage } {
  const [image, setImage] = useState<LoadedImage | null>(null);
  const [pixels, setPixels] = useState<ImageData | null>(null);

  const showImage = useCallback<ShowImage>(
    async (loaded, expectedSha, decoderFamily) => {
      checkBelongs(loaded, expectedSha, decoderFamily);
      await client.current!.setEmbedding(loaded.features, loaded.orig);
      setPixels(await decodePixels(loaded));
      setImage(loaded);
      onShown();
    },
    [client, onShown],
  );
  return { image, pixels, showImage };
}

function checkBelongs(loaded: LoadedImage, expectedSha: string | null, decoderFamily: Family): void {
  if (loaded.family !== decoderFamily) {
    throw new Error(`${loaded.name}: its features are for family ${loaded.family.name}, the decoder is ${decoderFamily.name}`);
  }
  if (expectedSha && loaded.checkpointSha256 !== expectedSha) {
    throw new Error(
      `${loaded.name}: its embedding comes from checkpoint ${loaded.checkpointSha256.slice(0, 12)}…, the decoder from ${expectedSha.slice(0, 12)}…`,
    );
  }
}

/** The image's RGBA pixels at its own size; throws when the browser cannot decode it or its size is not `orig`. */
async function decodePixels(loaded: LoadedImage): Promise<ImageData> {
  const img = new Image();
  img.src = loaded.url;
  await img.decode().catch(() => {
    throw new Error(`${loaded.name}: the browser could not decode the image`);
  });
  const [h, w] = loaded.orig;
  if (img.naturalHeight !== h || img.naturalWidth !== w) {
    throw new Error(`${loaded.name}: the image is ${img.naturalWidth}x${img.naturalHeight} (WxH), its embedding is for ${w}x${h}`);
  }
  const canvas = new OffscreenCanvas(w, h);
  const ctx = canvas.getContext("2d")!;
  ctx.drawImage(img, 0, 0);
  return ctx.getImageData(0, 0, w, h);
}
