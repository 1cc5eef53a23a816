// Which model this isolate serves, and how a new one replaces it.
//
// A model is loaded from a bundle (deploy time) or synced from the origin: poll one small edge
// manifest with If-None-Match (ETag = the manifest's sha256), fetch the files it names (concurrently),
// verify each sha256 and length, build the model, run the manifest's probes, then swap one reference.
// Requests hold the model they started with (acquire/release), so in-flight requests finish on the old
// model; the old one is released when its last request ends.
// Polls are rate-limited whether or not a model is loaded: at most one sync starts per SYNC_INTERVAL_MS
// (and never two at once), it runs in the background (requests never wait for the origin), and each origin
// request has a deadline (SYNC_TIMEOUT_MS; a timed-out request is not retried), so a hung origin costs one
// request per interval and holds no request.
// A manifest that fails verification or probing is remembered by its sha256 and not downloaded again
// until its back-off has passed (REJECTED_RETRY_MS, doubling per failure up to an hour), so an origin that
// fixed its files is picked up; network errors are not held against it, and neither is a file that does
// not match because the origin switched versions between the manifest and the file (files are fetched by
// name from the active version: the manifest is read again to tell).

import { FileError, ModelError, parseManifest, probe, sha256Hex, verifyFile } from "./verify.js";

const MAX_MANIFEST_BYTES = 1 << 20;
const MAX_REJECTED = 64;
const MAX_REJECTED_BACKOFF_MS = 3600 * 1000;

class TransientError extends Error {}

/** One loaded model with an in-flight count; released once retired and idle. */
class Slot {
  constructor(model, manifest, etag, source) {
    this.model = model;
    this.manifest = manifest;
    this.etag = etag;
    this.source = source;
    this.loadedAt = new Date().toISOString();
    this.inflight = 0;
    this.retired = false;
  }
  acquire() { this.inflight += 1; return this; }
  release() {
    this.inflight -= 1;
    if (this.retired && this.inflight === 0) this.model.release();
  }
  retire() {
    this.retired = true;
    if (this.inflight === 0) this.model.release();
  }
}

async function readCapped(response, limit, what) {
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > limit) throw new FileError(`${what} is ${declared} bytes, above the limit ${limit}`);
  const bytes = await response.arrayBuffer();
  if (bytes.byteLength > limit) throw new FileError(`${what} is ${bytes.byteLength} bytes, above the limit ${limit}`);
  return bytes;
}

export class ModelHolder {
  /** builders: {kind: {build(manifest, files) -> model, tolerance}} */
  constructor(builders) {
    this.builders = builders;
    this.current = null;
    this.rejected = new Map();
    this.lastSeenEtag = null;
    this.lastCheck = -Infinity;
    this.syncing = null;
    this.lastSync = null;
    this.swaps = 0;
    this.initial = null;
    this.originRequests = 0;
  }

  /** Verify and build a model from manifest bytes and a file getter; throws ModelError if refused. */
  async load(manifestBytes, getFile, source, maxBytes) {
    const etag = await sha256Hex(manifestBytes);
    const manifest = parseManifest(manifestBytes, maxBytes);
    const builder = this.builders[manifest.kind];
    if (!builder) {
      const hint = manifest.kind === "onnx" ? " (deploy the ORT worker, wrangler.ort.toml, for ONNX models)" : "";
      throw new ModelError(`this worker serves ${Object.keys(this.builders).join(", ")} models, not ${manifest.kind}${hint}`);
    }
    const files = Object.fromEntries(await Promise.all(Object.entries(manifest.files).map(async ([name, entry]) => {
      const bytes = await getFile(name, entry);
      await verifyFile(name, bytes, entry);
      return [name, bytes];
    })));
    const model = await builder.build(manifest, files);
    try {
      await probe(model, manifest, builder.tolerance);
    } catch (err) {
      model.release();
      throw err;
    }
    return new Slot(model, manifest, etag, source);
  }

  swap(slot) {
    const old = this.current;
    this.current = slot;
    this.swaps += 1;
    if (old) old.retire();
  }

  /** Load the model bundled at deploy time (once per isolate). */
  async loadBundle(bundle, env) {
    if (!bundle) return;
    const slot = await this.load(bundle.manifest, async (name) => {
      if (!(name in bundle.files)) throw new ModelError(`bundled model lacks ${name}`);
      return bundle.files[name];
    }, "bundle", maxModelBytes(env));
    if (!this.current) this.swap(slot);
  }

  /** Start a sync unless one is running (its promise is returned) or one started within the interval
   * (null; ``force``, for /admin/sync and the Cron Trigger, skips the interval). */
  maybeSync(env, force = false) {
    if (!env.MODEL_MANIFEST_URL) return null;
    const now = Date.now();
    const interval = Number(env.SYNC_INTERVAL_MS ?? 60000);
    if (this.syncing) return this.syncing;
    if (!force && now - this.lastCheck < interval) return null;
    this.lastCheck = now;
    this.syncing = this.syncOnce(env).then((result) => {
      this.lastSync = { ...result, at: new Date().toISOString() };
      return this.lastSync;
    }).finally(() => { this.syncing = null; });
    return this.syncing;
  }

  async syncOnce(env) {
    const url = env.MODEL_MANIFEST_URL;
    const timeout = Number(env.SYNC_TIMEOUT_MS ?? 10000);
    const auth = env.MODEL_SYNC_TOKEN ? { authorization: `Bearer ${env.MODEL_SYNC_TOKEN}` } : {};
    const headers = { ...auth };
    if (this.lastSeenEtag && !this.retryDue(this.lastSeenEtag)) headers["if-none-match"] = `"${this.lastSeenEtag}"`;
    const get = (target, hdrs) => { this.originRequests += 1; return fetchRetry(target, hdrs, timeout); };
    let response;
    try {
      response = await get(url, headers);
    } catch (err) {
      return { status: "error", reason: `manifest fetch failed: ${err.message}` };
    }
    if (response.status === 304) return { status: "unchanged" };
    if (!response.ok) return { status: "error", reason: `manifest HTTP ${response.status}` };
    let bytes;
    try {
      bytes = await readCapped(response, MAX_MANIFEST_BYTES, "edge manifest");
    } catch (err) {
      return { status: "error", reason: err.message };
    }
    const etag = await sha256Hex(bytes);
    this.lastSeenEtag = etag;
    if (this.current && this.current.etag === etag) return { status: "unchanged" };
    if (this.rejected.has(etag) && !this.retryDue(etag)) {
      const prior = this.rejected.get(etag);
      return { status: "rejected-before", etag, reason: prior.reason, retryAt: prior.retryAt };
    }
    const maxBytes = maxModelBytes(env);
    let slot;
    try {
      slot = await this.load(bytes, async (name, entry) => {
        let file;
        try {
          file = await get(new URL(name, url), auth);
        } catch (err) {
          throw new TransientError(`fetching ${name} failed: ${err.message}`);
        }
        if (file.status >= 500 || file.status === 429) throw new TransientError(`fetching ${name}: HTTP ${file.status}`);
        if (!file.ok) throw new FileError(`fetching ${name}: HTTP ${file.status}`);
        return readCapped(file, Math.min(maxBytes, entry.bytes + 1), name);
      }, "sync", maxBytes);
    } catch (err) {
      const moved = err instanceof FileError && await originMoved(() => get(url, auth), etag);
      if (err instanceof TransientError || moved) {
        this.lastSeenEtag = null; // try this manifest again next time
        return { status: "error", reason: moved ? `${err.message}; the origin's manifest changed meanwhile` : err.message };
      }
      return this.reject(env, etag, bytes, err);
    }
    this.rejected.delete(etag);
    this.swap(slot);
    return { status: "swapped", etag, version: slot.manifest.version };
  }

  /** Whether a rejected manifest's back-off has passed (so it is downloaded and checked again). */
  retryDue(etag) {
    const prior = this.rejected.get(etag);
    return prior !== undefined && Date.now() >= Date.parse(prior.retryAt);
  }

  /** Remember a refused manifest with its back-off: REJECTED_RETRY_MS, doubled per failure, <= 1 hour. */
  reject(env, etag, bytes, err) {
    const reason = err instanceof ModelError ? err.message : `${err.name}: ${err.message}`;
    const failures = (this.rejected.get(etag)?.failures ?? 0) + 1;
    this.rejected.delete(etag);
    if (this.rejected.size >= MAX_REJECTED) this.rejected.delete(this.rejected.keys().next().value);
    let version = null;
    try { version = JSON.parse(new TextDecoder().decode(bytes)).version ?? null; } catch { /* unparsable */ }
    const base = Number(env.REJECTED_RETRY_MS ?? 300000);
    const retryAt = new Date(Date.now() + Math.min(base * 2 ** (failures - 1), MAX_REJECTED_BACKOFF_MS)).toISOString();
    this.rejected.set(etag, { version, reason, at: new Date().toISOString(), failures, retryAt });
    return { status: "rejected", etag, version, reason, retryAt };
  }
}

/** Whether the origin's manifest is no longer the one with sha256 `etag` (unknown counts as moved). */
async function originMoved(getManifest, etag) {
  try {
    const response = await getManifest();
    if (!response.ok) return true;
    return (await sha256Hex(await readCapped(response, MAX_MANIFEST_BYTES, "edge manifest"))) !== etag;
  } catch {
    return true;
  }
}

/** fetch with a deadline and two retries on network errors (a dropped keep-alive connection is common);
 * a request that timed out is not retried (a hung origin would hold the sync three times as long). */
async function fetchRetry(url, headers, timeout) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetch(url, { headers, signal: AbortSignal.timeout(timeout) });
    } catch (err) {
      if (attempt >= 3 || err.name === "TimeoutError" || err.name === "AbortError") throw err;
    }
  }
}

export function maxModelBytes(env) {
  return Number(env.MAX_MODEL_BYTES ?? 64 * 1024 * 1024);
}
