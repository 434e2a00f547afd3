// Integration tests of the binary frames (PROTOCOL.md §6) against a real
// `samsa serve` (see broker.mjs): binary produce and binary deliveries,
// JSON and binary clients on the same topic, resume across broker restarts.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { connect, SamsaError } from "../dist/samsa.js";
import { samsa, skipReason, useBroker } from "./broker.mjs";
import { sleep, until, take } from "./util.mjs";

const utf8 = (s) => new Uint8Array(Buffer.from(s, "utf8"));
/** bytes (or null) as an array of numbers, for deepEqual. */
const arr = (b) => (b === null || b === undefined ? null : [...b]);
/** A delivered header value (string or bytes) as bytes. */
const hbytes = (v) => (typeof v === "string" ? utf8(v) : v);

/** The i-th record of a varied set: keys, values and headers of every form, nulls included. */
function record(i) {
  const r = { value: utf8(`value-${i}`) };
  if (i % 7 === 0) r.value = null;
  else if (i % 5 === 0) r.value = new Uint8Array([0, 255, i & 255, 128]);
  else if (i % 3 === 0) r.value = new Uint8Array(0);
  if (i % 4 === 0) r.key = null;
  else if (i % 4 === 1) r.key = utf8(`key-${i}`);
  else if (i % 4 === 2) r.key = new Uint8Array([255, i & 255]);
  else r.key = new Uint8Array(0);
  if (i % 2 === 0) {
    r.headers = [
      ["trace", utf8(`t${i}`)],
      ["bin", new Uint8Array([0, 254, i & 255])],
      ["none", null],
      ["trace", utf8("dup")],
    ];
  }
  return r;
}

/** What a delivered record must hold for record(i) (headers as [key, bytes]). */
function expected(i) {
  const r = record(i);
  return { key: arr(r.key ?? null), value: arr(r.value), headers: (r.headers ?? []).map(([k, v]) => [k, arr(v)]) };
}

const asBytes = (r) => ({
  key: arr(r.key),
  value: arr(r.value),
  headers: r.headers.map((h) => [h.key, arr(hbytes(h.value))]),
});

const skip = skipReason();
describe("binary frames against samsa serve", { skip }, () => {
  const env = useBroker(connect);
  const open = env.open;

  test("binary produce of 1,000 records, binary subscribe from earliest gets exactly them", async () => {
    const N = 1000;
    const c = await open({ binary: true });
    const acks = await Promise.all(Array.from({ length: N }, (_, i) => c.produce("bin-exact", record(i))));
    assert.deepEqual(
      acks.map((a) => [a.partition, a.offset]),
      Array.from({ length: N }, (_, i) => [0, i]),
    );
    const sub = c.subscribe("bin-exact", { from: "earliest", credit: 300 });
    const got = await take(sub, N, 30_000);
    assert.equal(got.length, N);
    got.forEach((r, i) => {
      assert.equal(r.offset, i);
      assert.equal(r.topic, "bin-exact");
      assert.equal(r.encoding, "binary");
      assert.ok(r.value === null || r.value instanceof Uint8Array, `offset ${i}: value ${r.value}`);
      assert.ok(Math.abs(r.timestamp - Date.now()) < 600_000, `offset ${i}: timestamp ${r.timestamp}`);
      assert.deepEqual(asBytes(r), expected(i), `offset ${i}`);
    });
    // nothing beyond them
    await sleep(200);
    assert.equal(sub.buffered, 0);
    await sub.close();
  });

  test("binary produce: partitions by key like JSON, explicit partitions, typed errors", async () => {
    await samsa("topic", "create", "bin-parts", "--partitions", "4", "--brokers", env.broker.brokers);
    const bc = await open({ binary: true });
    const jc = await open();
    const keys = Array.from({ length: 20 }, (_, i) => `device-${i}`);
    const viaBin = await Promise.all(keys.map((key) => bc.produce("bin-parts", { key, value: "b" })));
    const viaJSON = await Promise.all(keys.map((key) => jc.produce("bin-parts", { key, value: "j" })));
    assert.deepEqual(
      viaBin.map((a) => a.partition),
      viaJSON.map((a) => a.partition),
      "the same key goes to the same partition in binary and JSON",
    );
    assert.ok(new Set(viaBin.map((a) => a.partition)).size > 1, "keys spread over partitions");
    assert.equal((await bc.produce("bin-parts", { value: "p3", partition: 3 })).partition, 3);
    await assert.rejects(bc.produce("bin-parts", { value: "x", partition: 9 }), (e) => e instanceof SamsaError && e.code === "unknown_topic");
    await assert.rejects(bc.produce("bad topic name!", { value: "x" }), (e) => e instanceof SamsaError && e.code === "unknown_topic");
    // a timestamp goes as JSON, in the same client
    const ts = Date.now() - 5000;
    const a = await bc.produce("bin-parts", { value: "with ts", partition: 0, timestamp: ts });
    const [r] = await take(bc.subscribe("bin-parts", { partitions: [0], from: { offset: a.offset } }), 1);
    assert.deepEqual([r.timestamp, Buffer.from(r.value).toString()], [ts, "with ts"]);
  });

  test("mixed JSON and binary clients see the same records", async () => {
    const topic = "bin-mixed";
    const bc = await open({ binary: true });
    const jc = await open();
    const N = 200;
    // alternating blocks of 10 records from the binary and the JSON client (the same bytes both ways)
    for (let i = 0; i < N; i += 10) {
      const c = (i / 10) % 2 ? jc : bc;
      await Promise.all(Array.from({ length: 10 }, (_, j) => c.produce(topic, record(i + j))));
    }
    // JSON produce of JSON values and text: binary subscribers get their bytes
    await jc.produce(topic, { value: { a: [1, "é"] }, key: "k" });
    await jc.produce(topic, { value: "plain", headers: { h: "v" } });
    const views = {
      binary: await take(jc.subscribe(topic, { from: "earliest", format: "binary" }), N + 2),
      "binary client": await take(bc.subscribe(topic, { from: "earliest" }), N + 2),
      json: await take(jc.subscribe(topic, { from: "earliest", encoding: "base64", keyEncoding: "base64" }), N + 2),
    };
    for (const [name, recs] of Object.entries(views)) {
      assert.equal(recs.length, N + 2, name);
      recs.slice(0, N).forEach((r, i) => assert.deepEqual(asBytes(r), expected(i), `${name}: offset ${i}`));
      const [x, y] = recs.slice(N);
      assert.equal(Buffer.from(x.value).toString(), '{"a":[1,"é"]}', name);
      assert.equal(Buffer.from(x.key).toString(), "k", name);
      assert.equal(Buffer.from(y.value).toString(), "plain", name);
      assert.deepEqual(asBytes(y).headers, [["h", arr(utf8("v"))]], name);
    }
    assert.ok(views.binary.every((r) => r.encoding === "binary"));
    assert.ok(views.json.every((r) => r.encoding === "base64" || r.value === null));
    // a binary client's JSON subscription still decodes per encoding
    const [j] = await take(bc.subscribe(topic, { from: { offset: N }, format: "json" }), 1);
    assert.deepEqual([j.value, j.key, j.encoding], [{ a: [1, "é"] }, "k", "json"]);
  });

  test("broker restart mid-stream with binary deliveries: offsets 0..N-1 exactly once", async () => {
    const N = 1000;
    const topic = "bin-restart";
    const producer = await open({ binary: true });
    const states = [];
    const consumer = await open({ binary: true, onStateChange: (s) => states.push(s) });
    const offsets = [];
    const values = [];
    const sub = consumer.subscribe(topic, { from: "earliest", credit: 100 }, async (r) => {
      offsets.push(r.offset);
      values.push(Buffer.from(r.value).toString());
      if (offsets.length % 50 === 0) await sleep(5);
    });
    const gOffsets = [];
    const gsub = consumer.subscribe(topic, { from: "earliest", group: "G-bin-restart" }, (r) => gOffsets.push(r.offset));
    await until(() => gsub.assignment.length === 1, 30_000, "group assignment");
    let produced = 0;
    let errors = 0;
    const loop = (async () => {
      while (produced < N) {
        const batch = Array.from({ length: Math.min(10, N - produced) }, (_, i) => produced + i);
        const rs = await Promise.allSettled(batch.map((i) => producer.produce(topic, { key: `k${i}`, value: `v${i}` })));
        const firstFail = rs.findIndex((r) => r.status === "rejected");
        if (firstFail < 0) produced += batch.length;
        else {
          errors++;
          produced += firstFail;
          await sleep(50);
        }
        await sleep(10);
      }
    })();
    await until(() => produced >= N / 3, 30_000, "a third produced");
    await env.broker.restart();
    await until(() => consumer.state === "open", 30_000, "the consumer reconnected");
    assert.ok(produced < N, "restarted mid-stream");
    await until(() => produced >= (2 * N) / 3, 60_000, "two thirds produced");
    await env.broker.restart();
    assert.ok(produced < N, "restarted mid-stream");
    await loop;
    const end = (await producer.produce(topic, { value: "end" })).offset;
    await until(() => offsets.at(-1) === end && gOffsets.at(-1) === end, 60_000, `delivery up to ${end}`);
    const want = Array.from({ length: end + 1 }, (_, i) => i);
    assert.deepEqual(offsets, want, "plain subscription: no duplicates, no gaps");
    assert.deepEqual(gOffsets, want, "group subscription: no duplicates, no gaps");
    assert.equal(new Set(values.filter((v) => v !== "end")).size, N, "every produced value is in the log");
    assert.ok(states.filter((s) => s === "reconnecting").length >= 2, `states: ${states}`);
    await gsub.commit();
    await sub.close();
    await gsub.close();
    const out = await samsa("group", "describe", "G-bin-restart", "--brokers", env.broker.brokers);
    assert.match(out, new RegExp(`^${topic}\\s+0\\s+${end + 1}\\s+${end + 1}\\s+0\\s`, "m"), out);
    console.log(`# binary restart test: ${end} records, ${errors} producer errors retried, states ${states.join(",")}`);
  });

  test("figures: produce throughput, JSON vs binary (logged, not asserted)", async () => {
    const N = 20_000;
    const value = utf8(JSON.stringify({ sensor: "pump-7", temp: 21.5, ok: true }));
    for (const binary of [false, true]) {
      const c = await open({ binary, maxBufferedRecords: N });
      const t0 = performance.now();
      await Promise.all(Array.from({ length: N }, (_, i) => c.produce(`bin-tput-${binary}`, { key: `k${i % 100}`, value })));
      const ms = performance.now() - t0;
      const t1 = performance.now();
      await take(c.subscribe(`bin-tput-${binary}`, { from: "earliest", credit: 5000 }), N, 60_000);
      const ms2 = performance.now() - t1;
      console.log(`# ${binary ? "binary" : "json  "}: produce ${Math.round(N / (ms / 1000))} rec/s, consume ${Math.round(N / (ms2 / 1000))} rec/s (${N} records of ${value.length} B)`);
    }
  });
});
