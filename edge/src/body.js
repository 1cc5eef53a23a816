// Reading request bodies with a bounded memory (issue 27).
//
// Why streaming: `request.text()` reads a chunked body (no Content-Length) whole before its size can be
// checked, so a 90 MB body cost 90 MB+ before the 413. Here the body is read chunk by chunk and the read
// stops (the stream is cancelled, 413 sent) as soon as it passes the route's limit.
// Why an isolate-wide budget: each request's limit alone does not bound many concurrent requests. Before
// its body is read, a request reserves its Content-Length (or, for a chunked body, the route's limit, the
// unused rest given back once read) from one budget (INFLIGHT_BODY_BYTES, default 4 MiB) until it has
// finished. A request that does not fit waits its turn (first come, first served, at most
// BODY_WAIT_MS, default 2 s) and is then shed with 503 + Retry-After. Reserving the whole amount up front
// means no request waits while holding part of the budget (no deadlock between half-read bodies).

export class HttpError extends Error {
  constructor(status, message, headers = {}) { super(message); this.status = status; this.headers = headers; }
}

const busy = () => new HttpError(503, "busy: too many request bytes in flight, retry shortly", { "retry-after": "1" });

/** The bytes of request bodies being read or used, isolate-wide, with a queue of requests waiting for room. */
export class BodyBudget {
  constructor(maxBytes, waitMs) {
    this.maxBytes = maxBytes;
    this.waitMs = waitMs;
    this.used = 0;
    this.shed = 0;
    this.waited = 0;
    this.queue = []; // {bytes, grant, timer}, oldest first
  }

  /** A lease for one request: ``await reserve(n)``, ``shrink(n)`` to keep only n, ``release()`` when done. */
  lease() {
    const budget = this;
    return {
      bytes: 0,
      async reserve(n) {
        await budget.acquire(n);
        this.bytes = n;
      },
      shrink(n) {
        if (n >= this.bytes) return;
        budget.give(this.bytes - n);
        this.bytes = n;
      },
      release() { budget.give(this.bytes); this.bytes = 0; },
    };
  }

  acquire(n) {
    if (n > this.maxBytes) { this.shed += 1; return Promise.reject(busy()); }
    if (this.queue.length === 0 && this.used + n <= this.maxBytes) { this.used += n; return Promise.resolve(); }
    this.waited += 1;
    return new Promise((resolve, reject) => {
      const entry = { bytes: n, grant: resolve, timer: null };
      entry.timer = setTimeout(() => {
        this.queue.splice(this.queue.indexOf(entry), 1);
        this.shed += 1;
        reject(busy());
        this.drain();
      }, this.waitMs);
      this.queue.push(entry);
    });
  }

  give(n) {
    this.used -= n;
    this.drain();
  }

  drain() {
    while (this.queue.length > 0 && this.used + this.queue[0].bytes <= this.maxBytes) {
      const entry = this.queue.shift();
      clearTimeout(entry.timer);
      this.used += entry.bytes;
      entry.grant();
    }
  }
}

const tooBig = (limit) => new HttpError(413, `body above ${limit} bytes`);

/** The body's bytes, at most ``limit`` (else 413 before reading the rest), reserved on ``lease`` first. */
export async function readBody(request, limit, lease) {
  const declared = request.headers.get("content-length");
  let expected = limit;
  if (declared !== null) {
    expected = Number(declared);
    if (!Number.isSafeInteger(expected) || expected < 0) throw new HttpError(400, "bad Content-Length");
    if (expected > limit) throw tooBig(limit);
  }
  if (!request.body) return new Uint8Array(0);
  await lease.reserve(expected);
  const reader = request.body.getReader();
  const chunks = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limit) throw tooBig(limit);
      chunks.push(value);
    }
  } catch (err) {
    reader.cancel().catch(() => {});
    throw err;
  }
  lease.shrink(total);
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) { out.set(chunk, at); at += chunk.byteLength; }
  return out;
}

/** The body parsed as JSON (400 when it is not), read as readBody does. */
export async function readJson(request, limit, lease) {
  const bytes = await readBody(request, limit, lease);
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new HttpError(400, "body is not UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `body is not valid JSON: ${err.message}`);
  }
}
