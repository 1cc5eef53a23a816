// The Worker's HTTP API, shared by the table worker (index.js) and the ORT worker (ort-worker.js).
//
//   POST /predict        {type: "page", sessionId, context: {currentPath, history?}, options: {topK}}
//                        -> {predictions: [{page, probability}], latency, cached, workerId, modelVersion}
//   POST /predict/batch  {requests: [<predict body>...], options?: {topK}} -> {results: [...], ...}
//                        (all sessions answered by one model run)
//   GET  /healthz        alive;  GET /readyz  200 once a verified model is loaded, else 503
//   GET  /model          version, sha256 of the edge manifest, loaded-at, last sync, rejected versions
//   POST /admin/sync     run a model sync now (Authorization: Bearer <MODEL_SYNC_TOKEN>)
// Every route but /healthz needs `Authorization: Bearer <INFERENCE_TOKEN>` (auth.js; PUBLIC_READ opens the
// read routes). Errors are JSON {error}: 400 bad JSON or fields, 401 no/wrong token, 413 too big, 422 topK
// above the exported k, 503 no model yet or too many request bytes in flight (with Retry-After).
// Memory is bounded in bytes: bodies are streamed against a per-route limit and an isolate-wide budget
// (body.js), session histories against SESSION_MAX_BYTES (sessions.js).
//
// The model input is the session's history followed by currentPath (oldest first). Without a
// history in the request, the isolate's own bounded session store supplies it (and, if a Workers KV
// namespace is bound as SESSIONS, history is shared across isolates; see edge/README.md).

import { refusal } from "./auth.js";
import { BodyBudget, HttpError, readJson } from "./body.js";
import { SessionStore } from "./sessions.js";
import { ModelHolder } from "./sync.js";

const MAX_BODY = 64 * 1024;
const MAX_BATCH_BODY = 1024 * 1024;
const MAX_BATCH = 256;
const MAX_HISTORY_IN = 1000;
const MAX_PATH = 2048;
const KEEP_HISTORY = 50;
const MIB = 1024 * 1024;

const json = (status, body, extra = {}) => new Response(JSON.stringify(body), {
  status, headers: { "content-type": "application/json", "cache-control": "no-store", ...extra },
});

function parseTopK(options, k, fallback) {
  if (options === undefined || options === null || options.topK === undefined) return fallback;
  const topK = options.topK;
  if (!Number.isInteger(topK) || topK < 1) throw new HttpError(400, "options.topK must be a positive integer");
  if (topK > k) throw new HttpError(422, `topK ${topK} is above the ${k} predictions this model exports`);
  return topK;
}

/** Validate one predict body; returns {sessionId, currentPath, history (or null), topK}. */
function parseItem(body, k, defaultTopK, where = "") {
  if (!body || typeof body !== "object" || Array.isArray(body)) throw new HttpError(400, `${where}body must be a JSON object`);
  if (body.type !== undefined && body.type !== "page") throw new HttpError(422, `${where}only type "page" is predicted at the edge`);
  const sessionId = body.sessionId ?? null;
  if (sessionId !== null && (typeof sessionId !== "string" || sessionId.length > 256)) throw new HttpError(400, `${where}sessionId must be a string`);
  const context = body.context ?? {};
  if (typeof context !== "object" || Array.isArray(context)) throw new HttpError(400, `${where}context must be an object`);
  const currentPath = context.currentPath ?? null;
  if (currentPath !== null && (typeof currentPath !== "string" || currentPath.length > MAX_PATH)) throw new HttpError(400, `${where}context.currentPath must be a string`);
  let history = null;
  if (context.history !== undefined && context.history !== null) {
    if (!Array.isArray(context.history) || context.history.length > MAX_HISTORY_IN
        || !context.history.every((p) => typeof p === "string" && p.length <= MAX_PATH)) {
      throw new HttpError(400, `${where}context.history must be an array of at most ${MAX_HISTORY_IN} strings`);
    }
    history = context.history;
  }
  return { sessionId, currentPath, history, topK: parseTopK(body.options, k, defaultTopK) };
}

function parseItems(body, k, batch) {
  const defaultTopK = Math.min(5, k);
  if (!batch) return [parseItem(body, k, defaultTopK)];
  if (!body || typeof body !== "object" || !Array.isArray(body.requests)) throw new HttpError(400, "body must be {requests: [...]}");
  if (body.requests.length > MAX_BATCH) throw new HttpError(413, `at most ${MAX_BATCH} requests per batch`);
  const batchTopK = parseTopK(body.options, k, defaultTopK);
  return body.requests.map((r, i) => parseItem(r, k, batchTopK, `requests[${i}]: `));
}

/** One isolate's Worker: its model holder, session store and body budget (made on the first event). */
class EdgeApp {
  constructor(builders, bundle, workerKind) {
    this.builders = builders;
    this.bundle = bundle;
    this.workerKind = workerKind;
    this.holder = new ModelHolder(builders);
    this.workerId = null; // random values are not allowed at global scope: made on the first event
    this.sessions = null;
    this.budget = null;
  }

  start(env) {
    if (this.sessions) return;
    this.workerId = `${this.workerKind}-${crypto.randomUUID().slice(0, 8)}`;
    this.sessions = new SessionStore(Number(env.SESSION_MAX_BYTES ?? 8 * MIB), KEEP_HISTORY);
    this.budget = new BodyBudget(Number(env.INFLIGHT_BODY_BYTES ?? 4 * MIB), Number(env.BODY_WAIT_MS ?? 2000));
    for (const builder of Object.values(this.builders)) builder.configure?.(env);
  }

  /** The bundled model (once), and a background sync when one is due: no request waits for the origin,
   * and there is at most one origin request per SYNC_INTERVAL_MS whether or not a model is loaded. */
  async ensureModel(env, ctx) {
    const holder = this.holder;
    if (!holder.initial) {
      holder.initial = holder.loadBundle(this.bundle, env).catch((err) => {
        holder.lastSync = { status: "rejected", reason: `bundled model: ${err.message}`, at: new Date().toISOString() };
      });
    }
    await holder.initial;
    const pending = holder.maybeSync(env);
    if (pending) ctx.waitUntil(pending);
  }

  /** Each item's full model input: its history, else the isolate's (or KV's) session history; then currentPath. */
  async histories(env, items) {
    return Promise.all(items.map(async (item) => {
      let before = item.history;
      if (before === null && item.sessionId !== null) {
        before = this.sessions.get(item.sessionId) ?? null;
        if (before === null && env.SESSIONS) before = (await env.SESSIONS.get(`h:${item.sessionId}`, "json")) ?? null;
      }
      const full = [...(before ?? [])];
      if (item.currentPath !== null) full.push(item.currentPath);
      return full;
    }));
  }

  remember(env, ctx, items, fulls) {
    items.forEach((item, i) => {
      if (item.sessionId === null) return;
      this.sessions.set(item.sessionId, fulls[i]);
      if (env.SESSIONS) {
        ctx.waitUntil(env.SESSIONS.put(`h:${item.sessionId}`, JSON.stringify(fulls[i].slice(-KEEP_HISTORY)), { expirationTtl: 1800 }));
      }
    });
  }

  async predict(request, env, ctx, batch) {
    const lease = this.budget.lease();
    try {
      const body = await readJson(request, batch ? MAX_BATCH_BODY : MAX_BODY, lease);
      const slot = this.holder.current;
      if (!slot) throw new HttpError(503, "no verified model is loaded yet", { "retry-after": "1" });
      slot.acquire();
      try {
        return await this.answer(env, ctx, slot, parseItems(body, slot.manifest.k, batch), batch);
      } finally {
        slot.release();
      }
    } finally {
      lease.release();
    }
  }

  async answer(env, ctx, slot, items, batch) {
    const start = performance.now();
    const fulls = await this.histories(env, items);
    const maxTopK = Math.max(1, ...items.map((it) => it.topK));
    const { results, cached } = await slot.model.predictBatch(fulls, maxTopK);
    const latency = performance.now() - start;
    this.remember(env, ctx, items, fulls);
    const one = (i) => ({
      predictions: results[i].slice(0, items[i].topK), sessionId: items[i].sessionId, cached: cached[i],
    });
    const common = { latency, workerId: this.workerId, modelVersion: slot.manifest.version };
    return batch ? json(200, { results: items.map((_, i) => one(i)), ...common }) : json(200, { ...one(0), ...common });
  }

  describe() {
    const { holder, sessions, budget } = this;
    const slot = holder.current;
    return {
      workerId: this.workerId, worker: this.workerKind,
      version: slot?.manifest.version ?? null, sha256: slot?.etag ?? null, kind: slot?.manifest.kind ?? null,
      modelKind: slot?.manifest.model_kind ?? null, k: slot?.manifest.k ?? null, loadedAt: slot?.loadedAt ?? null,
      // a component of another model (an auto model's best servable component): {served, of}
      served: slot?.manifest.served ?? null, of: slot?.manifest.of ?? null,
      source: slot?.source ?? null, metrics: slot?.manifest.metrics ?? null, swaps: holder.swaps,
      lastSync: holder.lastSync, syncing: holder.syncing !== null, originRequests: holder.originRequests,
      rejected: [...holder.rejected.entries()].map(([sha256, r]) => ({ sha256, ...r })),
      sessions: sessions.describe(), inflightBodyBytes: budget.used, shedRequests: budget.shed,
      waitedRequests: budget.waited,
    };
  }

  readiness() {
    const { holder, workerId } = this;
    if (holder.current) return json(200, { ready: true, modelVersion: holder.current.manifest.version, workerId });
    const reason = holder.lastSync?.reason ?? (holder.syncing ? "no model yet: the first sync is under way" : "no model");
    return json(503, { ready: false, reason, workerId }, { "retry-after": "1" });
  }

  async route(request, env, ctx) {
    const { pathname } = new URL(request.url);
    const method = request.method;
    if (pathname === "/healthz" && method === "GET") return json(200, { status: "ok", workerId: this.workerId });
    const refused = await refusal(request, env, pathname);
    if (refused) return json(401, { error: refused }, { "www-authenticate": 'Bearer realm="precache-edge"' });
    if (pathname === "/admin/sync" && method === "POST") {
      await this.ensureModel(env, ctx);
      const result = (await this.holder.maybeSync(env, true)) ?? { status: "disabled", reason: "MODEL_MANIFEST_URL is not set" };
      return json(200, { ...result, model: this.describe() });
    }
    await this.ensureModel(env, ctx);
    if (pathname === "/readyz" && method === "GET") return this.readiness();
    if (pathname === "/model" && method === "GET") return json(this.holder.current ? 200 : 503, this.describe());
    if (pathname === "/predict" && method === "POST") return this.predict(request, env, ctx, false);
    if (pathname === "/predict/batch" && method === "POST") return this.predict(request, env, ctx, true);
    if (["/predict", "/predict/batch", "/healthz", "/readyz", "/model", "/admin/sync"].includes(pathname)) {
      return json(405, { error: `${method} not allowed on ${pathname}` });
    }
    return json(404, { error: `no route ${pathname}` });
  }

  async fetch(request, env, ctx) {
    this.start(env);
    try {
      return await this.route(request, env, ctx);
    } catch (err) {
      if (err instanceof HttpError) return json(err.status, { error: err.message }, err.headers);
      console.error(err);
      return json(500, { error: `internal error: ${err.message}` });
    }
  }

  scheduled(event, env, ctx) {
    // The Cron Trigger: sync this isolate; others sync on their own every SYNC_INTERVAL_MS.
    this.start(env);
    ctx.waitUntil((async () => { await this.ensureModel(env, ctx); await this.holder.maybeSync(env, true); })());
  }
}

export function createWorker({ builders, bundle = null, workerKind }) {
  const app = new EdgeApp(builders, bundle, workerKind);
  return {
    fetch: (request, env, ctx) => app.fetch(request, env, ctx),
    scheduled: async (event, env, ctx) => app.scheduled(event, env, ctx),
  };
}
