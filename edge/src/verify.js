// Checks shared by every model kind: sha256 of bytes, the edge manifest's shape, probes.
// Why here: a model reaches the Worker either bundled at deploy time or synced from the origin; both
// paths go through the same checks, so a tampered or truncated file is refused the same way.

export const MANIFEST_FORMAT = "precache-edge-model";
export const MANIFEST_VERSION = 1;
const MAX_FILES = 16;
const HEX64 = /^[0-9a-f]{64}$/;
const SAFE_NAME = /^[A-Za-z0-9._-]{1,100}$/;

export class ModelError extends Error {}
/** A file that is not what the manifest says (length, sha256, or missing at the origin). */
export class FileError extends ModelError {}

export async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Parse and check an edge manifest (bytes or string); throws ModelError naming what is wrong. */
export function parseManifest(raw, maxBytes) {
  let manifest;
  try {
    manifest = JSON.parse(typeof raw === "string" ? raw : new TextDecoder().decode(raw));
  } catch (err) {
    throw new ModelError(`edge manifest is not JSON: ${err.message}`);
  }
  if (!manifest || typeof manifest !== "object" || manifest.format !== MANIFEST_FORMAT) {
    throw new ModelError(`not a ${MANIFEST_FORMAT} manifest`);
  }
  if (!Number.isInteger(manifest.format_version) || manifest.format_version > MANIFEST_VERSION) {
    throw new ModelError(`edge manifest format_version ${manifest.format_version} is not supported (max ${MANIFEST_VERSION})`);
  }
  if (typeof manifest.version !== "string" || !manifest.version) throw new ModelError("edge manifest has no version");
  if (!Number.isInteger(manifest.k) || manifest.k < 1) throw new ModelError("edge manifest k must be a positive integer");
  const files = manifest.files;
  if (!files || typeof files !== "object" || Object.keys(files).length === 0 || Object.keys(files).length > MAX_FILES) {
    throw new ModelError("edge manifest files must name 1..16 files");
  }
  let total = 0;
  for (const [name, entry] of Object.entries(files)) {
    if (!SAFE_NAME.test(name) || name.startsWith(".")) throw new ModelError(`bad file name ${JSON.stringify(name)}`);
    if (!entry || !HEX64.test(entry.sha256 ?? "") || !Number.isInteger(entry.bytes) || entry.bytes < 0) {
      throw new ModelError(`file ${name}: needs sha256 (64 hex) and bytes`);
    }
    total += entry.bytes;
  }
  if (maxBytes && total > maxBytes) throw new ModelError(`model files total ${total} bytes, above the limit ${maxBytes}`);
  if (!Array.isArray(manifest.probes)) throw new ModelError("edge manifest has no probes");
  return manifest;
}

/** The files a model kind needs (all present), and edge-vocabulary.json parsed: {pages, counts}. */
export function readVocabulary(files, kind, ...needed) {
  for (const name of ["edge-vocabulary.json", ...needed]) {
    if (!files[name]) throw new ModelError(`${kind} model needs ${name}`);
  }
  let vocab;
  try {
    vocab = JSON.parse(new TextDecoder().decode(files["edge-vocabulary.json"]));
  } catch (err) {
    throw new ModelError(`edge-vocabulary.json is not JSON: ${err.message}`);
  }
  if (!vocab || !Array.isArray(vocab.pages) || !vocab.pages.every((p) => typeof p === "string")
      || !Array.isArray(vocab.counts) || vocab.counts.length !== vocab.pages.length) {
    throw new ModelError("edge-vocabulary.json must hold {pages: [string], counts: [number]}");
  }
  return vocab;
}

/** Check one file's length and sha256 against its manifest entry. */
export async function verifyFile(name, bytes, entry) {
  if (bytes.byteLength !== entry.bytes) {
    throw new FileError(`file ${name} has ${bytes.byteLength} bytes, the manifest says ${entry.bytes} (truncated?)`);
  }
  const actual = await sha256Hex(bytes);
  if (actual !== entry.sha256) {
    throw new FileError(`file ${name} sha256 ${actual.slice(0, 12)}... != manifest ${entry.sha256.slice(0, 12)}...`);
  }
}

/**
 * Run the manifest's probes (histories with the Python predictor's answers) through a freshly built
 * model before it may serve. ``tolerance`` 0 means identical pages and probabilities (tables);
 * the ONNX model allows float noise between wasm and native onnxruntime.
 */
export async function probe(model, manifest, tolerance) {
  if (manifest.probes.length === 0) throw new ModelError("edge manifest has no probes: refusing an unchecked model");
  const k = Math.min(manifest.k, ...manifest.probes.map((p) => p.top.length));
  const results = await model.predictMany(manifest.probes.map((p) => p.history), k);
  manifest.probes.forEach((p, i) => {
    const got = results[i];
    const want = p.top.slice(0, k);
    if (got.length !== want.length) throw new ModelError(`probe ${i}: ${got.length} predictions, expected ${want.length}`);
    if (tolerance === 0) {
      want.forEach(([page, prob], j) => {
        if (got[j].page !== page || got[j].probability !== prob) {
          throw new ModelError(`probe ${i}: prediction ${j} is ${got[j].page}=${got[j].probability}, expected ${page}=${prob}`);
        }
      });
      return;
    }
    const gotProb = new Map(got.map((g) => [g.page, g.probability]));
    // Same top-1 probability and every expected page present with its probability (ties may reorder).
    if (Math.abs(got[0].probability - want[0][1]) > tolerance) {
      throw new ModelError(`probe ${i}: top probability ${got[0].probability}, expected ${want[0][1]}`);
    }
    let missing = 0;
    for (const [page, prob] of want) {
      const mine = gotProb.get(page);
      if (mine === undefined) missing += 1;
      else if (Math.abs(mine - prob) > tolerance) throw new ModelError(`probe ${i}: ${page}=${mine}, expected ${prob}`);
    }
    if (missing > 1) throw new ModelError(`probe ${i}: ${missing} expected pages missing from the top ${k}`);
  });
}
