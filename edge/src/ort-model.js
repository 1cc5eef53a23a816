// The opt-in model: the attention network through onnxruntime-web's wasm backend.
//
// workerd (like production Workers) refuses to compile wasm from bytes, so ORT's own loader fails with
// "no available backend found". The .wasm is imported as a module instead (the runtime compiles it at
// deploy time) and ORT is given a placeholder wasmBinary; when its emscripten loader instantiates that
// placeholder, WebAssembly.instantiate is redirected to the precompiled module. This depends on ORT's
// loader: keep onnxruntime-web pinned (package.json) and re-run the ORT parity test when bumping it.
//
// Encoding mirrors precache.models.attention.runtime.AttentionRuntime: ids 0 PAD, 1 OOV, vocabulary
// id + 1 for pages; the last max_len pages, left-padded to max_len (one input shape: fast in wasm);
// logits / temperature, softmax without the PAD column; an empty history gets the popularity prior.

import * as ort from "onnxruntime-web/wasm";
import ortWasm from "../node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm";
import { ModelError, readVocabulary } from "./verify.js";

const PLACEHOLDER = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x70, 0x72, 0x65, 0x63]); // "\0asm" + "prec"
let cacheLimit = 4096; // PREDICTION_CACHE_SIZE: recent contexts' top-k per isolate (0 = off)

function isPlaceholder(source) {
  const bytes = source instanceof ArrayBuffer ? new Uint8Array(source) : ArrayBuffer.isView(source)
    ? new Uint8Array(source.buffer, source.byteOffset, source.byteLength) : null;
  return bytes !== null && bytes.length === PLACEHOLDER.length && bytes.every((b, i) => b === PLACEHOLDER[i]);
}

let initialized = false;
function initOrt() {
  if (initialized) return;
  initialized = true;
  const instantiate = WebAssembly.instantiate.bind(WebAssembly);
  WebAssembly.instantiate = async (source, imports) => {
    if (isPlaceholder(source)) return { instance: await instantiate(ortWasm, imports), module: ortWasm };
    return instantiate(source, imports);
  };
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmBinary = PLACEHOLDER;
  ort.env.logLevel = "error";
}

export class OrtModel {
  static kind = "onnx";
  static tolerance = 1e-4; // wasm vs native onnxruntime float noise

  static configure(env) {
    cacheLimit = Math.max(0, Number(env.PREDICTION_CACHE_SIZE ?? 4096));
  }

  static async build(manifest, files) {
    const p = manifest.onnx;
    if (!p || !Number.isInteger(p.max_len) || p.max_len < 1 || !(p.temperature > 0)) {
      throw new ModelError("onnx manifest needs max_len and a positive temperature");
    }
    const vocab = readVocabulary(files, "onnx", "edge-model.onnx");
    initOrt();
    let session;
    try {
      session = await ort.InferenceSession.create(new Uint8Array(files["edge-model.onnx"]), {
        executionProviders: ["wasm"], graphOptimizationLevel: "all",
      });
    } catch (err) {
      throw new ModelError(`onnxruntime-web cannot load edge-model.onnx: ${err.message ?? err}`);
    }
    return new OrtModel(manifest, vocab, session);
  }

  constructor(manifest, vocab, session) {
    this.manifest = manifest;
    this.k = manifest.k;
    this.maxLen = manifest.onnx.max_len;
    this.temperature = manifest.onnx.temperature;
    this.inputName = manifest.onnx.input ?? session.inputNames[0];
    this.pages = vocab.pages;
    this.index = new Map(vocab.pages.map((p, i) => [p, i + 2]));
    const total = vocab.counts.reduce((a, b) => a + b, 0);
    const prior = total > 0 ? vocab.counts.map((c) => c / total) : vocab.pages.map(() => 1 / Math.max(1, vocab.pages.length));
    this.priorTop = this.topOf(Float64Array.from(prior), 0, this.k);
    this.session = session;
    this.cache = new Map();
  }

  topOf(probs, offset, k) {
    // k best of probs[offset .. offset + V), descending; ties by lower page index (stable).
    const V = this.pages.length;
    const best = [];
    for (let j = 0; j < V; j++) {
      const p = probs[offset + j];
      if (best.length < k) {
        best.push(j);
        for (let i = best.length - 1; i > 0 && probs[offset + best[i]] > probs[offset + best[i - 1]]; i--) [best[i], best[i - 1]] = [best[i - 1], best[i]];
      } else if (p > probs[offset + best[k - 1]]) {
        best[k - 1] = j;
        for (let i = k - 1; i > 0 && probs[offset + best[i]] > probs[offset + best[i - 1]]; i--) [best[i], best[i - 1]] = [best[i - 1], best[i]];
      }
    }
    return best.map((j) => ({ page: this.pages[j], probability: probs[offset + j] }));
  }

  /** One session.run for every history that is not empty and not cached. */
  async predictBatch(histories, topK) {
    const results = new Array(histories.length);
    const cached = histories.map(() => false);
    const todo = [];
    const keys = histories.map((h) => h.slice(-this.maxLen).map((p) => this.index.get(p) ?? 1).join(","));
    histories.forEach((h, i) => {
      if (h.length === 0) { results[i] = this.priorTop.slice(0, topK); return; }
      const hit = this.cache.get(keys[i]);
      if (hit) { results[i] = hit.slice(0, topK); cached[i] = true; return; }
      todo.push(i);
    });
    if (todo.length) {
      const L = this.maxLen;
      const ids = new BigInt64Array(todo.length * L); // zeros = PAD (left padding)
      todo.forEach((i, row) => {
        const tail = histories[i].slice(-L);
        tail.forEach((p, j) => { ids[row * L + (L - tail.length) + j] = BigInt(this.index.get(p) ?? 1); });
      });
      const feeds = { [this.inputName]: new ort.Tensor("int64", ids, [todo.length, L]) };
      const output = await this.session.run(feeds);
      const logits = output[this.session.outputNames[0]];
      const width = logits.dims[1];
      const V = this.pages.length;
      const probs = new Float64Array(V);
      todo.forEach((i, row) => {
        const base = row * width;
        let max = -Infinity;
        for (let c = 1; c < width; c++) max = Math.max(max, logits.data[base + c] / this.temperature);
        let sum = 0;
        for (let c = 1; c < width; c++) sum += Math.exp(logits.data[base + c] / this.temperature - max);
        for (let j = 0; j < V; j++) probs[j] = Math.exp(logits.data[base + j + 2] / this.temperature - max) / sum;
        const top = this.topOf(probs, 0, this.k);
        if (cacheLimit > 0) {
          if (this.cache.size >= cacheLimit) this.cache.delete(this.cache.keys().next().value);
          this.cache.set(keys[i], top);
        }
        results[i] = top.slice(0, topK);
      });
    }
    return { results, cached };
  }

  async predictMany(histories, topK) {
    return (await this.predictBatch(histories, topK)).results;
  }

  release() {
    this.session?.release?.();
    this.session = null;
  }
}
