// The opt-in model: the attention network through onnxruntime-web's wasm backend.
//
// workerd (like production Workers) refuses to compile wasm from bytes, so ORT's own loader fails with
// "no available backend found". The .wasm is imported as a module instead (the runtime compiles it at
// deploy time) and ORT is given a placeholder wasmBinary; when its emscripten loader instantiates that
// placeholder, WebAssembly.instantiate is redirected to the precompiled module. This depends on ORT's
// loader: keep onnxruntime-web pinned (package.json) and re-run the ORT parity test when bumping it.
//
// The model is attention format 2 (precache.edge.onnx, docs/contracts.md "Edge"): the ONNX graph is only
// the encoder (page vectors -> last hidden state); this file repeats the rest of
// precache.models.attention.runtime.AttentionRuntime: network ids (0 PAD, 1 OOV, 2 + i for pages[i]),
// input vectors = int8 page row * its scale (+ the path segment's vector; an unseen page keeps its
// segment), the last max_len pages left-padded to a power-of-two width (a few shapes: fast in wasm; the
// encoder masks padding and counts positions from the first real page), the entry (first) page's vector, then
// logits = h . V^T + bias + alpha * M[last page] in float32 (V = page + segment vectors, tied), / temperature,
// softmax without the PAD column; an empty history gets the training popularity prior.

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

const ATTENTION_FORMAT = 2;
const PAD = 0;
const OOV = 1;
const RESERVED = 2;
const TYPED = { int8: Int8Array, float32: Float32Array, uint32: Uint32Array };

/** The first directory of a path-like page ("/shuttle/x.html" -> "shuttle"), else "" (precache's segment_key). */
export function segmentKey(page) {
  if (!page.startsWith("/")) return "";
  const parts = page.split("?", 1)[0].replace(/^\/+|\/+$/g, "").split("/");
  return parts.length >= 2 && parts[0] ? parts[0] : "";
}

/** Typed views of edge-attention.bin's arrays, each checked against the layout and the expected shape. */
function readArrays(bin, layout, shapes) {
  const buffer = bin instanceof ArrayBuffer ? bin : bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  if (!layout || typeof layout !== "object") throw new ModelError("onnx manifest needs the arrays layout");
  const out = {};
  for (const [name, [dtype, shape, required]] of Object.entries(shapes)) {
    const entry = layout[name];
    if (!entry) {
      if (required) throw new ModelError(`edge-attention.bin lacks ${name}`);
      continue;
    }
    const Typed = TYPED[dtype];
    const given = Array.isArray(entry.shape) ? entry.shape : [];
    if (entry.dtype !== dtype || given.length !== shape.length || given.some((n, i) => !Number.isInteger(n) || n < 0 || (shape[i] !== null && n !== shape[i]))) {
      throw new ModelError(`edge-attention.bin ${name}: ${entry.dtype}${JSON.stringify(given)}, expected ${dtype}${JSON.stringify(shape)}`);
    }
    const count = given.reduce((a, b) => a * b, 1);
    if (!Number.isInteger(entry.offset) || entry.offset < 0 || entry.offset % 8 || entry.offset + count * Typed.BYTES_PER_ELEMENT > buffer.byteLength) {
      throw new ModelError(`edge-attention.bin ${name}: offset ${entry.offset} is outside the file`);
    }
    out[name] = new Typed(buffer, entry.offset, count);
  }
  return out;
}

export class OrtModel {
  static kind = "onnx";
  static tolerance = 1e-4; // wasm vs native onnxruntime float noise

  static configure(env) {
    cacheLimit = Math.max(0, Number(env.PREDICTION_CACHE_SIZE ?? 4096));
  }

  static async build(manifest, files) {
    const p = manifest.onnx;
    if (!p || p.attention_format !== ATTENTION_FORMAT) {
      throw new ModelError(`this worker serves attention format ${ATTENTION_FORMAT} exports, not ${p?.attention_format ?? 1}: re-export with \`precache edge build --worker ort\``);
    }
    if (!Number.isInteger(p.max_len) || p.max_len < 1 || !(p.temperature > 0) || !Number.isInteger(p.d_model) || p.d_model < 1
        || !Number.isFinite(p.alpha) || !Array.isArray(p.segments) || !p.segments.every((s) => typeof s === "string")) {
      throw new ModelError("onnx manifest needs max_len, d_model, a positive temperature, alpha and the segment names");
    }
    const vocab = readVocabulary(files, "onnx", "edge-model.onnx", "edge-attention.bin");
    const N = vocab.pages.length + RESERVED;
    const d = p.d_model;
    const arrays = readArrays(files["edge-attention.bin"], p.arrays, {
      page_q: ["int8", [N, d], true], page_scale: ["float32", [N], true], bias: ["float32", [N], true],
      segment_table: ["float32", [p.segments.length + 1, d], false],
      markov_indptr: ["uint32", [N + 1], false], markov_indices: ["uint32", [null], false], markov_values: ["float32", [null], false],
    });
    const markovParts = ["markov_indptr", "markov_indices", "markov_values"].filter((n) => arrays[n]).length;
    if (markovParts !== 0 && markovParts !== 3) throw new ModelError("edge-attention.bin has part of the Markov term");
    if (markovParts === 3) {
      const { markov_indptr: ptr, markov_indices: idx, markov_values: val } = arrays;
      if (ptr[0] !== 0 || ptr[N] !== idx.length || val.length !== idx.length) throw new ModelError("the Markov term's rows do not add up");
      for (let i = 0; i < N; i++) if (ptr[i + 1] < ptr[i]) throw new ModelError("the Markov term's rows are not ordered");
      for (let i = 0; i < idx.length; i++) if (idx[i] >= N) throw new ModelError("the Markov term names a page outside the vocabulary");
    }
    initOrt();
    let session;
    try {
      session = await ort.InferenceSession.create(new Uint8Array(files["edge-model.onnx"]), {
        executionProviders: ["wasm"], graphOptimizationLevel: "all",
      });
    } catch (err) {
      throw new ModelError(`onnxruntime-web cannot load edge-model.onnx: ${err.message ?? err}`);
    }
    for (const name of ["emb", "real", "entry"]) {
      if (!session.inputNames.includes(name)) {
        session.release?.();
        throw new ModelError(`edge-model.onnx has no input ${name} (inputs: ${session.inputNames.join(", ")})`);
      }
    }
    return new OrtModel(manifest, vocab, arrays, session);
  }

  constructor(manifest, vocab, arrays, session) {
    const p = manifest.onnx;
    this.manifest = manifest;
    this.k = manifest.k;
    this.maxLen = p.max_len;
    this.d = p.d_model;
    this.temperature = p.temperature;
    this.alpha = Math.fround(p.alpha);
    this.pages = vocab.pages;
    this.index = new Map(vocab.pages.map((page, i) => [page, i + RESERVED]));
    this.segmentIds = new Map(p.segments.map((s, i) => [s, i + 1]));
    const N = vocab.pages.length + RESERVED;
    const d = this.d;
    // Float32Array stores round each float64 result once: the same float32 numbers numpy computes.
    this.inputTable = new Float32Array(N * d);
    for (let x = RESERVED - 1; x < N; x++) {
      const scale = arrays.page_scale[x];
      for (let c = 0; c < d; c++) this.inputTable[x * d + c] = arrays.page_q[x * d + c] * scale;
    }
    this.segmentTable = arrays.segment_table ?? null;
    this.segmentOf = new Int32Array(N);
    vocab.pages.forEach((page, i) => { this.segmentOf[i + RESERVED] = this.segmentIds.get(segmentKey(page)) ?? 0; });
    this.outputTable = Float32Array.from(this.inputTable);
    if (this.segmentTable) {
      for (let x = 0; x < N; x++) {
        const s = this.segmentOf[x] * d;
        for (let c = 0; c < d; c++) this.outputTable[x * d + c] += this.segmentTable[s + c];
      }
    }
    this.bias = arrays.bias;
    this.markov = arrays.markov_indptr ? { ptr: arrays.markov_indptr, idx: arrays.markov_indices, val: arrays.markov_values } : null;
    const total = vocab.counts.reduce((a, b) => a + b, 0);
    const prior = total > 0 ? vocab.counts.map((c) => c / total) : vocab.pages.map(() => 1 / Math.max(1, vocab.pages.length));
    this.priorTop = this.topOf(Float64Array.from(prior), 0, this.k);
    this.session = session;
    this.cache = new Map();
    this.logits = new Float32Array(N);
    this.probs = new Float64Array(vocab.pages.length);
    this.exps = new Float64Array(N);
  }

  /** [network id, segment id] of a page; an unseen page is OOV but keeps its path segment. */
  encode(page) {
    const id = this.index.get(page);
    if (id !== undefined) return [id, this.segmentOf[id]];
    return [OOV, this.segmentTable ? this.segmentIds.get(segmentKey(page)) ?? 0 : 0];
  }

  /** Write the input vector of (id, segment) into out[at .. at + d). */
  vector(id, seg, out, at) {
    const d = this.d;
    const row = id * d;
    if (this.segmentTable) {
      const s = seg * d;
      for (let c = 0; c < d; c++) out[at + c] = this.inputTable[row + c] + this.segmentTable[s + c];
    } else {
      out.set(this.inputTable.subarray(row, row + d), at);
    }
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

  /** Calibrated top-k pages from one hidden state and the history's last network id. */
  answer(hidden, at, last) {
    const d = this.d;
    const d4 = d - (d % 4); // four partial sums keep the CPU's pipelines busy (2x faster than one)
    const z = this.logits;
    const N = z.length;
    const out = this.outputTable;
    for (let x = 0; x < N; x++) {
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      const row = x * d;
      for (let c = d4; c < d; c++) s0 += hidden[at + c] * out[row + c];
      for (let c = 0; c < d4; c += 4) {
        s0 += hidden[at + c] * out[row + c];
        s1 += hidden[at + c + 1] * out[row + c + 1];
        s2 += hidden[at + c + 2] * out[row + c + 2];
        s3 += hidden[at + c + 3] * out[row + c + 3];
      }
      z[x] = (s0 + s1) + (s2 + s3);
      z[x] += this.bias[x];
    }
    if (this.markov) {
      const { ptr, idx, val } = this.markov;
      for (let e = ptr[last]; e < ptr[last + 1]; e++) z[idx[e]] += Math.fround(this.alpha * val[e]);
    }
    const T = this.temperature;
    let max = -Infinity;
    for (let x = 1; x < N; x++) { const v = z[x] / T; if (v > max) max = v; } // column 0 (PAD) is never a next page
    const e = this.exps;
    let sum = 0;
    for (let x = 1; x < N; x++) { const v = Math.exp(z[x] / T - max); e[x] = v; sum += v; }
    const probs = this.probs;
    for (let j = 0; j < probs.length; j++) probs[j] = e[j + RESERVED] / sum;
    return this.topOf(probs, 0, this.k);
  }

  /**
   * The input width for a history of `length` pages: the next power of two, at most max_len. A few fixed
   * widths keep onnxruntime-web on shapes it has planned (a new shape per request cost p90 ~4.7 ms), and a
   * short history does not pay for max_len positions: a batch of 64 padded to max_len did 64x the work of
   * one request, so batching gained nothing. Left padding never changes the answer (the encoder masks it
   * and counts positions from the first real page).
   */
  widthFor(length) {
    let width = 1;
    while (width < length) width *= 2;
    return Math.min(width, this.maxLen);
  }

  /** One session.run for encoded histories ([entry, ...last max_len pages]) at input width L: their top-k. */
  async run(histories, L) {
    const d = this.d;
    const n = histories.length;
    const emb = new Float32Array(n * L * d); // zero rows = PAD (left padding)
    const real = new Float32Array(n * L);
    const entry = new Float32Array(n * d);
    const last = new Int32Array(n);
    histories.forEach(([first, ...tail], row) => {
      const pad = L - tail.length;
      tail.forEach(([id, seg], j) => {
        this.vector(id, seg, emb, (row * L + pad + j) * d);
        real[row * L + pad + j] = 1;
      });
      this.vector(first[0], first[1], entry, row * d);
      last[row] = tail[tail.length - 1][0];
    });
    const output = await this.session.run({
      emb: new ort.Tensor("float32", emb, [n, L, d]),
      real: new ort.Tensor("float32", real, [n, L]),
      entry: new ort.Tensor("float32", entry, [n, d]),
    });
    const hidden = output[this.session.outputNames[0]].data;
    return histories.map((_, row) => this.answer(hidden, row * d, last[row]));
  }

  /** One session.run per input width for the histories that are not empty and not cached. */
  async predictBatch(histories, topK) {
    const results = new Array(histories.length);
    const cached = histories.map(() => false);
    const todo = [];
    const encoded = histories.map((h) => (h.length ? [h[0], ...h.slice(-this.maxLen)].map((p) => this.encode(p)) : null));
    const keys = encoded.map((e) => (e && cacheLimit > 0 ? e.join(";") : null));
    histories.forEach((h, i) => {
      if (h.length === 0) { results[i] = this.priorTop.slice(0, topK); return; }
      const hit = keys[i] !== null ? this.cache.get(keys[i]) : undefined;
      if (hit) { results[i] = hit.slice(0, topK); cached[i] = true; return; }
      todo.push(i);
    });
    const groups = new Map(); // input width -> the todo rows that run at that width
    for (const i of todo) {
      const width = this.widthFor(encoded[i].length - 1);
      if (!groups.has(width)) groups.set(width, []);
      groups.get(width).push(i);
    }
    for (const [width, rows] of groups) {
      const tops = await this.run(rows.map((i) => encoded[i]), width);
      rows.forEach((i, row) => {
        if (cacheLimit > 0) {
          if (this.cache.size >= cacheLimit) this.cache.delete(this.cache.keys().next().value);
          this.cache.set(keys[i], tops[row]);
        }
        results[i] = tops[row].slice(0, topK);
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
