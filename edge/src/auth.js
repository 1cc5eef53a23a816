// Who may call the Worker. Every route except GET /healthz asks for a token (issue 27):
//   /predict, /predict/batch, /model, /readyz: `Authorization: Bearer <INFERENCE_TOKEN>` (the service sends
//       its ML_EDGE_INFERENCE_TOKEN), or MODEL_SYNC_TOKEN; PUBLIC_READ = "true" opens them for a public
//       read-only deployment (off by default);
//   /admin/sync: MODEL_SYNC_TOKEN only;  any other path (404/405 answers): either token.
// A Worker with no token configured refuses every guarded route (fails closed).
//
// Credentials are parsed as RFC 7235 says (`credentials = auth-scheme [ 1*SP token68 ]`): the scheme is
// case-insensitive (`bearer tok` is accepted), and a header without a scheme (`Authorization: tok`) is
// refused. Secrets are compared in constant time: both sides are hashed to 32 bytes first, so neither the
// length nor a common prefix of the secret shows in the timing.

const CREDENTIALS = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) +([A-Za-z0-9._~+/-]+=*) *$/;

/** The token of an `Authorization: Bearer <token>` header value, or null (absent, malformed, other scheme). */
export function bearerToken(header) {
  if (typeof header !== "string") return null;
  const match = CREDENTIALS.exec(header.trim());
  if (!match || match[1].toLowerCase() !== "bearer") return null;
  return match[2];
}

async function digest(text) {
  return crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
}

/** Whether ``given`` equals one of ``secrets`` (empty secrets never match), in constant time per secret. */
export async function matchesSecret(given, secrets) {
  if (given === null) return false;
  const mine = await digest(given);
  let ok = false;
  for (const secret of secrets) {
    if (!secret) continue;
    ok = crypto.subtle.timingSafeEqual(mine, await digest(secret)) || ok;
  }
  return ok;
}

const READ_ROUTES = new Set(["/predict", "/predict/batch", "/model", "/readyz"]);

/** Whether ``request`` may use ``pathname``: null when allowed, else the reason (sent as 401). */
export async function refusal(request, env, pathname) {
  if (pathname === "/healthz") return null;
  if (READ_ROUTES.has(pathname) && String(env.PUBLIC_READ ?? "false").toLowerCase() === "true") return null;
  const admin = pathname.startsWith("/admin/");
  const secrets = admin ? [env.MODEL_SYNC_TOKEN] : [env.INFERENCE_TOKEN, env.MODEL_SYNC_TOKEN];
  const given = bearerToken(request.headers.get("authorization"));
  if (await matchesSecret(given, secrets)) return null;
  const which = admin ? "MODEL_SYNC_TOKEN" : "INFERENCE_TOKEN";
  return `unauthorized: send Authorization: Bearer <${which}>`;
}
