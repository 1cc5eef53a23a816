// The default model: a Markov / PPM predictor exported as top-k tables (see docs/contracts.md, "Edge").
//
// Why tables: the Python predictor's answer depends only on the longest suffix of the last
// ``max_order`` pages that it saw in training (PPM backs off at the first unseen suffix), so
// precomputing the top-k of every such context gives *exactly* the Python predictions with a
// binary search per order: no model arithmetic at the edge, a bundle of kilobytes to a few MB.
//
// edge-table.bin, little-endian, for each order n = 0..max_order in turn, each section padded to 8 bytes:
//   probs float64[C_n * k]   the top-k probabilities of each context, best first
//   ids   uint32[C_n * k]    their page ids (vocabulary id; page = pages[id - 1])
//   ctx   uint32[C_n * n]    the contexts (n page ids each, oldest first), sorted lexicographically
// where C_n = manifest.table.contexts[n] (C_0 = 1: the empty context) and k = manifest.k.

import { ModelError, readVocabulary } from "./verify.js";

const pad8 = (n) => (n + 7) & ~7;

export class TableModel {
  static kind = "table";
  static tolerance = 0; // probes must match the Python predictor exactly

  /** Build from verified file bytes; throws ModelError on an inconsistent table. */
  static build(manifest, files) {
    const table = manifest.table;
    if (!table || !Number.isInteger(table.max_order) || table.max_order < 0 || table.max_order > 8
        || !Array.isArray(table.contexts) || table.contexts.length !== table.max_order + 1 || table.contexts[0] !== 1) {
      throw new ModelError("table manifest needs max_order (0..8) and contexts per order (order 0 = 1)");
    }
    const vocab = readVocabulary(files, "table", "edge-table.bin");
    return new TableModel(manifest, vocab.pages, files["edge-table.bin"]);
  }

  constructor(manifest, pages, bin) {
    this.manifest = manifest;
    this.version = manifest.version;
    this.k = manifest.k;
    this.maxOrder = manifest.table.max_order;
    this.pages = pages;
    this.index = new Map(pages.map((p, i) => [p, i + 1]));
    const buffer = bin instanceof ArrayBuffer ? bin : bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
    const k = this.k;
    this.orders = [];
    let offset = 0;
    for (let n = 0; n <= this.maxOrder; n++) {
      const count = manifest.table.contexts[n];
      if (!Number.isInteger(count) || count < 0) throw new ModelError(`bad context count for order ${n}`);
      const need = pad8(count * k * 8) + pad8(count * k * 4) + pad8(count * n * 4);
      if (offset + need > buffer.byteLength) throw new ModelError(`edge-table.bin is too short for order ${n}`);
      const probs = new Float64Array(buffer, offset, count * k);
      offset += pad8(count * k * 8);
      const ids = new Uint32Array(buffer, offset, count * k);
      offset += pad8(count * k * 4);
      const ctx = new Uint32Array(buffer, offset, count * n);
      offset += pad8(count * n * 4);
      this.orders.push({ n, count, probs, ids, ctx });
    }
    if (offset !== buffer.byteLength) throw new ModelError(`edge-table.bin has ${buffer.byteLength - offset} unexpected trailing bytes`);
    // Page ids are checked where they are read (predict), not all here: a loop over every id of a 3.5 MB
    // table cost ~4 ms of a cold isolate's first request (the Free plan allows 10 ms of CPU per request).
    // The file's sha256 has been checked, and the probes read their rows before the model may serve.
  }

  /** Row of ``context`` (ids, oldest first) in order ``n``'s sorted contexts, or -1. */
  find(n, context, from) {
    const { ctx, count } = this.orders[n];
    let lo = 0;
    let hi = count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      let cmp = 0;
      for (let j = 0; j < n && cmp === 0; j++) cmp = ctx[mid * n + j] - context[from + j];
      if (cmp === 0) return mid;
      if (cmp < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  predict(history, topK) {
    const m = Math.min(this.maxOrder, history.length);
    const context = new Array(m);
    for (let i = 0; i < m; i++) context[i] = this.index.get(history[history.length - m + i]) ?? 0;
    let order = 0;
    let row = 0;
    for (let n = 1; n <= m; n++) {
      const found = this.find(n, context, m - n);
      if (found < 0) break; // a longer context with an unseen suffix is unseen too (as in Python)
      order = n;
      row = found;
    }
    const { probs, ids } = this.orders[order];
    const out = [];
    for (let j = 0; j < topK; j++) {
      const id = ids[row * this.k + j];
      if (!(id >= 1 && id <= this.pages.length)) throw new ModelError(`edge-table.bin names page id ${id}, outside the vocabulary`);
      out.push({ page: this.pages[id - 1], probability: probs[row * this.k + j] });
    }
    return out;
  }

  async predictBatch(histories, topK) {
    return { results: histories.map((h) => this.predict(h, topK)), cached: histories.map(() => false) };
  }

  async predictMany(histories, topK) {
    return (await this.predictBatch(histories, topK)).results;
  }

  release() {}
}
