// Load generator for bench/bench_edge.py: a separate process with keep-alive connections.
//   node scripts/load.mjs URL BODIES.json CONCURRENCY SECONDS [WARMUP_SECONDS]
// BODIES.json is an array of request bodies (objects) sent round-robin as POST (or GET when null).
// EDGE_TOKEN (environment): sent as Authorization: Bearer (every route but /healthz asks for it).
// Prints one JSON line: {requests, errors, seconds, rps, p50_ms, p90_ms, p99_ms, max_ms, statuses}.
import http from "node:http";
import { readFileSync } from "node:fs";

const [url, bodiesPath, concurrencyArg, secondsArg, warmupArg] = process.argv.slice(2);
const bodies = JSON.parse(readFileSync(bodiesPath, "utf8")).map((b) => (b === null ? null : Buffer.from(JSON.stringify(b))));
const concurrency = Number(concurrencyArg);
const seconds = Number(secondsArg);
const warmup = Number(warmupArg ?? 1);
const target = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const auth = process.env.EDGE_TOKEN ? { authorization: `Bearer ${process.env.EDGE_TOKEN}` } : {};

function once(body) {
  return new Promise((resolve) => {
    const req = http.request({
      host: target.hostname, port: target.port, path: target.pathname, agent,
      method: body === null ? "GET" : "POST",
      headers: body === null ? auth : { ...auth, "content-type": "application/json", "content-length": body.length },
    }, (res) => {
      res.on("data", () => {});
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", () => resolve(0));
    req.end(body ?? undefined); // headers and body in one write (no Nagle/delayed-ACK stall)
  });
}

let next = 0;
const latencies = [];
const statuses = {};
let errors = 0;
let measuring = false;
let stop = false;

async function loop() {
  while (!stop) {
    const body = bodies[next++ % bodies.length];
    const t0 = process.hrtime.bigint();
    const status = await once(body);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (!measuring) continue;
    latencies.push(ms);
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (status !== 200) errors += 1;
  }
}

const loops = Array.from({ length: concurrency }, loop);
await new Promise((r) => setTimeout(r, warmup * 1000));
measuring = true;
const start = process.hrtime.bigint();
await new Promise((r) => setTimeout(r, seconds * 1000));
measuring = false;
const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
stop = true;
await Promise.all(loops);
agent.destroy();
latencies.sort((a, b) => a - b);
const q = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : null);
console.log(JSON.stringify({
  requests: latencies.length, errors, seconds: elapsed, rps: latencies.length / elapsed,
  p50_ms: q(0.5), p90_ms: q(0.9), p99_ms: q(0.99), max_ms: latencies[latencies.length - 1] ?? null, statuses,
}));
