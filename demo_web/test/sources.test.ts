import { afterEach, describe, expect, it, vi } from "vitest";

import { FAMILIES } from "../src/family";
import { type Bundle, type ServerConfig, bundleUrl, embedUpload, fetchServerConfig, loadBundle, pageModel } from "../src/sources";

/** The page at `pageUrl`, whose fetches resolve against it and answer `config` for api/config. */
function servePage(pageUrl: string, config: object): string[] {
  const fetched: string[] = [];
  vi.stubGlobal("location", new URL(pageUrl));
  vi.stubGlobal("fetch", async (url: string) => {
    fetched.push(new URL(url, pageUrl).href);
    return new Response(JSON.stringify(config), { status: 200 });
  });
  return fetched;
}

const CONFIG = {
  format: "sam-onnx-serve",
  variant: "vit_b",
  checkpoint_sha256: "0".repeat(64),
  decoders: { fp32: "api/decoder/fp32", int8: "api/decoder/int8" },
  bundle: "bundles/first/bundle.json",
};

describe("fetchServerConfig", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("gives the decoder and bundle URLs absolute, next to api/config, not to the worker's assets/", async () => {
    servePage("http://127.0.0.1:8000/", CONFIG);
    const config = await fetchServerConfig();
    expect(config?.decoders).toEqual({
      fp32: "http://127.0.0.1:8000/api/decoder/fp32",
      int8: "http://127.0.0.1:8000/api/decoder/int8",
    });
    expect(config?.bundle).toBe("http://127.0.0.1:8000/bundles/first/bundle.json");
  });

  it("keeps a page served under a sub-path (a proxy) on that sub-path", async () => {
    const fetched = servePage("https://example.org/tools/sam/index.html?x=1", { ...CONFIG, bundle: null });
    const config = await fetchServerConfig();
    expect(fetched).toEqual(["https://example.org/tools/sam/api/config"]);
    expect(config?.decoders.fp32).toBe("https://example.org/tools/sam/api/decoder/fp32");
    expect(config?.bundle).toBeNull();
  });

  it("gives the fast decoder pair the server's predictor runs, absolute like the decoders, or null", async () => {
    servePage("https://example.org/tools/sam/", { ...CONFIG, fast_decoder: { image: "api/fast/image", click: "api/fast/click" } });
    expect((await fetchServerConfig())?.fastDecoder).toEqual({
      image: "https://example.org/tools/sam/api/fast/image",
      click: "https://example.org/tools/sam/api/fast/click",
    });
    servePage("http://127.0.0.1:8000/", { ...CONFIG, fast_decoder: null });
    expect((await fetchServerConfig())?.fastDecoder).toBeNull();
    servePage("http://127.0.0.1:8000/", CONFIG); // a server from before the pair
    expect((await fetchServerConfig())?.fastDecoder).toBeNull();
    servePage("http://127.0.0.1:8000/", { ...CONFIG, fast_decoder: { image: 3 } });
    await expect(fetchServerConfig()).rejects.toThrow(/server config: fast_decoder: expected \{image, click\}/);
  });

  it("is null for anything but a sam-onnx server", async () => {
    servePage("http://127.0.0.1:8080/", { format: "something-else" });
    expect(await fetchServerConfig()).toBeNull();
  });
});

describe("the family: from the server config, SAM v1 when it says none", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("reads family and resize", async () => {
    servePage("http://127.0.0.1:8000/", { ...CONFIG, family: "sam2", resize: "square" });
    expect((await fetchServerConfig())?.family).toBe(FAMILIES.sam2);
    servePage("http://127.0.0.1:8000/", CONFIG);
    expect((await fetchServerConfig())?.family).toBe(FAMILIES.sam);
  });

  it("refuses an unknown family, or a resize that is not the family's", async () => {
    servePage("http://127.0.0.1:8000/", { ...CONFIG, family: "sam3" });
    await expect(fetchServerConfig()).rejects.toThrow(/server config: expected family sam or sam2, got "sam3"/);
    servePage("http://127.0.0.1:8000/", { ...CONFIG, family: "toString" });
    await expect(fetchServerConfig()).rejects.toThrow(/expected family/);
    servePage("http://127.0.0.1:8000/", { ...CONFIG, family: "sam2", resize: "long_side" });
    await expect(fetchServerConfig()).rejects.toThrow(/family sam2 resizes "square", got resize "long_side"/);
  });
});

describe("embedUpload: the features of api/embed's answer", () => {
  afterEach(() => vi.unstubAllGlobals());

  const tensor = (dims: number[], fill: number) => {
    const data = new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(fill);
    return { shape: dims, dtype: "float32", data_b64: Buffer.from(data.buffer).toString("base64") };
  };
  const answer = (features: object) => ({ orig_hw: [30, 50], checkpoint_sha256: "0".repeat(64), features });
  const upload = async (body: object) => {
    vi.stubGlobal("location", new URL("http://127.0.0.1:8000/"));
    vi.stubGlobal("fetch", async () => new Response(JSON.stringify(body), { status: 200 }));
    const config = { family: FAMILIES.sam2, max_upload_bytes: 1e6 } as ServerConfig;
    return embedUpload(new File([new Uint8Array(4)], "a.png", { type: "image/png" }), config);
  };

  it("decodes SAM 2's three tensors by name", async () => {
    const loaded = await upload(
      answer({
        image_embeddings: tensor([1, 256, 64, 64], 1),
        high_res_feats_0: tensor([1, 32, 256, 256], 2),
        high_res_feats_1: tensor([1, 64, 128, 128], 3),
      }),
    );
    expect(loaded.family).toBe(FAMILIES.sam2);
    expect(loaded.orig).toEqual([30, 50]);
    expect(loaded.features.high_res_feats_0.length).toBe(32 * 256 * 256);
    expect([0, 1, 2].map((i) => Object.values(loaded.features)[i][7])).toEqual([1, 2, 3]);
  });

  it("names a tensor that is missing or of the wrong shape", async () => {
    const emb = tensor([1, 256, 64, 64], 1);
    await expect(upload(answer({ image_embeddings: emb, high_res_feats_0: tensor([1, 32, 256, 256], 2) }))).rejects.toThrow(
      /a.png embedding: high_res_feats_1: expected 1048576 floats \(1x64x128x128\), got none/,
    );
    const swapped = { image_embeddings: emb, high_res_feats_0: tensor([1, 64, 128, 128], 2), high_res_feats_1: tensor([1, 32, 256, 256], 3) };
    await expect(upload(answer(swapped))).rejects.toThrow(/high_res_feats_0: expected shape 1x32x256x256, got 1x64x128x128/);
  });
});

describe("loadBundle: a page-only bundle (sam-onnx bundle --with-encoder, no image)", () => {
  afterEach(() => vi.unstubAllGlobals());
  const PAGE_ONLY = {
    format: "sam-onnx-bundle",
    version: 1,
    variant: "vit_w168_d12_h12_m696_g2-5-8-11",
    checkpoint_sha256: "a".repeat(64),
    family: "sam",
    resize: "long_side",
    decoders: { fp32: "decoder.onnx" },
    encoder: { file: "encoder.onnx", input: "image", gmacs: 45.8, bytes: 24764921, variant: "vit_w168", checkpoint_sha256: "a".repeat(64) },
  };

  it("gives no image and the encoder's URL beside bundle.json, its cost and identity", async () => {
    servePage("http://127.0.0.1:9000/site/", PAGE_ONLY);
    const bundle = await loadBundle("bundle.json");
    expect(bundle.image).toBeNull();
    expect(bundle.decoders.fp32).toBe("http://127.0.0.1:9000/site/decoder.onnx");
    expect(bundle.encoder).toMatchObject({ url: "http://127.0.0.1:9000/site/encoder.onnx", gmacs: 45.8, input: "image" });
  });

  it("refuses an encoder entry without its cost, and a bundle with neither image nor encoder", async () => {
    servePage("http://127.0.0.1:9000/", { ...PAGE_ONLY, encoder: { file: "encoder.onnx" } });
    await expect(loadBundle("bundle.json")).rejects.toThrow(/encoder: expected \{file, gmacs > 0/);
    servePage("http://127.0.0.1:9000/", { ...PAGE_ONLY, encoder: undefined });
    await expect(loadBundle("bundle.json")).rejects.toThrow(/orig_hw/);
  });
});

describe("loadBundle: the fast decoder pair", () => {
  afterEach(() => vi.unstubAllGlobals());
  const BUNDLE = {
    format: "sam-onnx-bundle",
    version: 1,
    family: "sam",
    decoders: { fp32: "decoder.onnx" },
    encoder: { file: "encoder.onnx", gmacs: 45.8 },
  };

  it("gives the pair's URLs beside bundle.json, and null without the entry", async () => {
    servePage("http://127.0.0.1:9000/site/", { ...BUNDLE, fast_decoder: { image: "decoder_image.onnx", click: "decoder_click.onnx" } });
    expect((await loadBundle("bundle.json")).fastDecoder).toEqual({
      image: "http://127.0.0.1:9000/site/decoder_image.onnx",
      click: "http://127.0.0.1:9000/site/decoder_click.onnx",
    });
    servePage("http://127.0.0.1:9000/site/", BUNDLE);
    expect((await loadBundle("bundle.json")).fastDecoder).toBeNull();
  });

  it("refuses an entry without both file names", async () => {
    servePage("http://127.0.0.1:9000/", { ...BUNDLE, fast_decoder: { image: "decoder_image.onnx" } });
    await expect(loadBundle("bundle.json")).rejects.toThrow(/fast_decoder: expected \{image, click\}/);
  });
});

describe("random_weights: an export made from random weights, from the server config or bundle.json", () => {
  afterEach(() => vi.unstubAllGlobals());
  const PAGE_ONLY = {
    format: "sam-onnx-bundle",
    version: 1,
    decoders: { fp32: "decoder.onnx" },
    encoder: { file: "encoder.onnx", gmacs: 45.8 },
  };

  it("is true only when the server config says true; absent or null is false", async () => {
    servePage("http://127.0.0.1:8000/", { ...CONFIG, random_weights: true });
    expect((await fetchServerConfig())?.randomWeights).toBe(true);
    servePage("http://127.0.0.1:8000/", { ...CONFIG, random_weights: false });
    expect((await fetchServerConfig())?.randomWeights).toBe(false);
    servePage("http://127.0.0.1:8000/", { ...CONFIG, random_weights: null });
    expect((await fetchServerConfig())?.randomWeights).toBe(false);
    servePage("http://127.0.0.1:8000/", CONFIG); // a server from before the field
    expect((await fetchServerConfig())?.randomWeights).toBe(false);
  });

  it("is read from bundle.json, with or without an image", async () => {
    servePage("http://127.0.0.1:9000/", { ...PAGE_ONLY, random_weights: true });
    expect((await loadBundle("bundle.json")).randomWeights).toBe(true);
    servePage("http://127.0.0.1:9000/", PAGE_ONLY);
    expect((await loadBundle("bundle.json")).randomWeights).toBe(false);
  });

  it("refuses anything but a boolean, naming where it came from", async () => {
    servePage("http://127.0.0.1:8000/", { ...CONFIG, random_weights: "yes" });
    await expect(fetchServerConfig()).rejects.toThrow(/server config: random_weights: expected true or false, got "yes"/);
    servePage("http://127.0.0.1:9000/", { ...PAGE_ONLY, random_weights: 1 });
    await expect(loadBundle("bundle.json")).rejects.toThrow(/bundle bundle.json: random_weights: expected true or false, got 1/);
  });
});

describe("bundleUrl and pageModel: which bundle opens and which decoders run", () => {
  afterEach(() => vi.unstubAllGlobals());
  const server = (extra: object = {}) => ({ ...CONFIG, ...extra }) as unknown as ServerConfig;
  const bundle = (extra: Partial<Bundle> = {}): Bundle => ({
    image: null,
    decoders: { fp32: "http://b/decoder.onnx" },
    family: FAMILIES.sam2,
    encoder: null,
    fastDecoder: { image: "http://b/i.onnx", click: "http://b/c.onnx" },
    randomWeights: false,
    ...extra,
  });

  it("opens ?bundle= first, then the server's, then bundle.json beside a page no server answers for", () => {
    expect(bundleUrl("mine.json", server())).toBe("mine.json");
    expect(bundleUrl(null, server({ bundle: "http://s/b.json" }))).toBe("http://s/b.json");
    expect(bundleUrl(null, server({ bundle: null }))).toBeNull();
    expect(bundleUrl(null, null)).toBe("bundle.json");
  });

  it("runs a bundle's decoders with its own pair, else the server's with the server's pair", () => {
    const config = server({ family: FAMILIES.sam, fastDecoder: { image: "s/i", click: "s/c" }, randomWeights: false });
    expect(pageModel(config, bundle({ fastDecoder: null }))).toEqual({
      decoders: { fp32: "http://b/decoder.onnx" },
      family: FAMILIES.sam2,
      fastDecoder: null,
      randomWeights: false,
    });
    expect(pageModel(config, null)).toMatchObject({ decoders: CONFIG.decoders, family: FAMILIES.sam, fastDecoder: { image: "s/i" } });
  });

  it("has random weights when the server or the bundle says so", () => {
    const config = (random: boolean) => server({ family: FAMILIES.sam, fastDecoder: null, randomWeights: random });
    expect(pageModel(config(true), null).randomWeights).toBe(true);
    expect(pageModel(config(false), bundle({ randomWeights: true })).randomWeights).toBe(true);
    expect(pageModel(config(true), bundle()).randomWeights).toBe(true);
    expect(pageModel(config(false), bundle()).randomWeights).toBe(false);
    expect(pageModel(null, bundle({ randomWeights: true })).randomWeights).toBe(true);
  });

  it("says how to open the page when neither names an fp32 decoder", () => {
    expect(() => pageModel(null, null)).toThrow(/no decoder: open this page through `sam-onnx serve` or a `sam-onnx bundle` folder/);
    expect(() => pageModel(server({ decoders: { int8: "x" }, family: FAMILIES.sam }), null)).toThrow(/no decoder/);
  });
});
