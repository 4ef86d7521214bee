/**
 * The page's side of the worker protocol: promises for requests, decodes run one at a time in
 * order, and a "latest wins" slot for hover previews so the page never queues stale ones.
 */

import type { FastDecoderUrls } from "./fast_decoder";
import type { FamilyName } from "./family";
import type { HW } from "./geometry";
import type { ImageFeatures, Prompt } from "./prompt";
import type { FromWorker, ToWorker } from "./protocol";

export type Decoded = Extract<FromWorker, { type: "decoded" }> & { roundTripMs: number };
export type DecoderReady = Extract<FromWorker, { type: "decoder-ready" }>;

interface Waiting {
  resolve: (value: FromWorker) => void;
  reject: (error: Error) => void;
}

/** The request a worker message answers: its `waiting` key. */
function replyKey(message: FromWorker): string {
  switch (message.type) {
    case "decoded":
      return `decode:${message.id}`;
    case "error":
      return message.request === "decode" ? `decode:${message.id}` : message.request;
    case "decoder-ready":
      return "load-decoder";
    case "embedding-ready":
      return "set-embedding";
  }
}

export class DecoderClient {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly waiting = new Map<string, Waiting>();
  private busy: Promise<unknown> = Promise.resolve();
  private hoverPending: { prompt: Prompt; maskInput: Float32Array | null } | null = null;
  private hoverRunning = false;

  constructor() {
    this.worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
    this.worker.onmessage = (event: MessageEvent<FromWorker>) => this.receive(event.data);
    this.worker.onerror = (event) => {
      const error = new Error(`inference worker failed: ${event.message || "unknown error"}`);
      for (const w of this.waiting.values()) w.reject(error);
      this.waiting.clear();
    };
  }

  private receive(message: FromWorker): void {
    const key = replyKey(message);
    const waiting = this.waiting.get(key);
    if (!waiting) return;
    this.waiting.delete(key);
    if (message.type === "error") waiting.reject(new Error(message.message));
    else waiting.resolve(message);
  }

  private request(key: string, message: ToWorker, transfer: Transferable[] = []): Promise<FromWorker> {
    const reply = new Promise<FromWorker>((resolve, reject) => this.waiting.set(key, { resolve, reject }));
    this.worker.postMessage(message, transfer);
    return reply;
  }

  /** Run requests one after another, so a decode never races a decoder or embedding change. */
  private serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.busy.then(task, task);
    this.busy = run.catch(() => undefined);
    return run;
  }

  /**
   * Open the decoder at `url`, or the fast decoder pair `fast` when given; relative URLs are taken
   * relative to the page, never the worker's script.
   */
  loadDecoder(url: string, threads: number, family: FamilyName, fast: FastDecoderUrls | null = null): Promise<DecoderReady> {
    const absolute = new URL(url, location.href).href;
    const pair = fast && { image: new URL(fast.image, location.href).href, click: new URL(fast.click, location.href).href };
    const message: ToWorker = { type: "load-decoder", url: absolute, threads, family, fast: pair };
    return this.serial(() => this.request("load-decoder", message)) as Promise<DecoderReady>;
  }

  /** Hand the image's features to the worker (their buffers are copied, the page keeps its own). */
  setEmbedding(features: ImageFeatures, orig: HW): Promise<unknown> {
    const copies: ImageFeatures = {};
    for (const [name, data] of Object.entries(features)) copies[name] = data.slice();
    const transfer = Object.values(copies).map((c) => c.buffer);
    return this.serial(() => this.request("set-embedding", { type: "set-embedding", features: copies, orig }, transfer));
  }

  decode(prompt: Prompt, maskInput: Float32Array | null): Promise<Decoded> {
    return this.serial(async () => {
      const id = this.nextId++;
      const start = performance.now();
      const reply = (await this.request(`decode:${id}`, { type: "decode", id, prompt, maskInput })) as Decoded;
      return { ...reply, roundTripMs: performance.now() - start };
    });
  }

  /**
   * A hover preview: runs now if no preview is running, else replaces the waiting one. Resolves
   * to null for a preview that was replaced before it ran.
   */
  async preview(prompt: Prompt, maskInput: Float32Array | null): Promise<Decoded | null> {
    if (this.hoverRunning) {
      this.hoverPending = { prompt, maskInput };
      return null;
    }
    this.hoverRunning = true;
    try {
      let result = await this.decode(prompt, maskInput);
      while (this.hoverPending) {
        const next = this.hoverPending;
        this.hoverPending = null;
        result = await this.decode(next.prompt, next.maskInput);
      }
      return result;
    } finally {
      this.hoverRunning = false;
    }
  }

  terminate(): void {
    this.worker.terminate();
  }
}
