/// <reference lib="webworker" />
/**
 * The inference worker: holds the onnxruntime-web session of the single-mask decoder (SAM v1 or
 * SAM 2, as the page says), the current image's features, decodes prompts, answers with the binary
 * mask. See `protocol.ts`.
 */

import * as ort from "onnxruntime-web/wasm";

import { type Family, FAMILIES, type FamilyName } from "./family";
import { binarize } from "./masks";
import { type ImageFeatures, decoderFeeds, decoderInputNames } from "./prompt";
import type { FromWorker, ToWorker } from "./protocol";
import type { HW } from "./geometry";

let session: ort.InferenceSession | null = null;
let family: Family = FAMILIES.sam;
let current: { features: ImageFeatures; orig: HW } | null = null;

function post(message: FromWorker, transfer: Transferable[] = []): void {
  (self as unknown as DedicatedWorkerGlobalScope).postMessage(message, transfer);
}

async function loadDecoder(url: string, threads: number, familyName: FamilyName): Promise<void> {
  const wanted = FAMILIES[familyName];
  if (!wanted) throw new Error(`decoder ${url}: expected family ${Object.keys(FAMILIES).join(" or ")}, got ${familyName}`);
  const expected = decoderInputNames(wanted);
  const start = performance.now();
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.max(1, threads) : 1;
  const response = await fetch(url);
  if (!response.ok) throw new Error(`decoder ${url}: HTTP ${response.status} ${response.statusText}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const opened = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  const missing = expected.filter((name) => !opened.inputNames.includes(name));
  if (missing.length > 0 || opened.inputNames.length !== expected.length || !opened.outputNames.includes("masks")) {
    await opened.release();
    throw new Error(
      `decoder ${url}: expected the ${familyName} decoder contract (inputs ${expected.join(", ")}; output masks), ` +
        `got inputs ${opened.inputNames.join(", ")} and outputs ${opened.outputNames.join(", ")}`,
    );
  }
  await session?.release();
  session = opened;
  family = wanted;
  post({
    type: "decoder-ready",
    threads: ort.env.wasm.numThreads ?? 1,
    crossOriginIsolated: self.crossOriginIsolated,
    loadMs: performance.now() - start,
    inputs: [...opened.inputNames],
  });
}

async function decode(message: Extract<ToWorker, { type: "decode" }>): Promise<void> {
  if (session === null) throw new Error("no decoder loaded yet");
  if (current === null) throw new Error("no image embedding set yet");
  const feeds = decoderFeeds(current.features, message.prompt, current.orig, message.maskInput, family);
  const tensors: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) tensors[name] = new ort.Tensor("float32", t.data, t.dims);
  const start = performance.now();
  const out = await session.run(tensors);
  const runMs = performance.now() - start;
  const [h, w] = current.orig;
  const masks = out.masks;
  if (masks.dims.length !== 4 || masks.dims[2] !== h || masks.dims[3] !== w) {
    throw new Error(`decoder output masks: expected 1x1x${h}x${w}, got ${masks.dims.join("x")}`);
  }
  // a single-mask decoder gives one mask; a multimask one gives several, take the best score
  const scores = out.iou_predictions.data as Float32Array;
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i] > scores[best]) best = i;
  const logits = (masks.data as Float32Array).subarray(best * h * w, (best + 1) * h * w);
  const lowResAll = out.low_res_masks.data as Float32Array;
  const lowRes = lowResAll.slice(best * 256 * 256, (best + 1) * 256 * 256);
  const mask = binarize(logits);
  for (const t of Object.values(out)) t.dispose();
  post({ type: "decoded", id: message.id, mask, orig: [h, w], score: scores[best], lowRes, runMs }, [
    mask.buffer,
    lowRes.buffer,
  ]);
}

// onnxruntime's wasm threads run this same script in workers named "em-pthread"; leave those to it
const isThreadWorker = self.name.startsWith("em-pthread");

if (!isThreadWorker) self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  try {
    if (message.type === "load-decoder") await loadDecoder(message.url, message.threads, message.family);
    else if (message.type === "set-embedding") {
      current = { features: message.features, orig: message.orig };
      post({ type: "embedding-ready" });
    } else if (message.type === "decode") await decode(message);
    else throw new Error(`unknown request ${JSON.stringify((message as { type?: unknown }).type)}`);
  } catch (error) {
    post({
      type: "error",
      request: message.type,
      id: message.type === "decode" ? message.id : undefined,
      message: error instanceof Error ? error.message : String(error),
    });
  }
};
