import type { Decoded, DecoderReady } from "../client";
import { maskArea } from "../masks";
import type { LoadedImage } from "../sources";

/** The decoder, the image, the mask's score and times; its data attributes are what the end-to-end test reads. */
export function StatusLine(props: { ready: DecoderReady | null; image: LoadedImage | null; shown: Decoded | null; busy: string | null; committed: number }) {
  const { ready, image, shown, busy, committed } = props;
  return (
    <p
      id="status"
      data-ready={ready && image && !busy ? "yes" : "no"}
      data-threads={ready?.threads ?? 0}
      data-isolated={ready?.crossOriginIsolated ? "yes" : "no"}
      data-committed={committed}
      data-decoder={ready?.decoder ?? ""}
      data-run-ms={shown?.runMs.toFixed(2) ?? ""}
      data-click-ms={shown?.clickMs.toFixed(2) ?? ""}
      data-round-trip-ms={shown?.roundTripMs.toFixed(2) ?? ""}
    >
      {/* two lines of fixed height: a longer text must not move the image under the pointer */}
      <span>
        {busy ? `${busy}… ` : ""}
        {ready
          ? `${ready.decoder} · wasm threads: ${ready.threads}${ready.crossOriginIsolated ? "" : " (page not cross-origin isolated: one thread)"} · `
          : ""}
        {image ? `${image.name} ${image.orig[1]}×${image.orig[0]} ` : ""}
      </span>
      <span>
        {shown
          ? `score ${shown.score.toFixed(3)} · area ${maskArea(shown.mask)} px · decode ${shown.runMs.toFixed(1)} ms` +
            (ready?.decoder === "fast decoder pair" ? ` (click graph ${shown.clickMs.toFixed(1)} ms)` : "") +
            ` · ${shown.roundTripMs.toFixed(1)} ms round trip`
          : "no mask yet"}
      </span>
    </p>
  );
}
