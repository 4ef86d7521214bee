/**
 * Text prompts on the shown image (`sam-onnx serve --detector`): the server finds the boxes
 * (`text.ts`), then each box is decoded in the decoder worker exactly as a drawn box is, one after
 * the other, in the detector's order. The found objects stay shown until the person prompts with
 * clicks or a box, clears, or another image or decoder comes.
 */

import { type RefObject, useCallback, useRef, useState } from "react";

import type { Decoded, DecoderClient } from "../client";
import { type TextBox, detectText } from "../text";
import type { LoadedImage, ServerConfig } from "../sources";

/** A found object: the detector's box, phrase and score, and the decoder's mask for the box. */
export interface TextFound extends TextBox {
  result: Decoded;
}

export interface TextPrompt {
  /** The found objects of the last prompt, or null: none shown. */
  found: TextFound[] | null;
  /** What the status line says while the server detects or the page decodes, or null. */
  busy: string | null;
  /** Find `prompt`'s objects on `image` (`thresholds`: the page's URL options); errors go to the page's error list. */
  find: (prompt: string, image: LoadedImage, server: ServerConfig, thresholds: Record<string, string>) => Promise<void>;
  clear: () => void;
}

export function useTextPrompt(client: RefObject<DecoderClient | null>, report: (error: unknown) => void): TextPrompt {
  const [found, setFound] = useState<TextFound[] | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  // a newer prompt, image or clear makes an older prompt's late results stale
  const generation = useRef(0);
  const clear = useCallback(() => {
    generation.current++;
    setFound(null);
  }, []);

  const find = async (prompt: string, image: LoadedImage, server: ServerConfig, thresholds: Record<string, string>) => {
    if (!server.detector) return;
    const mine = ++generation.current;
    setFound(null);
    try {
      setBusy(`finding ${JSON.stringify(prompt)}`);
      const { boxes } = await detectText(server.detector, image, prompt, server.max_upload_bytes, thresholds);
      setBusy(`decoding ${boxes.length} box${boxes.length === 1 ? "" : "es"}`);
      const all: TextFound[] = [];
      for (const box of boxes) {
        const result = await client.current!.decode({ clicks: [], box: box.box }, null);
        all.push({ ...box, result });
      }
      if (mine === generation.current) setFound(all);
    } catch (error) {
      if (mine === generation.current) report(error);
    } finally {
      setBusy(null);
    }
  };
  return { found, busy, find, clear };
}
