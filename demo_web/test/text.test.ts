import { afterEach, describe, expect, it, vi } from "vitest";

import { FAMILIES } from "../src/family";
import { type LoadedImage, fetchServerConfig } from "../src/sources";
import { detectText, parseTextBoxes, textColour } from "../src/text";

const IMAGE: LoadedImage = {
  name: "cats.png",
  url: "http://127.0.0.1:8000/bundles/cats/cats.png",
  orig: [480, 640],
  features: {},
  family: FAMILIES.sam,
  checkpointSha256: "0".repeat(64),
};

const ANSWER = {
  prompt: "a cat. a remote.",
  orig_hw: [480, 640],
  boxes_xyxy: [
    [10.5, 20.25, 300, 400],
    [-3, 5, 700, 470],
  ],
  scores: [0.61, 0.3],
  labels: ["a cat", "a remote"],
  best_score: 0.61,
  best_label: "cat",
};

describe("parseTextBoxes", () => {
  it("gives each box with its phrase and score, in the detector's order, corners as sent", () => {
    const { prompt, boxes } = parseTextBoxes(ANSWER, [480, 640]);
    expect(prompt).toBe("a cat. a remote.");
    expect(boxes).toEqual([
      { label: "a cat", score: 0.61, box: { x0: 10.5, y0: 20.25, x1: 300, y1: 400 } },
      { label: "a remote", score: 0.3, box: { x0: -3, y0: 5, x1: 700, y1: 470 } },
    ]);
  });

  it("refuses answers that are not boxes of the shown image", () => {
    expect(() => parseTextBoxes({ ...ANSWER, labels: ["a cat"] }, [480, 640])).toThrow(/one length/);
    expect(() => parseTextBoxes({ ...ANSWER, boxes_xyxy: [[1, 2, 3], [1, 2, 3, 4]] }, [480, 640])).toThrow(/box 0: expected four numbers/);
    expect(() => parseTextBoxes({ ...ANSWER, boxes_xyxy: [[1, 2, 3, null], [1, 2, 3, 4]] }, [480, 640])).toThrow(/box 0/);
    expect(() => parseTextBoxes(ANSWER, [640, 480])).toThrow(/480x640 \(HxW\), the page shows 640x480/);
    expect(() => parseTextBoxes(null, [480, 640])).toThrow(/expected boxes_xyxy/);
  });
});

describe("detectText", () => {
  afterEach(() => vi.unstubAllGlobals());

  /** A server whose api/detect answers `status` and `body`; returns the requests it got. */
  function server(status: number, body: object): { url: string; type: string | null }[] {
    const requests: { url: string; type: string | null }[] = [];
    vi.stubGlobal("fetch", async (url: string, init?: RequestInit) => {
      if (!init) return new Response(new Blob([new Uint8Array(10)], { type: "image/png" }));
      requests.push({ url, type: new Headers(init.headers).get("Content-Type") });
      return new Response(JSON.stringify(body), { status });
    });
    return requests;
  }

  it("sends the image's bytes with the prompt and the thresholds given in the query", async () => {
    const requests = server(200, ANSWER);
    const found = await detectText("http://127.0.0.1:8000/api/detect", IMAGE, "a cat. a remote.", 2 ** 20);
    expect(found.boxes.map((b) => b.label)).toEqual(["a cat", "a remote"]);
    await detectText("http://h/api/detect", IMAGE, "café.", 2 ** 20, { box_threshold: "0.4" });
    expect(requests).toEqual([
      { url: "http://127.0.0.1:8000/api/detect?text=a+cat.+a+remote.", type: "image/png" },
      { url: "http://h/api/detect?text=caf%C3%A9.&box_threshold=0.4", type: "image/png" },
    ]);
  });

  it("shows the server's message: nothing found with the best score, a refused prompt", async () => {
    const message = "nothing found for 'a dog.': no box scored above the box threshold 0.25; the best box scored 0.1200 ('dog')";
    server(422, { error: { type: "NothingFound", status: 422, message } });
    await expect(detectText("http://h/api/detect", IMAGE, "a dog.", 2 ** 20)).rejects.toThrow(message);
    server(400, { error: { type: "InvalidPromptError", status: 400, message: "text prompt: expected at least one word" } });
    await expect(detectText("http://h/api/detect", IMAGE, ". .", 2 ** 20)).rejects.toThrow("text prompt: expected at least one word");
  });

  it("asks nothing for an empty prompt or an image over the upload limit", async () => {
    const requests = server(200, ANSWER);
    await expect(detectText("http://h/api/detect", IMAGE, "  ", 2 ** 20)).rejects.toThrow(/type one or more phrases/);
    await expect(detectText("http://h/api/detect", IMAGE, "a cat.", 5)).rejects.toThrow(/over the server's upload limit/);
    expect(requests).toEqual([]);
  });
});

it("cycles the Python overlay's palette", () => {
  expect(textColour(0)).toEqual([31, 119, 180]);
  expect(textColour(6)).toEqual(textColour(0));
});

describe("the server's detector endpoint", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("is absolute beside api/config, or null for a server without --detector", async () => {
    const config = { format: "sam-onnx-serve", variant: "vit_b", checkpoint_sha256: "0", decoders: { fp32: "api/decoder/fp32" }, bundle: null };
    vi.stubGlobal("location", new URL("https://example.org/tools/sam/"));
    for (const [detector, want] of [
      ["api/detect", "https://example.org/tools/sam/api/detect"],
      [null, null],
      [undefined, null],
    ]) {
      vi.stubGlobal("fetch", async () => new Response(JSON.stringify({ ...config, detector }), { status: 200 }));
      expect((await fetchServerConfig())?.detector).toBe(want);
    }
  });
});
