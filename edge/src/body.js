// Reading request bodies with a bounded memory (issue 27).
//
// Why streaming: `request.text()` reads a chunked body (no Content-Length) whole before its size can be
// checked, so a 90 MB body cost 90 MB+ before the 413. Here the body is read chunk by chunk and the read
// stops (the stream is cancelled, 413 sent) as soon as it passes the route's limit.
// Why an isolate-wide budget: each request's limit alone does not bound many concurrent requests; every
// byte read is charged to one budget (INFLIGHT_BODY_BYTES, default 8 MiB) until its request has finished,
// and a request that would exceed it is shed with 503 + Retry-After instead of growing the isolate.

export class HttpError extends Error {
  constructor(status, message, headers = {}) { super(message); this.status = status; this.headers = headers; }
}

/** The bytes of request bodies being read or used, isolate-wide. */
export class BodyBudget {
  constructor(maxBytes) { this.maxBytes = maxBytes; this.used = 0; this.shed = 0; }

  /** A lease charged for one request's bytes; release() once the request is done with them. */
  lease() {
    const budget = this;
    return {
      bytes: 0,
      take(n) {
        if (budget.used + n > budget.maxBytes) {
          budget.shed += 1;
          throw new HttpError(503, "busy: too many request bytes in flight, retry shortly", { "retry-after": "1" });
        }
        budget.used += n;
        this.bytes += n;
      },
      release() { budget.used -= this.bytes; this.bytes = 0; },
    };
  }
}

const tooBig = (limit) => new HttpError(413, `body above ${limit} bytes`);

/** The body's bytes, at most ``limit`` (else 413 before reading the rest), charged to ``lease``. */
export async function readBody(request, limit, lease) {
  const declared = request.headers.get("content-length");
  if (declared !== null) {
    const n = Number(declared);
    if (!Number.isSafeInteger(n) || n < 0) throw new HttpError(400, "bad Content-Length");
    if (n > limit) throw tooBig(limit);
  }
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limit) throw tooBig(limit);
      lease.take(value.byteLength);
      chunks.push(value);
    }
  } catch (err) {
    reader.cancel().catch(() => {});
    throw err;
  }
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
