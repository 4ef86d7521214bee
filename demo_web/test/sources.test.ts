import { afterEach, describe, expect, it, vi } from "vitest";

import { fetchServerConfig } from "../src/sources";

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

  it("is null for anything but a sam-onnx server", async () => {
    servePage("http://127.0.0.1:8080/", { format: "something-else" });
    expect(await fetchServerConfig()).toBeNull();
  });
});
