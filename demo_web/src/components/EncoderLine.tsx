import type { Engine } from "../engine";
import type { EncodeTimes, Encoding } from "../hooks/useEncoder";

/** The page's own encoder: its engine, a running clock while it works, then the time it took. */
export function EncoderLine(props: { engine: Engine | null; encoding: Encoding | null; encoded: EncodeTimes | null; now: number }) {
  const { engine, encoding, encoded, now } = props;
  if (!engine) return null;
  const elapsed = encoding ? Math.max(0, now - encoding.start) : 0;
  return (
    <p
      id="encoder"
      data-engine={engine.name}
      data-encoding={encoding ? "yes" : "no"}
      data-elapsed-ms={encoding ? elapsed.toFixed(0) : ""}
      data-encode-ms={encoded?.encodeMs.toFixed(1) ?? ""}
      data-total-ms={encoded?.totalMs.toFixed(1) ?? ""}
    >
      {`encoder in this page: ${engine.label}`}
      {encoding ? ` · encoding ${encoding.name}… ${(elapsed / 1000).toFixed(1)} s` : ""}
      {!encoding && encoded ? ` · last image encoded in ${(encoded.encodeMs / 1000).toFixed(1)} s` : ""}
    </p>
  );
}
