// End-to-end run of the demo page in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser is downloaded). Usage: node e2e/run.mjs SPEC.json RESULT.json
//
// SPEC: {"chromium": "/usr/bin/chromium",
//        "cases": [{"name", "url": "http://127.0.0.1:PORT/?bundle=...", "upload": "FILE" (optional),
//                   "click": [x, y] or "drag": [x0, y0, x1, y1] (image pixels), "repeats": N, "mask": "OUT.bin",
//                   "screenshot": "OUT.png" (optional), "expectError": true (optional),
//                   "upload2": "FILE" (optional: dropped right after "upload", which it cancels),
//                   "embedding": "OUT.npy" (optional: the page's "Save embedding" download),
//                   "text": "a cat. a remote." (optional: typed into the text field instead of a
//                   click; "mask" then gets each found object's mask, K*H*W bytes in order)}],
//        "args": ["--enable-unsafe-webgpu", ...] (optional: more Chromium flags)}
// For each case the page is opened (and the file uploaded), the point is clicked once, the mask is
// read back from the page's mask canvas (H*W bytes, 1 inside) into "mask", then Clear + click are
// repeated N times for latency. A case with expectError uploads a file the server must refuse and
// records the error the page shows. A page that encodes the upload itself (a bundle with an
// encoder) is polled while it works: the encoder's engine and times, the running clock's values and
// how long the page took to answer each poll (it stays responsive: the encoder has its own worker).
// A text case (served with --detector) types the prompt, presses Find and waits until every found
// box is decoded (or, with expectError, until the page shows the error: nothing found, a refused
// prompt); it records each object's phrase, score and box.
// RESULT: isolation, thread count, the decoder that ran ("fast decoder pair" or the decoder file)
// and per-case figures (runMs: whole decodes, clickMs: the graph run alone). Any
// failure (page error, timeout, missing state, an error shown where none is expected) exits 1.
import { readFileSync, writeFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [specPath, resultPath] = process.argv.slice(2);
if (!specPath || !resultPath) {
  console.error("usage: node e2e/run.mjs SPEC.json RESULT.json");
  process.exit(2);
}
const spec = JSON.parse(readFileSync(specPath, "utf8"));
const TIMEOUT = 120_000;

const browser = await chromium.launch({
  executablePath: spec.chromium ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    ...(spec.args ?? []),
  ],
});
const result = { cases: [] };
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  // HTTP error answers the page handles itself (a 404 for api/config on a static server, a refused
  // upload) are logged by Chromium as "Failed to load resource"; anything else logged as an error counts
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) pageErrors.push(`console: ${m.text()}`);
  });

  const status = page.locator("#status");
  const errorsShown = async () => ((await page.locator("#errors").count()) ? await page.locator("#errors").innerText() : "");
  // ready (with that image, if named) or showing an error: whichever comes first
  const waitReady = async (imageName) => {
    await page.waitForFunction(
      (name) => {
        const s = document.querySelector("#status");
        const ready = s?.dataset.ready === "yes" && (!name || s.textContent.includes(name));
        return ready || document.querySelector("#errors") !== null;
      },
      imageName ?? null,
      { timeout: TIMEOUT },
    );
    const shown = await errorsShown();
    if (shown) throw new Error(`errors shown: ${shown}`);
  };

  // a click at c.click [x, y], or a drag along c.drag [x0, y0, x1, y1] (image pixels)
  const prompt = async (c, committedBefore) => {
    const box = await page.locator("#stage").boundingBox();
    const [h, w] = await page.evaluate(() => {
      const c = document.querySelector("#mask");
      return [c.height, c.width];
    });
    const at = (x, y) => [box.x + (x / w) * box.width, box.y + (y / h) * box.height];
    const [start, end] = c.drag ? [c.drag.slice(0, 2), c.drag.slice(2)] : [c.click, c.click];
    await page.mouse.move(...at(...start));
    await page.mouse.down();
    if (c.drag) await page.mouse.move(...at(...end), { steps: 8 });
    await page.mouse.up();
    await page.waitForFunction(
      (n) => Number(document.querySelector("#status")?.dataset.committed) === n + 1,
      committedBefore,
      { timeout: TIMEOUT },
    );
    return [h, w];
  };

  // type c.text, press Find, wait for the found objects (or the error shown, with c.expectError)
  const findText = async (c) => {
    await page.locator("#text-prompt").fill(c.text);
    await page.locator("#find").click();
    await page.waitForFunction(
      () => document.querySelector("#text-found")?.dataset.state === "done" || document.querySelector("#errors") !== null,
      null,
      { timeout: TIMEOUT },
    );
    const shown = await errorsShown();
    if (c.expectError) {
      if (!shown) throw new Error(`${c.name}: no error shown`);
      return { errorShown: shown, found: await page.locator("canvas.text-mask").count() };
    }
    if (shown) throw new Error(`${c.name}: the page shows errors: ${shown}`);
    const read = await page.evaluate(() => {
      const canvases = [...document.querySelectorAll("canvas.text-mask")];
      let text = "";
      for (const canvas of canvases) {
        const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
        const bits = new Uint8Array(canvas.width * canvas.height);
        for (let i = 0; i < bits.length; i++) bits[i] = data[4 * i + 3] > 0 ? 1 : 0;
        for (let i = 0; i < bits.length; i += 8192) text += String.fromCharCode(...bits.subarray(i, i + 8192));
      }
      const found = canvases.map((canvas) => ({ label: canvas.dataset.label, score: Number(canvas.dataset.score) }));
      const boxes = [...document.querySelectorAll("svg g.text-box")].map((g) => g.dataset.box.split(",").map(Number));
      const mask = document.querySelector("#mask");
      return { masks: btoa(text), found, boxes, hw: [mask.height, mask.width], line: document.querySelector("#text-found").textContent };
    });
    writeFileSync(c.mask, Buffer.from(read.masks, "base64"));
    return { hw: read.hw, found: read.found, boxes: read.boxes, line: read.line };
  };

  for (const c of spec.cases) {
    await page.goto(c.url);
    const polls = { elapsedMs: [], answerMs: [] };
    let polling = null;
    if (c.upload) {
      await page.locator("#upload").waitFor({ timeout: TIMEOUT });
      await page.locator("#upload").setInputFiles(c.upload);
      if (c.upload2) await page.locator("#upload").setInputFiles(c.upload2);
      polling = (async () => {
        const begin = Date.now();
        let seen = false; // React may not have shown the encoding state yet at the first poll
        for (;;) {
          const asked = Date.now();
          const s = await page.evaluate(() => document.querySelector("#encoder")?.dataset ?? null).catch(() => null);
          if (s?.encoding === "yes") {
            seen = true;
            polls.answerMs.push(Date.now() - asked);
            polls.elapsedMs.push(Number(s.elapsedMs));
          } else if (!s || seen || Date.now() - begin > 5000) break;
          await new Promise((r) => setTimeout(r, 250));
        }
      })();
    }
    if (c.expectError && !c.text) {
      await page.locator("#errors").waitFor({ timeout: TIMEOUT });
      result.cases.push({ name: c.name, errorShown: await errorsShown() });
      continue;
    }
    const shownFile = c.upload2 ?? c.upload;
    await waitReady(shownFile ? shownFile.split("/").at(-1) : null).catch((e) => {
      throw new Error(`${c.name}: page not ready: ${e.message}`);
    });
    await polling;
    const encoder = await page.evaluate(() => {
      const d = document.querySelector("#encoder")?.dataset;
      const text = document.querySelector("#encoder")?.textContent ?? "";
      return d ? { engine: d.engine, encodeMs: Number(d.encodeMs), totalMs: Number(d.totalMs), text } : null;
    });
    if (c.text !== undefined) {
      result.cases.push({ name: c.name, ...(await findText(c)) });
      if (c.screenshot) await page.screenshot({ path: c.screenshot, fullPage: true });
      continue;
    }
    if (c.embedding) {
      const [download] = await Promise.all([page.waitForEvent("download", { timeout: TIMEOUT }), page.locator("#save-embedding").click()]);
      await download.saveAs(c.embedding);
    }
    const [h, w] = await prompt(c, 0);
    const read = await page.evaluate(() => {
      const canvas = document.querySelector("#mask");
      const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
      const bits = new Uint8Array(canvas.width * canvas.height);
      for (let i = 0; i < bits.length; i++) bits[i] = data[4 * i + 3] > 0 ? 1 : 0;
      let text = "";
      for (let i = 0; i < bits.length; i += 8192) text += String.fromCharCode(...bits.subarray(i, i + 8192));
      const circle = document.querySelector("svg circle");
      const rect = document.querySelector("svg rect.box");
      const attrs = (el, names) => (el ? names.map((n) => Number(el.getAttribute(n))) : null);
      return {
        mask: btoa(text),
        kind: canvas.dataset.kind,
        clicked: attrs(circle, ["cx", "cy"]),
        box: attrs(rect, ["x", "y", "width", "height"]),
      };
    });
    writeFileSync(c.mask, Buffer.from(read.mask, "base64"));
    const runMs = [];
    const clickMs = [];
    const roundTripMs = [];
    for (let i = 0; i < (c.repeats ?? 0); i++) {
      await page.locator("#clear").click();
      await page.mouse.move(0, 0); // off the image: no hover previews in between
      await prompt(c, 0);
      runMs.push(Number(await status.getAttribute("data-run-ms")));
      clickMs.push(Number(await status.getAttribute("data-click-ms")));
      roundTripMs.push(Number(await status.getAttribute("data-round-trip-ms")));
    }
    const info = await page.evaluate(() => ({
      crossOriginIsolated: self.crossOriginIsolated,
      threads: Number(document.querySelector("#status").dataset.threads),
      decoder: document.querySelector("#status").dataset.decoder,
      status: document.querySelector("#status").textContent,
    }));
    result.cases.push({ name: c.name, hw: [h, w], kind: read.kind, clicked: read.clicked, box: read.box, runMs, clickMs, roundTripMs, encoder, polls, ...info });
    if (c.screenshot) await page.screenshot({ path: c.screenshot, fullPage: true });
    const shown = await errorsShown();
    if (shown) throw new Error(`${c.name}: the page shows errors: ${shown}`);
  }
  if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join(" | ")}`);
} catch (error) {
  failed = true;
  result.error = String(error?.stack ?? error);
  console.error(result.error);
} finally {
  await browser.close();
  writeFileSync(resultPath, JSON.stringify(result, null, 1));
}
process.exit(failed ? 1 : 0);
