// Integration tests of authentication against a real `samsa serve` with
// [auth] enabled, set up with the CLI as an operator would: `samsa auth
// init`, `samsa key gen`, `samsa token issue` (see broker.mjs).
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect, nkeyPublicKey, AuthError, SamsaError } from "../dist/samsa.js";
import { Broker, samsa, samsaBin, skipReason, tempDir } from "./broker.mjs";
import { sleep, until, take } from "./util.mjs";

const skip = skipReason();
/** The claims of a JWT (no verification: the broker does that). */
function claims(jwt) {
  return JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString());
}

const isAuthError = (re) => (e) => e instanceof AuthError && e.code === "unauthorized" && re.test(e.message);

describe("against samsa serve with [auth] enabled", { skip }, () => {
  let broker;
  let dir;
  let issuer; // issuer seed file
  let revoked; // the broker's revocation file
  const keys = {}; // name -> {seedFile, seed, pub}
  const clients = [];

  const open = async (opts = {}) => {
    const c = await connect(broker.url, { backoff: { initialMs: 50, maxMs: 1000 }, ...opts });
    clients.push(c);
    return c;
  };
  const issue = async (user, ...flags) => (await samsa("token", "issue", "--issuer-seed", issuer, "--user", keys[user].pub, ...flags)).trim();
  const keyGen = async (name) => {
    const seedFile = join(dir, `${name}.nk`);
    const pub = (await samsa("key", "gen", "--out", seedFile)).trim();
    keys[name] = { seedFile, seed: readFileSync(seedFile, "utf8"), pub };
  };

  before(async () => {
    samsaBin();
    dir = tempDir("auth-");
    issuer = join(dir, "issuer.nk");
    const init = await samsa("auth", "init", "--out", issuer);
    const issuers = /^issuers = (\[.*\])$/m.exec(init);
    assert.ok(issuers, init);
    for (const n of ["alice", "bob", "carol", "dave", "erin"]) await keyGen(n);
    revoked = join(dir, "revoked.txt");
    writeFileSync(revoked, "# revoked user keys\n");
    const config = [
      "[auth]",
      "enabled = true",
      `issuers = ${issuers[1]}`,
      `revocation_file = ${JSON.stringify(revoked)}`,
      "failed_auth_per_minute = 1000",
      "",
      "[[auth.users]]",
      'name = "svc"',
      `nkey = "${keys.carol.pub}"`,
      'produce = ["svc.>"]',
      'consume = ["svc.>"]',
      "",
    ].join("\n");
    broker = await Broker.create({ config });
  });

  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await broker?.stop();
  });

  test("the SDK's seed decoding agrees with `samsa key pub`", async () => {
    for (const k of Object.values(keys)) {
      assert.equal(await nkeyPublicKey(k.seed), k.pub);
      assert.equal((await samsa("key", "pub", k.seedFile)).trim(), k.pub);
    }
  });

  test("hello says auth required; without credentials connect() fails with AuthError", async () => {
    const states = [];
    await assert.rejects(connect(broker.url, { onStateChange: (s) => states.push(s) }), isAuthError(/requires authentication/));
    assert.deepEqual(states, ["closed"], "no reconnect");
  });

  test("nonce signing in Node: {jwt, seed} produces and subscribes", async () => {
    const jwt = await issue("alice", "--produce", "sensors.>", "--consume", "sensors.>", "--expires", "1h");
    const c = await open({ auth: { jwt, seed: keys.alice.seed } });
    assert.equal(c.hello.auth, "required");
    assert.equal(c.identity.user, keys.alice.pub);
    assert.equal(c.identity.expires, claims(jwt).exp * 1000);
    const rs = await Promise.all([1, 2, 3].map((i) => c.produce("sensors.node", { key: "k", value: { i } })));
    assert.deepEqual(
      rs.map((r) => r.offset),
      [0, 1, 2],
    );
    const got = await take(c.subscribe("sensors.node", { from: "earliest" }), 3);
    assert.deepEqual(
      got.map((r) => r.value.i),
      [1, 2, 3],
    );
  });

  test("a bearer token works; a consume-only one gets forbidden on produce and the connection stays usable", async () => {
    const bearer = await issue("alice", "--produce", "sensors.>", "--consume", "sensors.>", "--bearer", "--expires", "15m");
    const c = await open({ auth: { bearer } });
    assert.equal(c.identity.user, keys.alice.pub);
    await c.produce("sensors.bearer", { value: "hello" });
    const [r] = await take(c.subscribe("sensors.bearer", { from: "earliest" }), 1);
    assert.equal(r.value, "hello");

    const ro = await issue("bob", "--consume", "sensors.>", "--bearer", "--expires", "15m");
    const reader = await open({ auth: { bearer: ro } });
    const session = reader.hello.session;
    await assert.rejects(reader.produce("sensors.bearer", { value: "no" }), (e) => e instanceof SamsaError && !(e instanceof AuthError) && e.code === "forbidden");
    await assert.rejects(reader.subscribe("private.stuff", { from: "earliest" }).ready, (e) => e.code === "forbidden");
    const [again] = await take(reader.subscribe("sensors.bearer", { from: "earliest" }), 1);
    assert.equal(again.value, "hello");
    assert.equal(reader.state, "open");
    assert.equal(reader.hello.session, session, "the same connection");
  });

  test("produce outside the token's topics is forbidden; the connection stays usable", async () => {
    const jwt = await issue("alice", "--produce", "sensors.>", "--consume", "sensors.>", "--expires", "1h");
    const c = await open({ auth: { jwt, seed: keys.alice.seed } });
    const session = c.hello.session;
    await assert.rejects(c.produce("billing.events", { value: 1 }), (e) => e instanceof SamsaError && e.code === "forbidden");
    await assert.rejects(c.produce("sensors", { value: 1 }), (e) => e.code === "forbidden", "'sensors.>' does not cover 'sensors'");
    assert.equal((await c.produce("sensors.ok", { value: 1 })).offset, 0);
    assert.equal(c.hello.session, session);
    assert.equal(c.state, "open");
  });

  test("a static user of broker.toml signs with its seed alone", async () => {
    const c = await open({ auth: { seed: keys.carol.seed } });
    assert.equal(c.identity.user, "svc");
    assert.equal(c.identity.expires, undefined);
    await c.produce("svc.jobs", { value: 1 });
    await assert.rejects(c.produce("sensors.x", { value: 1 }), (e) => e.code === "forbidden");
  });

  test("refused credentials: AuthError from connect(), never retried", async () => {
    const jwt = await issue("alice", "--produce", "sensors.>", "--expires", "1h");
    const bearer = await issue("alice", "--produce", "sensors.>", "--bearer", "--expires", "15m");
    const otherIssuer = join(dir, "other-issuer.nk");
    await samsa("auth", "init", "--out", otherIssuer);
    const foreign = (await samsa("token", "issue", "--issuer-seed", otherIssuer, "--user", keys.alice.pub, "--produce", ">", "--bearer")).trim();
    const cases = [
      ["a signature by another key", { jwt, seed: keys.bob.seed }, /signature does not verify/],
      ["a bearer JWT used for nonce signing", { jwt: bearer, seed: keys.alice.seed }, /bearer token cannot be used with nonce signing/],
      ["a nonce JWT used as a bearer", { bearer: jwt }, /not a bearer token/],
      ["an untrusted issuer", { bearer: foreign }, /untrusted issuer/],
      ["an unknown static key", { seed: keys.erin.seed }, /not a configured user/],
    ];
    for (const [what, auth, msg] of cases) {
      const states = [];
      await assert.rejects(connect(broker.url, { auth, onStateChange: (s) => states.push(s) }), isAuthError(msg), what);
      assert.deepEqual(states, ["closed"], what);
    }
  });

  test("an expired token is refused", async () => {
    const bearer = await issue("alice", "--consume", "sensors.>", "--bearer", "--expires", "1s");
    const exp = claims(bearer).exp * 1000;
    await until(() => Date.now() > exp + 50, 5000, "the token's expiry");
    await assert.rejects(connect(broker.url, { auth: { bearer } }), isAuthError(/expired/));
  });

  test("a broker restart: the client re-authenticates (new nonce) and resumes with no duplicates", async () => {
    const topic = "sensors.restart";
    const jwt = await issue("alice", "--produce", "sensors.>", "--consume", "sensors.>", "--expires", "1h");
    const states = [];
    const consumer = await open({ auth: { jwt, seed: keys.alice.seed }, onStateChange: (s) => states.push(s) });
    let bearerCalls = 0;
    const producer = await open({
      auth: async () => {
        bearerCalls++;
        return { bearer: await issue("alice", "--produce", "sensors.>", "--bearer", "--expires", "15m") };
      },
    });
    const offsets = [];
    const sub = consumer.subscribe(topic, { from: "earliest", credit: 50 }, (r) => offsets.push(r.offset));
    await sub.ready;
    const N = 300;
    const produceAll = async (from, to) => {
      for (let i = from; i < to; i += 10) {
        await Promise.all(Array.from({ length: 10 }, (_, j) => producer.produce(topic, { value: i + j })));
      }
    };
    await produceAll(0, N / 2);
    await until(() => offsets.length === N / 2, 20_000, "the first half");
    const session = consumer.hello.session;
    await broker.restart();
    await until(() => consumer.state === "open" && producer.state === "open", 30_000, "both reconnected");
    await produceAll(N / 2, N);
    await until(() => offsets.length >= N, 30_000, "the second half");
    await sleep(200);
    assert.deepEqual(
      offsets,
      Array.from({ length: N }, (_, i) => i),
      "each offset exactly once",
    );
    assert.notEqual(consumer.hello.session, session, "a new connection");
    assert.equal(consumer.identity.user, keys.alice.pub);
    assert.ok(states.includes("reconnecting"), `states ${states}`);
    assert.ok(bearerCalls >= 2, "the auth function ran again on reconnect");
    await sub.close();
  });

  test("refresh: an auth function keeps the connection alive past its first token's expiry", async () => {
    let calls = 0;
    const states = [];
    const c = await open({
      auth: async () => {
        calls++;
        return { bearer: await issue("dave", "--produce", "sensors.>", "--consume", "sensors.>", "--bearer", "--expires", "8s") };
      },
      onStateChange: (s) => states.push(s),
    });
    const session = c.hello.session;
    const firstExpiry = c.identity.expires;
    const sub = c.subscribe("sensors.refresh", { from: "earliest" });
    await sub.ready;
    await until(() => Date.now() > firstExpiry + 1000, 15_000, "past the first token's expiry");
    assert.ok(calls >= 2, `auth function calls: ${calls}`);
    assert.ok(c.identity.expires > firstExpiry, "a later expiry");
    assert.deepEqual(states, ["open"], "never disconnected");
    assert.equal(c.hello.session, session);
    await c.produce("sensors.refresh", { value: "still here" });
    const [r] = await take(sub, 1);
    assert.equal(r.value, "still here");
    await sub.close();
    await c.close();
  });

  test("revocation: 4001, the auth function brings another identity; when that fails too, subscribers and producers get the AuthError", async () => {
    const topic = "sensors.revoke";
    const who = ["erin", "bob"];
    const tokens = {};
    for (const u of who) tokens[u] = await issue(u, "--produce", "sensors.>", "--consume", "sensors.>", "--bearer", "--expires", "15m");
    const given = [];
    const c = await open({
      auth: () => {
        const u = given.length === 0 ? "erin" : "bob";
        given.push(u);
        return { bearer: tokens[u] };
      },
    });
    assert.equal(c.identity.user, keys.erin.pub);
    const got = [];
    const sub = c.subscribe(topic, { from: "earliest" }, (r) => got.push(r.offset));
    await c.produce(topic, { value: 0 });
    await until(() => got.length === 1, 10_000, "the first record");

    appendFileSync(revoked, keys.erin.pub + "\n");
    await until(() => c.identity?.user === keys.bob.pub, 20_000, "re-authenticated as bob after erin's revocation");
    await c.produce(topic, { value: 1 });
    await until(() => got.length === 2, 10_000, "the record after the reconnect");
    assert.deepEqual(got, [0, 1]);
    assert.deepEqual(given, ["erin", "bob"]);

    appendFileSync(revoked, keys.bob.pub + "\n");
    await assert.rejects(sub.closed, isAuthError(/revoked/));
    await assert.rejects(c.produce(topic, { value: 2 }), isAuthError(/revoked/));
    assert.equal(c.state, "closed");
    assert.deepEqual(given, ["erin", "bob", "bob"]);
  });
});
