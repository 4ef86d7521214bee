/**
 * The page's side of the encoder worker. One image is encoded at a time; a newer image cancels the
 * one being encoded. onnxruntime-web cannot abort a `session.run`, so a cancelled encode's worker
 * is terminated (its CPU or GPU is free at once) and a fresh worker opens the encoder again for
 * the newer image (the graph comes from the HTTP cache). Each encode has a generation number; an
 * answer of any other generation is dropped, so a stale embedding can never reach the page.
 */

import type { EngineName } from "./engine";
import type { EncoderInput, FromEncoder, ToEncoder } from "./encoder_protocol";
import type { HW } from "./geometry";
import type { ImageFeatures } from "./prompt";

/** What the client needs of a Worker (tests pass a fake). */
export interface EncoderPort {
  postMessage(message: ToEncoder, transfer?: Transferable[]): void;
  terminate(): void;
  onmessage: ((event: MessageEvent<FromEncoder>) => void) | null;
  onerror: ((event: ErrorEvent) => void) | null;
}

export interface EncoderSpec {
  /** Absolute URL of the encoder graph. */
  url: string;
  engine: EngineName;
  threads: number;
}

export type EncoderReady = Extract<FromEncoder, { type: "encoder-ready" }>;

export interface Encoded {
  generation: number;
  features: ImageFeatures;
  orig: HW;
  preprocessMs: number;
  encodeMs: number;
  /** From the request to the answer, milliseconds (includes opening the encoder when it had to be). */
  totalMs: number;
  input: EncoderInput;
}

/** An encode that a newer image replaced; the page drops it silently. */
export class EncodeCancelled extends Error {
  constructor(name: string) {
    super(`${name}: encoding cancelled by a newer image`);
  }
}

interface Waiting {
  resolve: (message: FromEncoder) => void;
  reject: (error: Error) => void;
}

function newWorker(): EncoderPort {
  return new Worker(new URL("./encoder_worker.ts", import.meta.url), { type: "module" }) as unknown as EncoderPort;
}

export class EncoderClient {
  private port: EncoderPort | null = null;
  private ready: Promise<EncoderReady> | null = null;
  private readonly waiting = new Map<string, Waiting>();
  private generation = 0;
  private running: { generation: number; name: string } | null = null;
  /** Workers started so far (the first, and one per cancelled encode). */
  workersStarted = 0;

  constructor(
    private readonly spec: EncoderSpec,
    private readonly makePort: () => EncoderPort = newWorker,
  ) {}

  /** Open the encoder (once per worker); encode() calls it, the page may call it early. */
  open(): Promise<EncoderReady> {
    if (this.ready === null) {
      const port = this.makePort();
      this.workersStarted++;
      port.onmessage = (event) => this.receive(port, event.data);
      port.onerror = (event) => this.fail(port, new Error(`encoder worker failed: ${event.message || "unknown error"}`));
      this.port = port;
      const message: ToEncoder = { type: "load-encoder", url: this.spec.url, engine: this.spec.engine, threads: this.spec.threads };
      this.ready = this.request("load-encoder", message) as Promise<EncoderReady>;
    }
    return this.ready;
  }

  /** Embed `image`; rejects with EncodeCancelled when a newer encode() came before it finished. */
  async encode(image: Blob, name: string): Promise<Encoded> {
    const generation = ++this.generation;
    if (this.running !== null) this.stopWorker(new EncodeCancelled(this.running.name));
    this.running = { generation, name };
    const start = performance.now();
    try {
      const ready = await this.open();
      const message: ToEncoder = { type: "encode", generation, image, name };
      const reply = (await this.request(`encode:${generation}`, message)) as Extract<FromEncoder, { type: "encoded" }>;
      const { features, orig, preprocessMs, encodeMs } = reply;
      return { generation, features, orig, preprocessMs, encodeMs, totalMs: performance.now() - start, input: ready.input };
    } finally {
      if (this.running?.generation === generation) this.running = null;
    }
  }

  terminate(): void {
    this.stopWorker(new Error("encoder closed"));
  }

  private request(key: string, message: ToEncoder): Promise<FromEncoder> {
    const port = this.port!;
    const reply = new Promise<FromEncoder>((resolve, reject) => this.waiting.set(key, { resolve, reject }));
    port.postMessage(message);
    return reply;
  }

  private receive(port: EncoderPort, message: FromEncoder): void {
    if (port !== this.port) return; // a terminated worker's last words
    const key =
      message.type === "encoder-ready"
        ? "load-encoder"
        : message.type === "encoded"
          ? `encode:${message.generation}`
          : message.request === "encode"
            ? `encode:${message.generation}`
            : message.request;
    const waiting = this.waiting.get(key);
    if (!waiting) return; // an answer for a generation nobody waits for any more
    this.waiting.delete(key);
    if (message.type === "error") waiting.reject(new Error(message.message));
    else waiting.resolve(message);
  }

  private fail(port: EncoderPort, error: Error): void {
    if (port !== this.port) return;
    this.stopWorker(error);
  }

  /** Terminate the worker; everything waiting on it is rejected with `error`. */
  private stopWorker(error: Error): void {
    this.port?.terminate();
    this.port = null;
    this.ready = null;
    for (const w of this.waiting.values()) w.reject(error);
    this.waiting.clear();
  }
}
