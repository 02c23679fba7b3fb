// Calls the perf-platform gateway with the real @trpc/client and prints what it saw as JSON.
//
//   node check_gateway.mjs http://127.0.0.1:PORT/trpc
//
// Exit 0 when every check passed, 1 when one failed (the JSON says which), 2 on bad usage.
// The pytest test that runs this asserts on the printed values too.

import { createTRPCClient, httpBatchLink, httpLink, TRPCClientError } from "@trpc/client";

const url = process.argv[2];
if (!url) {
  console.error("usage: node check_gateway.mjs <gateway tRPC URL, e.g. http://127.0.0.1:8000/trpc>");
  process.exit(2);
}

const SCORE_INPUT = { entity_id: "harness-1", features: { clicks: 3, dwell_seconds: 12.5 } };

// A fetch that keeps what it was sent and what it got, so the checks can see the wire.
function recordingFetch(log) {
  return async (input, init) => {
    const response = await fetch(input, init);
    log.push({
      method: init?.method ?? "GET",
      url: String(input),
      status: response.status,
      etag: response.headers.get("etag"),
      cacheControl: response.headers.get("cache-control"),
    });
    return response;
  };
}

// What a browser's HTTP cache does for a `no-cache` response: keep the body and its ETag,
// revalidate with If-None-Match, and on 304 hand the kept body to the caller as a 200.
function revalidatingFetch(log) {
  const kept = new Map();
  return async (input, init) => {
    const key = String(input);
    const headers = new Headers(init?.headers);
    const entry = kept.get(key);
    if (entry) headers.set("if-none-match", entry.etag);

    const response = await fetch(input, { ...init, headers });
    const bodyText = await response.text();
    log.push({ url: key, status: response.status, bodyBytes: bodyText.length });

    if (response.status === 304 && entry) {
      return new Response(entry.body, { status: 200, headers: { "content-type": "application/json" } });
    }
    const etag = response.headers.get("etag");
    if (response.ok && etag) kept.set(key, { etag, body: bodyText });
    return new Response(bodyText, { status: response.status, headers: response.headers });
  };
}

function errorShape(error) {
  if (!(error instanceof TRPCClientError)) {
    return { kind: "other", message: String(error?.message ?? error) };
  }
  return {
    kind: "TRPCClientError",
    message: error.message,
    jsonRpcCode: error.shape?.code,
    code: error.data?.code,
    httpStatus: error.data?.httpStatus,
    path: error.data?.path,
  };
}

async function outcome(promise) {
  try {
    return { ok: true, data: await promise };
  } catch (error) {
    return { ok: false, error: errorShape(error) };
  }
}

const failures = [];
function check(name, condition, detail) {
  if (!condition) failures.push({ name, detail });
}

const report = { url, client: "@trpc/client" };

// httpLink: one request per call.
{
  const wire = [];
  const client = createTRPCClient({ links: [httpLink({ url, fetch: recordingFetch(wire) })] });
  report.httpLink = {
    summary: await outcome(client.analytics.summary.query()),
    aggregate: await outcome(client.analytics.aggregate.query({ group_by: "source" })),
    score: await outcome(client.score.get.query(SCORE_INPUT)),
    compute: await outcome(client.score.compute.mutate(SCORE_INPUT)),
    badInput: await outcome(client.analytics.aggregate.query({ group_by: "planet" })),
    unknown: await outcome(client.nothing.here.query({})),
    wire,
  };
  const h = report.httpLink;
  check("httpLink summary ok", h.summary.ok && typeof h.summary.data.count === "number", h.summary);
  check("httpLink aggregate ok", h.aggregate.ok && Array.isArray(h.aggregate.data.rows), h.aggregate);
  check("httpLink score ok", h.score.ok && typeof h.score.data.score === "number", h.score);
  check("httpLink mutation ok", h.compute.ok && h.compute.data.score === h.score.data?.score, h.compute);
  check("bad input is BAD_REQUEST", h.badInput.error?.code === "BAD_REQUEST", h.badInput);
  check("unknown path is NOT_FOUND", h.unknown.error?.code === "NOT_FOUND", h.unknown);
  check("queries carry an ETag", wire.filter((r) => r.method === "GET" && r.status === 200).every((r) => r.etag), wire);
  check("the mutation has no ETag", wire.filter((r) => r.method === "POST").every((r) => !r.etag), wire);
  check("errors have no ETag", wire.filter((r) => r.status >= 400).every((r) => !r.etag), wire);
}

// httpBatchLink: calls made in one tick share one request and come back in order.
{
  const wire = [];
  const client = createTRPCClient({ links: [httpBatchLink({ url, fetch: recordingFetch(wire) })] });
  const [summary, aggregate, score] = await Promise.all([
    outcome(client.analytics.summary.query({})),
    outcome(client.analytics.aggregate.query({ group_by: "name", limit: 2 })),
    outcome(client.score.get.query(SCORE_INPUT)),
  ]);
  const mixedWireStart = wire.length;
  const [good, bad] = await Promise.all([
    outcome(client.analytics.summary.query()),
    outcome(client.analytics.aggregate.query({ group_by: "source", limit: 0 })),
  ]);
  report.httpBatchLink = {
    summary,
    aggregate,
    score,
    mixed: { good, bad, status: wire[mixedWireStart]?.status },
    wire,
  };
  check("batch of three is one request", wire.length === 2 && wire[0].url.includes("batch=1"), wire);
  check("batch answers in order", summary.ok && aggregate.data?.group_by === "name" && score.ok, report.httpBatchLink);
  check("a good batch has one ETag", wire[0].status === 200 && Boolean(wire[0].etag), wire);
  check("a mixed batch is 207 without ETag", wire[1].status === 207 && !wire[1].etag, wire);
  check("a mixed batch keeps the good answer", good.ok && bad.error?.code === "BAD_REQUEST", { good, bad });
}

// Revalidation: the second identical request is a 304 on the wire, the caller sees the same data.
{
  const wire = [];
  const client = createTRPCClient({ links: [httpBatchLink({ url, fetch: revalidatingFetch(wire) })] });
  const first = await outcome(client.analytics.aggregate.query({ group_by: "source" }));
  const second = await outcome(client.analytics.aggregate.query({ group_by: "source" }));
  report.revalidation = { first, second, wire };
  check("first is 200, second is 304", wire[0]?.status === 200 && wire[1]?.status === 304, wire);
  check("the 304 has no body", wire[1]?.bodyBytes === 0, wire);
  check("same data after the 304", JSON.stringify(first.data) === JSON.stringify(second.data), report.revalidation);
}

report.failures = failures;
report.ok = failures.length === 0;
console.log(JSON.stringify(report, null, 2));
process.exit(report.ok ? 0 : 1);
