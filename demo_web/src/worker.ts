/// <reference lib="webworker" />
/**
 * The inference worker: holds the onnxruntime-web session of the single-mask decoder (SAM v1 or
 * SAM 2, as the page says) or the fast decoder pair's two sessions (`fast_decoder.ts`), the current
 * image's features (with the pair: its per-image tensors), decodes prompts, answers with the binary
 * mask. See `protocol.ts`.
 */

import * as ort from "onnxruntime-web/wasm";
import contract from "./contract.json";

import { CLICK_OUTPUTS, CLICK_PROMPT_INPUTS, type FastDecoderUrls, feedbackLowRes, singleMaskToken } from "./fast_decoder";
import { type Family, FAMILIES } from "./family";
import { binarize } from "./masks";
import { type DecoderFeeds, type ImageFeatures, decoderFeeds, decoderInputNames, featureFeeds, promptFeeds } from "./prompt";
import type { FromWorker, ToWorker } from "./protocol";
import type { HW } from "./geometry";
import { LOW_RES, upscaleMask } from "./upscale";

interface Pair {
  image: ort.InferenceSession;
  click: ort.InferenceSession;
}

/** The contract decoder's outputs and the click graph's, by name (`contract.json`). */
const [MASKS, IOU, LOW_RES_MASKS] = contract.decoder_outputs;
const [CLICK_LOGITS, CLICK_IOU] = CLICK_OUTPUTS;

// either the official-contract decoder or the fast pair is open, never both
let session: ort.InferenceSession | null = null;
let pair: Pair | null = null;
let family: Family = FAMILIES.sam;
let current: { features: ImageFeatures; orig: HW } | null = null;
// the pair's per-image tensors of `current`, by name (null until its image graph has run)
let imageTensors: Record<string, ort.Tensor> | null = null;
// onnxruntime-web's first runs of a fresh session take 2 to 4 times as long as later ones (in
// Node, ViT-B's click graph: 110-160 ms, then 35-50 ms from the third run on): the pair's click
// graph runs this many times on the first image's tensors before the page's first click
const WARM_UP_RUNS = 3;
let warmedUp = false;

function post(message: FromWorker, transfer: Transferable[] = []): void {
  (self as unknown as DedicatedWorkerGlobalScope).postMessage(message, transfer);
}

/** onnxruntime-web tensors of `feeds` (float32), by input name. */
function tensors(feeds: DecoderFeeds): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) out[name] = new ort.Tensor("float32", t.data, t.dims);
  return out;
}

async function openSession(url: string, what: string): Promise<ort.InferenceSession> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${what} ${url}: HTTP ${response.status} ${response.statusText}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  return ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
}

/** Whether `names` differs from `wanted` (as sets of distinct names). */
function mismatch(names: readonly string[], wanted: readonly string[]): boolean {
  return names.length !== wanted.length || wanted.some((name) => !names.includes(name));
}

async function openDecoder(url: string, wanted: Family): Promise<ort.InferenceSession> {
  const expected = decoderInputNames(wanted);
  const opened = await openSession(url, "decoder");
  if (mismatch(opened.inputNames, expected) || !opened.outputNames.includes(MASKS)) {
    await opened.release();
    throw new Error(
      `decoder ${url}: expected the ${wanted.name} decoder contract (inputs ${expected.join(", ")}; output masks), ` +
        `got inputs ${opened.inputNames.join(", ")} and outputs ${opened.outputNames.join(", ")}`,
    );
  }
  return opened;
}

/** The pair's two sessions, checked: the image graph takes the family's features, the click graph its outputs and the prompt. */
async function openPair(urls: FastDecoderUrls, wanted: Family): Promise<Pair> {
  const image = await openSession(urls.image, "fast decoder image graph");
  const click = await openSession(urls.click, "fast decoder click graph").catch(async (error) => {
    await image.release();
    throw error;
  });
  const features = wanted.features.map((f) => f.name);
  const clickInputs = [...image.outputNames, ...CLICK_PROMPT_INPUTS];
  const problems = [
    mismatch(image.inputNames, features) && `${urls.image}: expected inputs ${features.join(", ")}, got ${image.inputNames.join(", ")}`,
    mismatch(click.inputNames, clickInputs) &&
      `${urls.click}: expected inputs ${clickInputs.join(", ")} (the image graph's outputs and the prompt), got ${click.inputNames.join(", ")}`,
    CLICK_OUTPUTS.some((name) => !click.outputNames.includes(name)) &&
      `${urls.click}: expected outputs ${CLICK_OUTPUTS.join(", ")}, got ${click.outputNames.join(", ")}`,
  ].filter(Boolean);
  if (problems.length > 0) {
    await Promise.all([image.release(), click.release()]);
    throw new Error(`fast decoder pair for ${wanted.name}: ${problems.join("; ")}`);
  }
  return { image, click };
}

async function loadDecoder(message: Extract<ToWorker, { type: "load-decoder" }>): Promise<void> {
  const { url, threads, fast } = message;
  const wanted = FAMILIES[message.family];
  if (!wanted) throw new Error(`decoder ${url}: expected family ${Object.keys(FAMILIES).join(" or ")}, got ${message.family}`);
  const start = performance.now();
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.max(1, threads) : 1;
  const opened = fast ? { pair: await openPair(fast, wanted), session: null } : { pair: null, session: await openDecoder(url, wanted) };
  await Promise.all([session?.release(), pair?.image.release(), pair?.click.release()]);
  ({ session, pair } = opened);
  family = wanted;
  imageTensors = null;
  warmedUp = false;
  if (pair && current) {
    await runImageGraph(pair, current.features);
    await warmUp(pair, current.orig);
  }
  post({
    type: "decoder-ready",
    threads: ort.env.wasm.numThreads ?? 1,
    crossOriginIsolated: self.crossOriginIsolated,
    loadMs: performance.now() - start,
    inputs: [...(pair ? pair.click.inputNames : session!.inputNames)],
    decoder: pair ? "fast decoder pair" : (new URL(url).pathname.split("/").at(-1) ?? url),
  });
}

/** The pair's per-image tensors of `features` into `imageTensors`; returns the run's milliseconds. */
async function runImageGraph(opened: Pair, features: ImageFeatures): Promise<number> {
  const feeds = tensors(featureFeeds(features, family));
  const start = performance.now();
  imageTensors = await opened.image.run(feeds);
  return performance.now() - start;
}

/** The click graph's first runs (`WARM_UP_RUNS`, a click at the image's centre) on a fresh pair; returns their milliseconds (0 once done). */
async function warmUp(opened: Pair, orig: HW): Promise<number> {
  if (warmedUp || imageTensors === null) return 0;
  const centre = { clicks: [{ x: orig[1] / 2, y: orig[0] / 2, positive: true }], box: null };
  const feeds = { ...imageTensors, ...tensors(promptFeeds(centre, orig, null, family)) };
  const start = performance.now();
  for (let i = 0; i < WARM_UP_RUNS; i++) {
    for (const t of Object.values(await opened.click.run(feeds))) t.dispose();
  }
  warmedUp = true;
  return performance.now() - start;
}

async function setEmbedding(message: Extract<ToWorker, { type: "set-embedding" }>): Promise<void> {
  current = { features: message.features, orig: message.orig };
  imageTensors = null;
  const imageMs = pair ? await runImageGraph(pair, current.features) : 0;
  const warmUpMs = pair ? await warmUp(pair, current.orig) : 0;
  post({ type: "embedding-ready", imageMs, warmUpMs });
}

async function decode(message: Extract<ToWorker, { type: "decode" }>): Promise<void> {
  if (session === null && pair === null) throw new Error("no decoder loaded yet");
  if (current === null) throw new Error("no image embedding set yet");
  if (pair) return decodeFast(pair, current, message);
  if (session === null) throw new Error("no decoder loaded yet");
  const feeds = tensors(decoderFeeds(current.features, message.prompt, current.orig, message.maskInput, family));
  const start = performance.now();
  const out = await session.run(feeds);
  const runMs = performance.now() - start;
  const [h, w] = current.orig;
  const masks = out[MASKS];
  if (masks.dims.length !== 4 || masks.dims[2] !== h || masks.dims[3] !== w) {
    throw new Error(`decoder output masks: expected 1x1x${h}x${w}, got ${masks.dims.join("x")}`);
  }
  // a single-mask decoder gives one mask; a multimask one gives several, take the best score
  const scores = out[IOU].data as Float32Array;
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i] > scores[best]) best = i;
  const logits = (masks.data as Float32Array).subarray(best * h * w, (best + 1) * h * w);
  const lowResAll = out[LOW_RES_MASKS].data as Float32Array;
  const lowRes = lowResAll.slice(best * 256 * 256, (best + 1) * 256 * 256);
  const mask = binarize(logits);
  for (const t of Object.values(out)) t.dispose();
  post({ type: "decoded", id: message.id, mask, orig: [h, w], score: scores[best], lowRes, runMs, clickMs: runMs }, [
    mask.buffer,
    lowRes.buffer,
  ]);
}

/** One prompt through the pair: the click graph's four tokens, the single-mask token picked and only it upscaled. */
async function decodeFast(opened: Pair, image: { features: ImageFeatures; orig: HW }, message: Extract<ToWorker, { type: "decode" }>) {
  if (imageTensors === null) await runImageGraph(opened, image.features);
  const prompt = promptFeeds(message.prompt, image.orig, message.maskInput, family);
  const feeds = { ...imageTensors, ...tensors(prompt) };
  const start = performance.now();
  const out = await opened.click.run(feeds);
  const clickMs = performance.now() - start;
  const logits = out[CLICK_LOGITS];
  if (logits.dims.join("x") !== `1x4x${LOW_RES}x${LOW_RES}`) {
    throw new Error(`fast decoder click graph output low_res_logits: expected 1x4x256x256, got ${logits.dims.join("x")}`);
  }
  const allLowRes = logits.data as Float32Array;
  const scores = out[CLICK_IOU].data as Float32Array;
  const token = singleMaskToken(allLowRes, scores, prompt.point_labels.data.length, family);
  const picked = allLowRes.subarray(token * LOW_RES * LOW_RES, (token + 1) * LOW_RES * LOW_RES);
  const mask = upscaleMask(picked, image.orig, family.resize);
  const runMs = performance.now() - start;
  const lowRes = feedbackLowRes(picked, family);
  const score = scores[token];
  for (const t of Object.values(out)) t.dispose();
  post({ type: "decoded", id: message.id, mask, orig: image.orig, score, lowRes, runMs, clickMs }, [mask.buffer, lowRes.buffer]);
}

// onnxruntime's wasm threads run this same script in workers named "em-pthread"; leave those to it
const isThreadWorker = self.name.startsWith("em-pthread");

if (!isThreadWorker) self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  try {
    if (message.type === "load-decoder") await loadDecoder(message);
    else if (message.type === "set-embedding") await setEmbedding(message);
    else if (message.type === "decode") await decode(message);
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
