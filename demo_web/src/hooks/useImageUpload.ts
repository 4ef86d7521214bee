/**
 * An image the person drops or chooses: embedded by the page's own encoder when the bundle has
 * one, else by the server (`api/embed`); a static page without an encoder says it cannot.
 */

import { useState } from "react";

import { type ServerConfig, embedUpload } from "../sources";
import type { ShowImage } from "./useImage";

interface UploadParts {
  /** Settles when the start is over, with the server's config (null: none). */
  started: () => Promise<ServerConfig | null>;
  encoder: { available: () => boolean; encode: (file: File) => Promise<void> };
  showImage: ShowImage;
  report: (error: unknown) => void;
}

export function useImageUpload({ started, encoder, showImage, report }: UploadParts): {
  upload: (file: File | undefined) => Promise<void>;
  /** What the status line says while the server embeds an image, or null. */
  busy: string | null;
} {
  const [busy, setBusy] = useState<string | null>(null);

  const upload = async (file: File | undefined) => {
    if (!file) return;
    const server = await started();
    if (encoder.available()) {
      await encoder.encode(file);
      return;
    }
    if (!server) {
      report(
        new Error(
          "this page was opened from a static bundle without an encoder; run `sam-onnx serve`, or make the bundle with --with-encoder, to segment your own images",
        ),
      );
      return;
    }
    setBusy(`embedding ${file.name}`);
    try {
      // the server's family, not the page's state: an upload can come before the decoder is loaded
      await showImage(await embedUpload(file, server), server.checkpoint_sha256, server.family);
    } catch (error) {
      report(error);
    } finally {
      setBusy(null);
    }
  };
  return { upload, busy };
}
