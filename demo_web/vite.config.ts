import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// Cross-origin isolation (SharedArrayBuffer, hence multithreaded wasm) in development and preview.
// `sam-onnx serve` sends the same headers for the built page.
const isolation = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
};

export default defineConfig({
  base: "./",
  plugins: [react()],
  server: { headers: isolation },
  preview: { headers: isolation },
  worker: { format: "es" },
  build: { target: "es2022", chunkSizeWarningLimit: 2048 },
  optimizeDeps: { exclude: ["onnxruntime-web"] },
  test: { environment: "node", include: ["test/**/*.test.ts"] },
});
