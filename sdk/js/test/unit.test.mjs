// Unit tests of the SDK against an in-memory fake server (test/fake.mjs).
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, backoffDelay, SamsaError, ConnectionClosedError, TimeoutError, AuthError, toBase64, fromBase64 } from "../dist/samsa.js";
import { FakeServer, parseProduceFrame } from "./fake.mjs";
import { sleep, until } from "./util.mjs";

function open(server, opts = {}) {
  return connect("ws://fake/ws", {
    WebSocket: server.WebSocket,
    pingIntervalMs: 0,
    backoff: { initialMs: 5, maxMs: 20 },
    ...opts,
  });
}

async function take(iter, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const r = await iter.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

test("offers the samsa.v1 subprotocol and reads hello", async () => {
  const s = new FakeServer();
  const c = await open(s);
  assert.equal(s.conns[0].protocols, "samsa.v1");
  assert.equal(c.state, "open");
  assert.equal(c.hello.server, "samsa");
  await c.close();
  assert.equal(c.state, "closed");
});

test("produce: records of one tick go in one op per topic, one promise per record", async () => {
  const s = new FakeServer();
  const c = await open(s);
  const ps = [];
  for (let i = 0; i < 5; i++) ps.push(c.produce("a", { key: "k" + i, value: { i } }));
  ps.push(c.produce("b", { value: 1 }));
  const res = await Promise.all(ps);
  assert.deepEqual(
    res.map((r) => r.offset),
    [0, 1, 2, 3, 4, 0],
  );
  const ops = s.opsOf("produce");
  assert.equal(ops.length, 2);
  assert.equal(ops[0].topic, "a");
  assert.equal(ops[0].records.length, 5);
  assert.deepEqual(ops[0].records[2], { key: "k2", value: { i: 2 } });
  assert.equal(ops[1].topic, "b");
  // awaited one by one: one op each
  await c.produce("a", { value: 5 });
  await c.produce("a", { value: 6 });
  assert.equal(s.opsOf("produce").length, 4);
  await c.close();
});

test("produce: maxBatchRecords splits a tick into several ops, in order", async () => {
  const s = new FakeServer();
  const c = await open(s, { maxBatchRecords: 3 });
  const res = await Promise.all(Array.from({ length: 8 }, (_, i) => c.produce("a", { value: i })));
  assert.deepEqual(
    res.map((r) => r.offset),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
  assert.deepEqual(
    s.opsOf("produce").map((o) => o.records.length),
    [3, 3, 2],
  );
  await c.close();
});

test("produce: value and key encodings, headers, partition, timestamp", async () => {
  const s = new FakeServer();
  s.partitions = 3;
  const c = await open(s);
  await Promise.all([
    c.produce("t", { value: { a: 1 } }),
    c.produce("t", { value: [1, 2] }),
    c.produce("t", { value: 3 }),
    c.produce("t", { value: false }),
    c.produce("t", { value: null }),
    c.produce("t", { value: "hi" }),
    c.produce("t", { value: new Uint8Array([0, 1, 255]), key: new Uint8Array([7]) }),
    c.produce("t", { value: "x", headers: { h: "v", b: new Uint8Array([1]), n: null }, partition: 2, timestamp: new Date(1000) }),
  ]);
  const recs = s.opsOf("produce")[0].records;
  assert.deepEqual(recs[0], { value: { a: 1 } });
  assert.deepEqual(recs[1], { value: [1, 2] });
  assert.deepEqual(recs[2], { value: 3 });
  assert.deepEqual(recs[3], { value: false });
  assert.deepEqual(recs[4], { value: null });
  assert.deepEqual(recs[5], { value: "hi", encoding: "text" });
  assert.deepEqual(recs[6], { value: "AAH/", encoding: "base64", key: "Bw==", key_encoding: "base64" });
  assert.deepEqual(recs[7], {
    value: "x",
    encoding: "text",
    partition: 2,
    timestamp: 1000,
    headers: [
      { key: "h", value: "v" },
      { key: "b", value: "AQ==", encoding: "base64" },
      { key: "n", value: null },
    ],
  });
  await c.close();
  const c2 = await open(s, { jsonStrings: true });
  await c2.produce("t", { value: "hi" });
  assert.deepEqual(s.opsOf("produce").at(-1).records[0], { value: "hi" });
  await c2.close();
});

test("deliveries are decoded per encoding", async () => {
  const s = new FakeServer();
  const c = await open(s);
  await Promise.all([
    c.produce("t", { value: { a: 1 }, key: "k" }),
    c.produce("t", { value: "txt" }),
    c.produce("t", { value: new Uint8Array([9, 8]), headers: [["h", "v"]] }),
    c.produce("t", { value: null }),
  ]);
  const sub = c.subscribe("t", { from: "earliest" });
  const it = sub[Symbol.asyncIterator]();
  const [a, b, d, n] = await take(it, 4);
  assert.deepEqual([a.value, a.key, a.encoding, a.topic, a.partition, a.offset], [{ a: 1 }, "k", "json", "t", 0, 0]);
  assert.deepEqual([b.value, b.encoding, b.key], ["txt", "text", null]);
  assert.ok(d.value instanceof Uint8Array);
  assert.deepEqual([...d.value], [9, 8]);
  assert.deepEqual(d.headers, [{ key: "h", value: "v" }]);
  assert.equal(n.value, null);
  await c.close();
});

test("base64 helpers round-trip all byte values and large inputs", () => {
  const b = new Uint8Array(200_000).map((_, i) => i * 7);
  assert.deepEqual(fromBase64(toBase64(b)), b);
  assert.equal(toBase64(new Uint8Array([0, 1, 255])), "AAH/");
});

test("backoff: full jitter within [0, min(max, initial*2^n))", () => {
  for (let n = 0; n < 40; n++) {
    const cap = Math.min(10_000, 100 * 2 ** n);
    assert.equal(backoffDelay(n, 100, 10_000, () => 0), 0);
    const hi = backoffDelay(n, 100, 10_000, () => 0.999999);
    assert.ok(hi < cap && hi >= cap * 0.99, `attempt ${n}: ${hi} vs cap ${cap}`);
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(n);
      assert.ok(d >= 0 && d < cap, `attempt ${n}: ${d}`);
    }
  }
  assert.equal(backoffDelay(3, 100, 10_000, () => 0.5), 400);
});

test("reconnect: attempts back off exponentially with jitter, and reset after success", async () => {
  const s = new FakeServer();
  const states = [];
  const c = await open(s, { backoff: { initialMs: 40, maxMs: 200 }, random: () => 0.999, onStateChange: (st) => states.push(st) });
  s.refuse = 4;
  s.drop();
  await until(() => c.state === "open" && s.conns.length === 6, 5000, "reconnect");
  const gaps = s.attempts.slice(1).map((t, i) => t - s.attempts[i]);
  // attempt 1.. after the drop: ~40, 80, 160, 200 (capped), 200 ms
  const caps = [40, 80, 160, 200, 200];
  gaps.forEach((g, i) => assert.ok(g >= caps[i] * 0.9 - 2 && g <= caps[i] + 120, `gap ${i}: ${g} ms, cap ${caps[i]}`));
  assert.deepEqual(states, ["open", "reconnecting", "open"]);
  // after a successful connection the next drop starts again at the first step
  const t0 = Date.now();
  s.drop();
  await until(() => c.state === "open" && s.conns.length === 7, 2000);
  assert.ok(Date.now() - t0 < 300, `${Date.now() - t0} ms`);
  await c.close();
});

test("resume: resubscribes from the next offset per partition, no duplicates, no gaps", async () => {
  const s = new FakeServer();
  s.partitions = 2;
  const c = await open(s);
  for (let i = 0; i < 10; i++) s.append("t", i % 2, i);
  const sub = c.subscribe("t", { from: "earliest" });
  const it = sub[Symbol.asyncIterator]();
  const got = await take(it, 6);
  s.drop();
  await until(() => c.state === "reconnecting", 1000);
  for (let i = 10; i < 20; i++) s.append("t", i % 2, i);
  s.rewind = 3; // a server that starts too early: the SDK drops what it has seen
  got.push(...(await take(it, 14)));
  const subs = s.opsOf("subscribe");
  assert.equal(subs.length, 2);
  assert.deepEqual(subs[0].from, "earliest");
  assert.deepEqual(subs[1].from, { offsets: { 0: 5, 1: 5 } });
  assert.equal(subs[1].sub, subs[0].sub);
  const byPart = [[], []];
  for (const r of got) byPart[r.partition].push(r.offset);
  assert.deepEqual(byPart[0], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(byPart[1], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(got.map((r) => r.value).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i));
  await c.close();
});

test("resume: records buffered before a drop are still delivered and not requested again", async () => {
  const s = new FakeServer();
  const c = await open(s);
  s.append("t", 0, ...Array.from({ length: 5 }, (_, i) => i));
  const sub = c.subscribe("t", { from: "earliest", credit: 100 });
  await until(() => sub.buffered === 5, 1000, "5 buffered");
  s.drop();
  await until(() => s.opsOf("subscribe").length === 2, 2000);
  const re = s.opsOf("subscribe")[1];
  assert.deepEqual(re.from, { offsets: { 0: 5 } });
  assert.equal(re.credit, 95); // the window minus what is buffered locally
  s.append("t", 0, 5, 6);
  const got = await take(sub[Symbol.asyncIterator](), 7);
  assert.deepEqual(
    got.map((r) => r.offset),
    [0, 1, 2, 3, 4, 5, 6],
  );
  await c.close();
});

test("credit: grants as the consumer pulls; granted + buffered never exceeds the window", async () => {
  const s = new FakeServer();
  const c = await open(s);
  s.append("t", 0, ...Array.from({ length: 100 }, (_, i) => i));
  const sub = c.subscribe("t", { from: "earliest", credit: 10 });
  await until(() => sub.buffered === 10, 1000);
  await sleep(20);
  assert.equal(sub.buffered, 10, "the server stops at the credit");
  assert.equal(s.opsOf("subscribe")[0].credit, 10);
  const it = sub[Symbol.asyncIterator]();
  const serverCredit = () => s.conns[0].subs.get(sub.name).credit;
  let pulled = 0;
  for (let i = 0; i < 4; i++) {
    await it.next();
    pulled++;
  }
  assert.equal(s.opsOf("credit").length, 0, "no grant before half the window is free");
  for (let i = 0; i < 96; i++) {
    await it.next();
    pulled++;
    await sleep(0);
    assert.ok(serverCredit() + sub.buffered <= 10, `credit ${serverCredit()} + buffered ${sub.buffered}`);
  }
  const grants = s.opsOf("credit");
  assert.ok(grants.length >= 15, `${grants.length} grants`);
  for (const g of grants) assert.ok(g.records >= 5 && g.records <= 10, `grant of ${g.records}`);
  // dropped duplicates count as consumed: still within the window
  await c.close();
});

test("callback form: delivers in order, waits for async callbacks, close() unsubscribes", async () => {
  const s = new FakeServer();
  const c = await open(s);
  s.append("t", 0, 0, 1, 2);
  const seen = [];
  let busy = false;
  const sub = c.subscribe("t", { from: "earliest" }, async (r) => {
    assert.equal(busy, false);
    busy = true;
    await sleep(2);
    seen.push(r.offset);
    busy = false;
  });
  const start = await sub.ready;
  assert.deepEqual(start, [{ partition: 0, offset: 0, high_watermark: 3 }]);
  await until(() => seen.length === 3, 1000);
  await sub.close();
  assert.equal(s.opsOf("unsubscribe").length, 1);
  await sub.closed;
  await c.close();
});

test("for-await: break unsubscribes", async () => {
  const s = new FakeServer();
  const c = await open(s);
  s.append("t", 0, 0, 1, 2);
  for await (const r of c.subscribe("t", { from: { offset: 1 } })) {
    assert.equal(r.offset, 1);
    break;
  }
  await until(() => s.opsOf("unsubscribe").length === 1, 1000);
  assert.deepEqual(s.opsOf("subscribe")[0].from, { offset: 1 });
  await c.close();
});

test("group: commit sends delivered+1 for assigned partitions; resubscribe keeps the group", async () => {
  const s = new FakeServer();
  s.partitions = 2;
  const c = await open(s);
  s.append("t", 0, 0, 1, 2);
  s.append("t", 1, 10, 11);
  const assigned = [];
  const sub = c.subscribe("t", { from: "earliest", group: "g", onAssigned: (p) => assigned.push(p) });
  const it = sub[Symbol.asyncIterator]();
  const got = await take(it, 5);
  assert.equal(got.length, 5);
  assert.deepEqual(sub.assignment, [0, 1]);
  await sub.commit();
  const cm = s.opsOf("commit")[0];
  assert.equal(cm.sub, sub.name);
  assert.deepEqual(
    cm.offsets.sort((a, b) => a.partition - b.partition),
    [
      { partition: 0, offset: 3 },
      { partition: 1, offset: 2 },
    ],
  );
  // rebalance in progress: retried after the next assignment
  s.commitError = { code: "unavailable", message: "rebalance" };
  s.append("t", 0, 3);
  await it.next();
  const p = sub.commit();
  await sleep(10);
  s.drop(1012, "restart");
  await p;
  assert.equal(s.commits.filter((x) => x.partition === 0).at(-1).offset, 4);
  const re = s.opsOf("subscribe").at(-1);
  assert.equal(re.group, "g");
  assert.deepEqual(re.from, { offsets: { 0: 4, 1: 2 } });
  assert.ok(assigned.length >= 2);
  // standalone commit
  await c.commit({ group: "dash", topic: "t", offsets: { 0: 7 } });
  assert.deepEqual(s.opsOf("commit").at(-1), { op: "commit", id: s.opsOf("commit").at(-1).id, group: "dash", topic: "t", offsets: [{ partition: 0, offset: 7 }] });
  await assert.rejects(c.subscribe("t", {}).commit(), (e) => e instanceof SamsaError && e.code === "bad_request");
  await c.close();
});

test("errors: server codes become SamsaError with the stable code", async () => {
  const s = new FakeServer();
  const c = await open(s);
  s.produceHook = (m) => (m.topic === "nope" ? { code: "unknown_topic", message: "unknown topic" } : undefined);
  await assert.rejects(c.produce("nope", { value: 1 }), (e) => e instanceof SamsaError && e.code === "unknown_topic" && e.message === "unknown topic");
  s.subscribeErrors.set("bad", { code: "forbidden", message: "no" });
  const sub = c.subscribe("bad", {});
  await assert.rejects(sub.ready, (e) => e.code === "forbidden");
  await assert.rejects(async () => {
    for await (const _ of sub);
  }, (e) => e instanceof SamsaError && e.code === "forbidden");
  // an unsolicited error about a subscription ends it
  const sub2 = c.subscribe("t", {});
  await sub2.ready;
  s.conns[0].out({ type: "error", sub: sub2.name, code: "unknown_topic", message: "deleted" });
  await assert.rejects(sub2.closed, (e) => e.code === "unknown_topic" && e.sub === sub2.name);
  await c.close();
});

test("errors: a produce that stays unavailable times out with the last error", async () => {
  const s = new FakeServer();
  const c = await open(s, { requestTimeoutMs: 400, random: () => 0 });
  let n = 0;
  s.produceHook = () => (++n < 3 ? { code: "unavailable", message: "disk full" } : undefined);
  const r = await c.produce("t", { value: 1 });
  assert.equal(r.offset, 0);
  assert.equal(n, 3, "retried while unavailable");
  s.produceHook = () => ({ code: "unavailable", message: "disk full" });
  await assert.rejects(c.produce("t", { value: 2 }), (e) => e.code === "unavailable" && e.message === "disk full");
  await c.close();
});

test("errors: TimeoutError when a request gets no reply", async () => {
  const s = new FakeServer();
  const c = await open(s, { requestTimeoutMs: 50 });
  s.mute = true;
  await assert.rejects(c.ping(), (e) => e instanceof TimeoutError && e instanceof SamsaError && e.code === "timeout");
  s.holdAcks = true;
  await assert.rejects(c.produce("t", { value: 1 }), (e) => e instanceof TimeoutError);
  await c.close();
});

test("errors: no reconnect after 1008 (ConnectionClosedError with the close code) or 4001 (AuthError)", async () => {
  for (const code of [1008, 4001]) {
    const s = new FakeServer();
    const states = [];
    const c = await open(s, { onStateChange: (st) => states.push(st) });
    const sub = c.subscribe("t", {});
    await sub.ready;
    s.drop(code, "nope");
    const want =
      code === 4001
        ? (e) => e instanceof AuthError && e.code === "unauthorized" && /4001 nope/.test(e.message)
        : (e) => e instanceof ConnectionClosedError && e.closeCode === code && e.reason === "nope";
    await assert.rejects(sub.closed, want);
    assert.equal(c.state, "closed");
    assert.deepEqual(states, ["open", "closed"]);
    await assert.rejects(c.produce("t", { value: 1 }), want);
    await sleep(30);
    assert.equal(s.conns.length, 1);
  }
});

test("errors: reconnect:false rejects pending work with ConnectionClosedError", async () => {
  const s = new FakeServer();
  const c = await open(s, { reconnect: false });
  s.holdAcks = true;
  const p = c.produce("t", { value: 1 });
  await until(() => s.opsOf("produce").length === 1, 1000);
  s.drop(1012, "restart");
  await assert.rejects(p, (e) => e instanceof ConnectionClosedError && e.closeCode === 1012);
  assert.equal(c.state, "closed");
});

test("errors: connect fails with ConnectionClosedError (no reconnect) or TimeoutError", async () => {
  const s = new FakeServer();
  s.refuse = 100;
  await assert.rejects(open(s, { reconnect: false }), (e) => e instanceof ConnectionClosedError);
  await assert.rejects(open(s, { connectTimeoutMs: 100 }), (e) => e instanceof TimeoutError);
});

test("produce during a disconnect: in-flight records are re-sent (at-least-once), queued ones wait", async () => {
  const s = new FakeServer();
  const c = await open(s);
  s.holdAcks = true;
  const p1 = c.produce("t", { value: "a" });
  await until(() => s.opsOf("produce").length === 1, 1000);
  s.drop();
  await until(() => c.state === "reconnecting", 1000);
  const p2 = c.produce("t", { value: "b" });
  s.holdAcks = false;
  const [r1, r2] = await Promise.all([p1, p2]);
  // the first op was appended but its ack was lost: appended again
  assert.deepEqual([r1.offset, r2.offset], [1, 2]);
  assert.deepEqual(
    s.log("t")[0].map((r) => r.value),
    ["a", "a", "b"],
  );
  const ops = s.opsOf("produce");
  assert.equal(ops.length, 2);
  assert.deepEqual(
    ops[1].records.map((r) => r.value),
    ["a", "b"],
  );
  await c.close();
});

test("produce during a disconnect: resendOnReconnect:false fails in-flight records; the queue is bounded", async () => {
  const s = new FakeServer();
  const c = await open(s, { resendOnReconnect: false, maxBufferedRecords: 3 });
  s.holdAcks = true;
  const p1 = c.produce("t", { value: 1 });
  await until(() => s.opsOf("produce").length === 1, 1000);
  s.refuse = 1000;
  s.drop();
  await assert.rejects(p1, (e) => e instanceof ConnectionClosedError && e.closeCode === 1006);
  const queued = [c.produce("t", { value: 2 }), c.produce("t", { value: 3 }), c.produce("t", { value: 4 })];
  await assert.rejects(c.produce("t", { value: 5 }), (e) => e instanceof ConnectionClosedError);
  s.refuse = 0;
  s.holdAcks = false;
  const rs = await Promise.all(queued);
  assert.deepEqual(
    rs.map((r) => r.offset),
    [1, 2, 3],
  );
  await c.close();
});

test("produce: buffer full while connected is a 'limit' error; a record over the frame limit is too_large", async () => {
  const s = new FakeServer();
  const c = await open(s, { maxBufferedRecords: 2 });
  s.holdAcks = true;
  const ps = [c.produce("t", { value: 1 }), c.produce("t", { value: 2 })];
  await assert.rejects(c.produce("t", { value: 3 }), (e) => e.code === "limit");
  await assert.rejects(c.produce("t", { value: "x".repeat(1 << 20) }), (e) => e.code === "too_large");
  s.holdAcks = false;
  s.drop();
  await Promise.all(ps);
  await c.close();
});

test("heartbeat: an unanswered ping drops the link and the client reconnects and resumes", async () => {
  const s = new FakeServer();
  const c = await open(s, { pingIntervalMs: 40, pingTimeoutMs: 40 });
  s.append("t", 0, 0);
  const sub = c.subscribe("t", { from: "earliest" });
  const it = sub[Symbol.asyncIterator]();
  await take(it, 1);
  s.mute = true;
  await until(() => s.conns.length === 2 && c.state === "open", 2000, "reconnect after ping timeout");
  s.mute = false;
  assert.ok(s.opsOf("ping").length >= 1);
  s.append("t", 0, 1);
  const [r] = await take(it, 1);
  assert.equal(r.offset, 1);
  await c.close();
});

test("close: waits for acks of produced records, then closes; later calls fail", async () => {
  const s = new FakeServer();
  const c = await open(s);
  const p = c.produce("t", { value: 1 });
  await c.close();
  assert.equal((await p).offset, 0);
  await assert.rejects(c.produce("t", { value: 1 }), (e) => e instanceof ConnectionClosedError);
  const sub = c.subscribe("t", {});
  await assert.rejects(sub.closed, (e) => e instanceof ConnectionClosedError);
});

// ---- binary frames (PROTOCOL.md §6) ----

const bytes = (s) => new Uint8Array(Buffer.from(s, "utf8"));
const text = (b) => (b === null ? null : Buffer.from(b).toString("utf8"));
const binaryOps = (s) => s.opsOf("produce").filter((o) => o.binary);

test("binary produce: kind 1 frames, values as bytes, acks by id; timestamped records go as JSON", async () => {
  const s = new FakeServer();
  s.partitions = 3;
  const c = await open(s, { binary: true });
  assert.equal(s.conns[0].binaryType, "arraybuffer", "binary frames as ArrayBuffers, not Blobs");
  const rs = await Promise.all([
    c.produce("t", { value: new Uint8Array([0, 1, 255]), key: new Uint8Array([7]) }),
    c.produce("t", { value: "héllo", key: "k" }),
    c.produce("t", { value: { a: [1, "x"] } }),
    c.produce("t", { value: 42 }),
    c.produce("t", { value: null, key: null }),
    c.produce("t", { value: "", headers: [["h", "v"], ["b", new Uint8Array([1, 2])], ["n", null], ["h", "again"]] }),
    c.produce("t", { value: "p2", partition: 2 }),
    c.produce("t", { value: "ts", timestamp: new Date(1000) }),
  ]);
  assert.deepEqual(
    rs.map((r) => [r.partition, r.offset]),
    [[0, 0], [0, 1], [0, 2], [0, 3], [0, 4], [0, 5], [2, 0], [0, 6]],
  );
  const ops = s.opsOf("produce");
  assert.equal(ops.length, 2, "one binary op and one JSON op");
  const [b, j] = ops;
  assert.equal(b.binary, true);
  assert.equal(b.topic, "t");
  assert.equal(b.records.length, 7);
  const r = b.records;
  assert.deepEqual([[...r[0].value], [...r[0].key], r[0].partition], [[0, 1, 255], [7], undefined]);
  assert.deepEqual([text(r[1].value), text(r[1].key)], ["héllo", "k"]);
  assert.equal(text(r[2].value), '{"a":[1,"x"]}');
  assert.equal(text(r[3].value), "42");
  assert.deepEqual([r[4].value, r[4].key], [null, null]);
  assert.equal(r[5].value.length, 0, "an empty string is empty bytes, not null");
  assert.deepEqual(
    r[5].headers.map((h) => [h.key, h.value && [...h.value]]),
    [["h", [...bytes("v")]], ["b", [1, 2]], ["n", null], ["h", [...bytes("again")]]],
  );
  assert.equal(r[6].partition, 2);
  assert.equal(j.binary, undefined);
  assert.deepEqual(j.records, [{ value: "ts", encoding: "text", timestamp: 1000 }]);
  // ids of binary frames are request ids: acks matched by them
  assert.ok(b.id > 0 && b.id !== j.id);
  await c.close();

  const c2 = await open(s, { binary: true, jsonStrings: true });
  await c2.produce("t", { value: "hi" });
  assert.equal(text(binaryOps(s).at(-1).records[0].value), '"hi"', "jsonStrings: the JSON text of the string");
  await c2.close();
});

test("binary produce: topics and framings batch separately, in order, split by maxBatchRecords", async () => {
  const s = new FakeServer();
  const c = await open(s, { binary: true, maxBatchRecords: 3 });
  const ps = [];
  for (let i = 0; i < 7; i++) ps.push(c.produce("a", { value: i }));
  ps.push(c.produce("b", { value: "x" }));
  const rs = await Promise.all(ps);
  assert.deepEqual(
    rs.map((r) => r.offset),
    [0, 1, 2, 3, 4, 5, 6, 0],
  );
  assert.deepEqual(
    binaryOps(s).map((o) => [o.topic, o.records.length]),
    [["a", 3], ["a", 3], ["a", 1], ["b", 1]],
  );
  assert.deepEqual(
    s.log("a")[0].map((r) => r.value),
    [0, 1, 2, 3, 4, 5, 6],
  );
  await c.close();
});

test("binary produce: errors in binary acks are the same typed errors as JSON; unavailable is retried", async () => {
  const s = new FakeServer();
  s.requireAuth().tokens.set("tok", { user: "UA", bearer: true, produce: ["ok.>"], consume: [] });
  const c = await open(s, { binary: true, auth: { bearer: "tok" } });
  await assert.rejects(c.produce("nope", { value: 1 }), (e) => e instanceof SamsaError && e.code === "forbidden" && /may not produce/.test(e.message));
  await assert.rejects(c.produce("ok.t", { value: 1, partition: 5 }), (e) => e instanceof SamsaError && e.code === "unknown_topic");
  for (const code of ["rejected", "too_large", "bad_request", "internal"]) {
    s.produceHook = () => ({ code, message: `no: ${code}` });
    await assert.rejects(c.produce("ok.t", { value: 1 }), (e) => e instanceof SamsaError && e.code === code && e.message === `no: ${code}`);
  }
  let n = 0;
  s.produceHook = () => (n++ < 2 ? { code: "unavailable", message: "closing" } : undefined);
  assert.deepEqual(await c.produce("ok.t", { value: "after retries" }), { partition: 0, offset: 0 });
  assert.equal(n, 3);
  s.produceHook = () => ({ code: "unavailable", message: "still closing" });
  const c2 = await open(s, { binary: true, auth: { bearer: "tok" }, requestTimeoutMs: 200 });
  await assert.rejects(c2.produce("ok.t", { value: 1 }), (e) => e instanceof SamsaError && e.code === "unavailable");
  await c.close();
  await c2.close();
});

test("binary produce: in-flight binary ops are re-sent after a reconnect; a too large record is refused", async () => {
  const s = new FakeServer();
  const c = await open(s, { binary: true });
  s.holdAcks = true;
  const p1 = c.produce("t", { value: "a" });
  await until(() => binaryOps(s).length === 1, 1000);
  s.drop();
  await until(() => c.state === "reconnecting", 1000);
  const p2 = c.produce("t", { value: "b" });
  s.holdAcks = false;
  const [r1, r2] = await Promise.all([p1, p2]);
  assert.deepEqual([r1.offset, r2.offset], [1, 2]);
  assert.deepEqual(
    binaryOps(s).map((o) => o.records.map((r) => text(r.value))),
    [["a"], ["a", "b"]],
  );
  await assert.rejects(c.produce("t", { value: new Uint8Array(1 << 20) }), (e) => e.code === "too_large");
  await c.close();
});

test("binary subscribe: records with Uint8Array keys, values and headers; the client option sets the default", async () => {
  const s = new FakeServer();
  const pc = await open(s);
  await Promise.all([
    pc.produce("t", { value: { a: 1 }, key: "k" }),
    pc.produce("t", { value: "txt", headers: [["h", "v"], ["n", null], ["b", new Uint8Array([0, 255])]] }),
    pc.produce("t", { value: new Uint8Array([9, 8]), key: new Uint8Array([255]) }),
    pc.produce("t", { value: null, timestamp: 1234 }),
    pc.produce("t", { value: "" }),
  ]);
  const check = (recs) => {
    assert.deepEqual(
      recs.map((r) => [r.topic, r.partition, r.offset, r.encoding]),
      [0, 1, 2, 3, 4].map((o) => ["t", 0, o, "binary"]),
    );
    assert.ok(recs.every((r) => r.value === null || r.value instanceof Uint8Array));
    assert.equal(text(recs[0].value), '{"a":1}');
    assert.equal(text(recs[0].key), "k");
    assert.equal(text(recs[1].value), "txt");
    assert.equal(recs[1].key, null);
    assert.deepEqual(
      recs[1].headers.map((h) => [h.key, h.value && [...h.value]]),
      [["h", [...bytes("v")]], ["n", null], ["b", [0, 255]]],
    );
    assert.deepEqual([[...recs[2].value], [...recs[2].key]], [[9, 8], [255]]);
    assert.deepEqual(recs[2].headers, []);
    assert.deepEqual([recs[3].value, recs[3].timestamp], [null, 1234]);
    assert.equal(recs[4].value.length, 0);
  };
  // per subscription
  const sub = pc.subscribe("t", { from: "earliest", format: "binary" });
  check(await take(sub[Symbol.asyncIterator](), 5));
  assert.equal(s.opsOf("subscribe")[0].format, "binary");
  // client default; format "json" still gives JSON deliveries
  const bc = await open(s, { binary: true });
  check(await take(bc.subscribe("t", { from: "earliest" })[Symbol.asyncIterator](), 5));
  assert.equal(s.opsOf("subscribe")[1].format, "binary");
  const [j] = await take(bc.subscribe("t", { from: "earliest", format: "json" })[Symbol.asyncIterator](), 1);
  assert.deepEqual([j.value, j.key, j.encoding], [{ a: 1 }, "k", "json"]);
  assert.equal(s.opsOf("subscribe")[2].format, "json");
  // a JSON client's subscriptions do not ask for a format (JSON deliveries)
  const [pj] = await take(pc.subscribe("t", { from: "earliest" })[Symbol.asyncIterator](), 1);
  assert.equal(pj.encoding, "json");
  assert.ok(!("format" in s.opsOf("subscribe")[3]));
  await pc.close();
  await bc.close();
});

test("binary subscribe: frames as Buffers (ws nodebuffer) work too; an unreadable frame reconnects and resumes", async () => {
  const s = new FakeServer();
  s.forceBinaryType = "nodebuffer";
  const c = await open(s, { binary: true });
  s.append("t", 0, 0, 1);
  const sub = c.subscribe("t", { from: "earliest" });
  const it = sub[Symbol.asyncIterator]();
  assert.deepEqual(
    (await take(it, 2)).map((r) => text(r.value)),
    ["0", "1"],
  );
  // a truncated kind 3 frame: the link is dropped, the subscription resumes from offset 2
  s.conns[0].outBinary(Buffer.from([3, 2, 0, 115, 49, 5, 0, 0, 0, 0]));
  await until(() => s.conns.length === 2 && c.state === "open", 2000, "reconnect after a bad frame");
  s.append("t", 0, 2);
  const [r] = await take(it, 1);
  assert.deepEqual([r.offset, text(r.value)], [2, "2"]);
  assert.deepEqual(s.opsOf("subscribe").at(-1).from, { offsets: { 0: 2 } });
  // unknown kinds are ignored
  s.conns[1].outBinary(Buffer.from([9, 1, 2]));
  await sleep(10);
  assert.equal(c.state, "open");
  await c.close();
});

test("binary subscribe: credit window, resume without duplicates, groups and commits work as with JSON", async () => {
  const s = new FakeServer();
  s.partitions = 2;
  const c = await open(s, { binary: true });
  for (let i = 0; i < 40; i++) s.append("t", i % 2, i);
  const sub = c.subscribe("t", { from: "earliest", credit: 10 });
  await until(() => sub.buffered === 10, 1000, "the first window");
  await sleep(20);
  assert.equal(sub.buffered, 10, "nothing beyond the credit");
  const it = sub[Symbol.asyncIterator]();
  const got = await take(it, 15);
  // the server re-sends from before the resume point: the client drops the repeats
  s.rewind = 3;
  s.drop();
  got.push(...(await take(it, 25)));
  const seen = got.map((r) => `${r.partition}/${r.offset}`);
  assert.equal(new Set(seen).size, 40, "no duplicates");
  assert.deepEqual(got.map((r) => +text(r.value)).sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i));
  assert.ok(s.opsOf("credit").length > 0);
  s.rewind = 0;

  const g = c.subscribe("t", { from: "earliest", group: "g" });
  const git = g[Symbol.asyncIterator]();
  assert.equal((await take(git, 40)).length, 40);
  assert.deepEqual(g.assignment, [0, 1]);
  await g.commit();
  assert.deepEqual(
    s.opsOf("commit")[0].offsets.sort((a, b) => a.partition - b.partition),
    [
      { partition: 0, offset: 20 },
      { partition: 1, offset: 20 },
    ],
  );
  await c.close();
});

test("binary frames: the fake's parser reads exactly what the client wrote", () => {
  // guards the fake itself: a trailing byte is an error
  assert.throws(() => parseProduceFrame(Buffer.from([1, 1, 0, 0, 0, 1, 0, 116, 0, 0, 0, 0, 9])), /after the records/);
});

// ---- deadlines: one sweep timer per client, not a timer per record ----

/**
 * Wraps the global setTimeout/clearTimeout (which the bundle calls) to
 * count timers set and keep those still live (neither fired nor
 * cleared). restore() puts the originals back.
 */
function trackTimers() {
  const { setTimeout: set, clearTimeout: clear } = globalThis;
  const t = { set: 0, live: new Set() };
  globalThis.setTimeout = (fn, ms, ...args) => {
    t.set++;
    const h = set(() => {
      t.live.delete(h);
      fn(...args);
    }, ms);
    t.live.add(h);
    return h;
  };
  globalThis.clearTimeout = (h) => {
    t.live.delete(h);
    clear(h);
  };
  t.restore = () => Object.assign(globalThis, { setTimeout: set, clearTimeout: clear });
  return t;
}

const tick = () => new Promise((r) => setImmediate(r));

test("deadlines: 10,000 records in flight use O(1) timers; an idle client holds none", async () => {
  for (const binary of [false, true]) {
    const s = new FakeServer();
    const c = await open(s, { binary });
    s.holdAcks = true;
    const timers = trackTimers();
    let ps;
    try {
      ps = Array.from({ length: 10_000 }, (_, i) => c.produce("t", { value: `v${i}` }));
      await tick();
      assert.equal(s.opsOf("produce").length, 10, "all 10,000 records sent (10 ops of 1000)");
      assert.ok(timers.set <= 2, `binary=${binary}: ${timers.set} timers set for 10,000 records`);
      assert.ok(timers.live.size <= 2, `binary=${binary}: ${timers.live.size} timers live`);
      // the acks were lost: the ops go again after a reconnect and are acked
      s.holdAcks = false;
      s.drop();
      const rs = await Promise.all(ps);
      assert.deepEqual(
        rs.map((r) => r.offset),
        Array.from({ length: 10_000 }, (_, i) => 10_000 + i),
      );
      await tick();
      assert.equal(timers.live.size, 0, `binary=${binary}: timers left on an idle client`);
    } finally {
      timers.restore();
    }
    await c.close();
  }
});

test("deadlines: a record past its deadline fails with TimeoutError while later ones are acked", async () => {
  for (const binary of [false, true]) {
    const s = new FakeServer();
    const c = await open(s, { binary, requestTimeoutMs: 300 });
    const first = (m) => (binary ? text(m.records[0].value) : m.records[0].value);
    s.produceHook = (m) => {
      s.holdAcks = first(m) === "slow"; // appended (offset 0) but never acknowledged
    };
    const slow = c.produce("t", { value: "slow" });
    await until(() => s.opsOf("produce").length === 1, 1000);
    const now = [c.produce("t", { value: "a" }), c.produce("t", { value: "b" })];
    await sleep(150);
    const later = c.produce("t", { value: "c" });
    await assert.rejects(slow, (e) => e instanceof TimeoutError && e.code === "timeout" && /produce to t/.test(e.message), `binary=${binary}`);
    const after = c.produce("t", { value: "d" });
    assert.deepEqual(
      (await Promise.all([...now, later, after])).map((r) => r.offset),
      [1, 2, 3, 4],
    );
    // past the later records' deadlines: nothing else fails, the client is idle
    await sleep(400);
    assert.equal((await c.produce("t", { value: "e" })).offset, 5);
    await c.close();
  }
});

test("deadlines: while disconnected, overdue records leave the buffer and requests time out", async () => {
  const s = new FakeServer();
  const c = await open(s, { requestTimeoutMs: 200, maxBufferedRecords: 2 });
  s.refuse = 1_000_000;
  s.drop();
  await until(() => c.state === "reconnecting", 1000);
  const queued = [c.produce("t", { value: 1 }), c.produce("t", { value: 2 })];
  await assert.rejects(c.produce("t", { value: 3 }), (e) => e instanceof ConnectionClosedError, "buffer full");
  for (const p of queued) await assert.rejects(p, (e) => e instanceof TimeoutError);
  await assert.rejects(c.ping(), (e) => e instanceof TimeoutError && /not connected/.test(e.message));
  // the overdue records no longer count: there is room again
  const p = c.produce("t", { value: 4 });
  s.refuse = 0;
  assert.equal((await p).offset, 0);
  assert.deepEqual(
    s.log("t")[0].map((r) => r.value),
    [4],
  );
  await c.close();
});

test("deadlines: close() rejects records waiting to retry an unavailable op and leaves no timer", async () => {
  const s = new FakeServer();
  const c = await open(s, { random: () => 0.99 });
  const timers = trackTimers();
  try {
    s.produceHook = () => ({ code: "unavailable", message: "not ready" });
    const p = c.produce("t", { value: 1 });
    const failed = assert.rejects(p, (e) => e instanceof SamsaError && e.code === "unavailable" && e.message === "not ready");
    await until(() => s.opsOf("produce").length >= 1, 1000);
    // disconnected (close() does not wait then) while the op waits to be retried
    s.refuse = 1_000_000;
    s.drop();
    await until(() => c.state === "reconnecting", 1000);
    await c.close();
    await failed;
    await sleep(5);
    assert.equal(timers.live.size, 0, "timers left after close");
  } finally {
    timers.restore();
  }
});
