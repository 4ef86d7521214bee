/**
 * The person's prompts on the shown image: the committed steps (each prompt with its decode, the
 * last one shown), the hover preview while nothing is committed, and refinement with the previous
 * mask.
 */

import { type RefObject, useCallback, useState } from "react";

import type { Decoded, DecoderClient } from "../client";
import type { XY } from "../geometry";
import type { Prompt } from "../prompt";

interface Step {
  prompt: Prompt;
  result: Decoded;
}

const EMPTY: Prompt = { clicks: [], box: null };

export interface Prompts {
  /** The last committed prompt (empty before the first). */
  prompt: Prompt;
  /** The mask shown: the last committed decode, else the hover preview, else null. */
  shown: Decoded | null;
  /** Whether `shown` is committed (else a preview). */
  committedShown: boolean;
  committed: number;
  refine: boolean;
  setRefine: (refine: boolean) => void;
  /** Decode `next` (with the previous mask when refining) and commit it. */
  commit: (next: Prompt) => Promise<void>;
  /** Preview one positive point at `at` (image pixels), while nothing is committed. */
  hover: (at: XY) => void;
  /** The pointer left the image: the preview goes, while nothing is committed. */
  leave: () => void;
  undo: () => void;
  /** No steps, no preview: a new image or decoder, or the Clear button. */
  clear: () => void;
}

export function usePrompts(client: RefObject<DecoderClient | null>, report: (error: unknown) => void): Prompts {
  const [steps, setSteps] = useState<Step[]>([]);
  const [preview, setPreview] = useState<Decoded | null>(null);
  const [refine, setRefine] = useState(true);
  const clear = useCallback(() => {
    setSteps([]);
    setPreview(null);
  }, []);

  const last = steps.at(-1) ?? null;

  const commit = async (next: Prompt) => {
    try {
      const result = await client.current!.decode(next, refine && last ? last.result.lowRes : null);
      setSteps((all) => [...all, { prompt: next, result }]);
      setPreview(null);
    } catch (error) {
      report(error);
    }
  };

  const hover = (at: XY) => {
    if (steps.length > 0) return;
    client.current!.preview({ clicks: [{ ...at, positive: true }], box: null }, null).then((r) => {
      if (r) setPreview(r);
    }, report);
  };

  return {
    prompt: last?.prompt ?? EMPTY,
    shown: last?.result ?? preview,
    committedShown: last !== null,
    committed: steps.length,
    refine,
    setRefine,
    commit,
    hover,
    leave: () => {
      if (steps.length === 0) setPreview(null);
    },
    undo: () => setSteps((all) => all.slice(0, -1)),
    clear,
  };
}
