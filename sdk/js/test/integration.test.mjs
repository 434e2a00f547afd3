// Integration tests against a real `samsa serve` (see broker.mjs).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { connect, SamsaError } from "../dist/samsa.js";
import { samsa, skipReason, useBroker } from "./broker.mjs";
import { sleep, until, take } from "./util.mjs";

const skip = skipReason();
describe("against samsa serve", { skip }, () => {
  const env = useBroker(connect);
  const open = env.open;

  test("produce: acks carry partition and offset; a tick is one op", async () => {
    const c = await open();
    const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => c.produce("it-produce", { key: "k", value: { i } })));
    assert.deepEqual(
      rs.map((r) => [r.partition, r.offset]),
      Array.from({ length: 10 }, (_, i) => [0, i]),
    );
    assert.deepEqual(await c.produce("it-produce", { value: "x" }), { partition: 0, offset: 10 });
    await samsa("topic", "create", "it-parts", "--partitions", "3", "--brokers", env.broker.brokers);
    const p = await Promise.all([2, 1, 2].map((partition) => c.produce("it-parts", { value: partition, partition })));
    assert.deepEqual(p, [
      { partition: 2, offset: 0 },
      { partition: 1, offset: 0 },
      { partition: 2, offset: 1 },
    ]);
    await assert.rejects(c.produce("it-parts", { value: 1, partition: 7 }), (e) => e instanceof SamsaError && e.code === "unknown_topic");
  });

  test("subscribe from earliest, latest, an offset, a timestamp; values round-trip", async () => {
    const c = await open();
    const t0 = Date.now();
    await Promise.all([
      c.produce("it-sub", { value: { a: [1, 2] }, key: "k1" }),
      c.produce("it-sub", { value: "plain text", headers: { h: "v", bin: new Uint8Array([0, 255]) } }),
      c.produce("it-sub", { value: new Uint8Array([0, 1, 2, 255]), key: new Uint8Array([255, 0]) }),
      c.produce("it-sub", { value: null }),
      c.produce("it-sub", { value: 42, timestamp: t0 + 60_000 }),
    ]);
    const all = await take(c.subscribe("it-sub", { from: "earliest" }), 5);
    assert.deepEqual(
      all.map((r) => r.offset),
      [0, 1, 2, 3, 4],
    );
    assert.deepEqual(all[0].value, { a: [1, 2] });
    assert.equal(all[0].key, "k1");
    assert.equal(all[1].value, "plain text");
    assert.equal(all[1].encoding, "text");
    assert.deepEqual(all[1].headers[0], { key: "h", value: "v" });
    assert.deepEqual([...all[1].headers[1].value], [0, 255]);
    assert.deepEqual([...all[2].value], [0, 1, 2, 255]);
    assert.deepEqual([...all[2].key], [255, 0]);
    assert.equal(all[3].value, null);
    assert.equal(all[4].value, 42);
    assert.equal(all[4].timestamp, t0 + 60_000);

    const fromOffset = await take(c.subscribe("it-sub", { from: { offset: 3 } }), 2);
    assert.deepEqual(
      fromOffset.map((r) => r.offset),
      [3, 4],
    );
    const fromTs = await take(c.subscribe("it-sub", { from: { timestamp: new Date(t0 + 30_000) } }), 1);
    assert.equal(fromTs[0].offset, 4);

    const latest = c.subscribe("it-sub", { from: "latest" });
    assert.deepEqual(await latest.ready, [{ partition: 0, offset: 5, high_watermark: 5 }]);
    await c.produce("it-sub", { value: "new" });
    const [n] = await take(latest, 1);
    assert.deepEqual([n.offset, n.value], [5, "new"]);

    // the callback form
    const seen = [];
    const cb = c.subscribe("it-sub", { from: { offsets: { 0: 4 } } }, (r) => seen.push(r.offset));
    await until(() => seen.length === 2, 10_000, "callback deliveries");
    await cb.close();
    assert.deepEqual(seen, [4, 5]);
  });

  test("subscribe: an unknown filter is a not_found (or unavailable) SamsaError", async () => {
    const c = await open();
    const s = c.subscribe("it-sub", { from: "earliest", filter: { name: "no-such-filter", params: { min: 1 } } });
    await assert.rejects(s.ready, (e) => e instanceof SamsaError && ["not_found", "unavailable"].includes(e.code));
  });

  test("credit: a slow consumer holds at most the window", async () => {
    const c = await open();
    await Promise.all(Array.from({ length: 300 }, (_, i) => c.produce("it-credit", { value: i })));
    const sub = c.subscribe("it-credit", { from: "earliest", credit: 50 });
    await until(() => sub.buffered === 50, 10_000, "the first window");
    await sleep(300);
    assert.equal(sub.buffered, 50, "nothing beyond the credit");
    const got = await take(sub, 300);
    assert.deepEqual(
      got.map((r) => r.value),
      Array.from({ length: 300 }, (_, i) => i),
    );
    await sub.close();
  });

  test("group subscription + commit, visible in samsa group describe", async () => {
    const c = await open();
    await Promise.all(Array.from({ length: 5 }, (_, i) => c.produce("it-group", { value: i })));
    const sub = c.subscribe("it-group", { from: "earliest", group: "G-js" });
    const got = await take(sub, 5, 20_000);
    assert.deepEqual(
      got.map((r) => r.offset),
      [0, 1, 2, 3, 4],
    );
    assert.deepEqual(sub.assignment, [0]);
    await sub.commit();
    await sub.close();
    const out = await samsa("group", "describe", "G-js", "--brokers", env.broker.brokers);
    assert.match(out, /^it-group\s+0\s+5\s+5\s+0\s/m, out);

    // a new member starts from the commit
    const again = c.subscribe("it-group", { from: "earliest", group: "G-js" });
    await c.produce("it-group", { value: 5 });
    const [r] = await take(again, 1, 20_000);
    assert.equal(r.offset, 5);
    await again.commit();
    await again.close();
    assert.match(await samsa("group", "describe", "G-js", "--brokers", env.broker.brokers), /^it-group\s+0\s+6\s+6\s+0\s/m);

    // standalone commit while the group is empty
    await c.commit({ group: "G-js", topic: "it-group", offsets: { 0: 2 } });
    assert.match(await samsa("group", "describe", "G-js", "--brokers", env.broker.brokers), /^it-group\s+0\s+2\s+6\s+4\s/m);
  });

  test("broker restart mid-stream: subscribers see offsets 0..N-1 exactly once", async () => {
    const N = 1000;
    const topic = "it-restart";
    const producer = await open();
    const states = [];
    const consumer = await open({ onStateChange: (s) => states.push(s) });
    const offsets = [];
    const values = [];
    const sub = consumer.subscribe(topic, { from: "earliest", credit: 100 }, async (r) => {
      offsets.push(r.offset);
      values.push(r.value);
      if (offsets.length % 50 === 0) await sleep(5); // a consumer that is not always ready
    });
    const gOffsets = [];
    const gsub = consumer.subscribe(topic, { from: "earliest", group: "G-restart" }, (r) => gOffsets.push(r.offset));

    await until(() => gsub.assignment.length === 1, 30_000, "group assignment");
    let produced = 0;
    let errors = 0;
    const loop = (async () => {
      while (produced < N) {
        // small batches, each record retried until acknowledged
        const batch = Array.from({ length: Math.min(10, N - produced) }, (_, i) => produced + i);
        const rs = await Promise.allSettled(batch.map((i) => producer.produce(topic, { key: `k${i}`, value: i })));
        const firstFail = rs.findIndex((r) => r.status === "rejected");
        if (firstFail < 0) produced += batch.length;
        else {
          errors++;
          produced += firstFail; // later ones may be appended too: resent, so at-least-once
          await sleep(50);
        }
        await sleep(10); // keep producing across the restarts
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
    assert.deepEqual(offsets, want, "plain subscription: offsets 0..N-1, no duplicates, no gaps");
    assert.deepEqual(gOffsets, want, "group subscription: offsets 0..N-1, no duplicates, no gaps");
    const distinct = new Set(values.filter((v) => typeof v === "number"));
    assert.equal(distinct.size, N, "every produced value is in the log (at least once)");
    assert.ok(states.filter((s) => s === "reconnecting").length >= 2, `states: ${states}`);
    await sub.close();
    await gsub.close();
    console.log(`# restart test: ${end} records, ${errors} producer errors retried, states ${states.join(",")}`);
  });
});
