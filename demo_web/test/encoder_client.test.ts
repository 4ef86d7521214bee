import { describe, expect, it } from "vitest";

import { EncodeCancelled, EncoderClient, type EncoderPort } from "../src/encoder_client";
import type { FromEncoder, ToEncoder } from "../src/encoder_protocol";

/** A fake worker: records what it is sent; the test answers with `reply`. */
class FakeWorker implements EncoderPort {
  sent: ToEncoder[] = [];
  terminated = false;
  onmessage: ((event: MessageEvent<FromEncoder>) => void) | null = null;
  onerror: ((event: ErrorEvent) => void) | null = null;
  postMessage(message: ToEncoder): void {
    this.sent.push(message);
  }
  terminate(): void {
    this.terminated = true;
  }
  reply(message: FromEncoder): void {
    this.onmessage?.({ data: message } as MessageEvent<FromEncoder>);
  }
  ready(): void {
    this.reply({ type: "encoder-ready", engine: "wasm", threads: 2, loadMs: 1, input: "image" });
  }
  encoded(generation: number, value: number): void {
    const features = { image_embeddings: new Float32Array(4).fill(value) };
    this.reply({ type: "encoded", generation, features, orig: [3, 5], preprocessMs: 1, encodeMs: 2 });
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));

function client() {
  const workers: FakeWorker[] = [];
  const c = new EncoderClient({ url: "http://x/encoder.onnx", engine: "wasm", threads: 2 }, () => {
    workers.push(new FakeWorker());
    return workers.at(-1)!;
  });
  return { c, workers };
}

describe("EncoderClient", () => {
  it("opens the encoder once and encodes images one after another in the same worker", async () => {
    const { c, workers } = client();
    const first = c.encode(new Blob(["a"]), "a.png");
    await tick();
    workers[0].ready();
    await tick();
    workers[0].encoded(1, 1);
    expect((await first).features.image_embeddings[0]).toBe(1);
    const second = c.encode(new Blob(["b"]), "b.png");
    await tick();
    workers[0].encoded(2, 2);
    const got = await second;
    expect([got.generation, got.orig, got.input]).toEqual([2, [3, 5], "image"]);
    expect(workers).toHaveLength(1);
    expect(workers[0].sent.map((m) => m.type)).toEqual(["load-encoder", "encode", "encode"]);
  });

  it("a second image cancels the first: its worker is terminated, a new one encodes the second", async () => {
    const { c, workers } = client();
    const first = c.encode(new Blob(["a"]), "a.png");
    await tick();
    workers[0].ready();
    await tick();
    const second = c.encode(new Blob(["b"]), "b.png");
    await expect(first).rejects.toThrow(EncodeCancelled);
    expect(workers[0].terminated).toBe(true);
    workers[0].encoded(1, 1); // the stale worker's answer, had it come, goes nowhere
    await tick();
    expect(workers).toHaveLength(2);
    workers[1].ready();
    await tick();
    expect(workers[1].sent.at(-1)).toMatchObject({ type: "encode", generation: 2, name: "b.png" });
    workers[1].encoded(2, 7);
    expect((await second).features.image_embeddings[0]).toBe(7);
    expect(c.workersStarted).toBe(2);
  });

  it("an image dropped while the encoder is still opening cancels the first too", async () => {
    const { c, workers } = client();
    const first = c.encode(new Blob(["a"]), "a.png");
    const second = c.encode(new Blob(["b"]), "b.png");
    await expect(first).rejects.toThrow(/a.png: encoding cancelled/);
    await tick();
    workers[1].ready();
    await tick();
    workers[1].encoded(2, 3);
    expect((await second).generation).toBe(2);
  });

  it("an answer of another generation is dropped; errors reach the caller", async () => {
    const { c, workers } = client();
    const first = c.encode(new Blob(["a"]), "a.png");
    await tick();
    workers[0].ready();
    await tick();
    workers[0].encoded(5, 9); // nobody waits for generation 5
    workers[0].reply({ type: "error", request: "encode", generation: 1, message: "a.png: the browser could not decode the image" });
    await expect(first).rejects.toThrow(/could not decode/);
    expect(workers[0].terminated).toBe(false);
  });
});
