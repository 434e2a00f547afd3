// Unit tests of authentication (PROTOCOL.md §9) against the fake server
// (test/fake.mjs verifies the Ed25519 signatures with node:crypto), and of
// nkey seed decoding against keys made by our CLI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, nkeyPublicKey, AuthError, SamsaError, ConnectionClosedError } from "../dist/samsa.js";
import { FakeServer } from "./fake.mjs";
import { sleep, until } from "./util.mjs";

// Made with `samsa key gen` / `samsa key pub` / `samsa auth init` (test keys only).
const ALICE = { seed: "SUANHET7XWH3JP4DCSBD2BPDGJEZEGJLZ7WE7VHCJBJA52HMX5HX6ACZHI", pub: "UCCST6ZZW63MFEOCLUC5I53KFDQRB2ODVOK6QWWXHOIJSH7LPPGOSNV5" };
const BOB = { seed: "SUAHQRESGUSVE3ZGWRNE2GAXK3HEDIKDSWDKTP7LITVNQ4F6TW6HYOIOAQ", pub: "UA6W3X4CXZMQZWK7NGKMNTRPB2HLBZNNAJPGLYJBHCBB7YPIKGSNAXUU" };
const ISSUER_SEED = "SAACLUV4MLPSJTXMHPJA2OF45Z6X2MC56TWXBTGGPXOYDHMTKOOYRNT3N4";

const ALL = { produce: [">"], consume: [">"] };

function server() {
  const s = new FakeServer();
  const a = s.requireAuth();
  a.tokens.set("jwt-alice", { user: ALICE.pub, ...ALL });
  a.tokens.set("bearer-alice", { user: ALICE.pub, bearer: true, ...ALL });
  a.tokens.set("bearer-ro", { user: BOB.pub, bearer: true, consume: ["sensors.>"] });
  a.users.set(BOB.pub, { name: "svc", produce: ["svc.>"], consume: ["svc.>"] });
  return s;
}

function open(s, opts = {}) {
  return connect("ws://fake/ws", { WebSocket: s.WebSocket, pingIntervalMs: 0, backoff: { initialMs: 5, maxMs: 20 }, requestTimeoutMs: 3000, ...opts });
}

const isAuthError = (code) => (e) => e instanceof AuthError && e instanceof SamsaError && e.code === code;

test("nkey seeds: the public key matches `samsa key pub`; bad seeds are AuthErrors", async () => {
  assert.equal(await nkeyPublicKey(ALICE.seed), ALICE.pub);
  assert.equal(await nkeyPublicKey(BOB.seed + "\n"), BOB.pub, "a seed file's trailing newline is fine");
  const bad = [
    [ISSUER_SEED, /not a user seed/],
    [ALICE.seed.slice(0, 20) + (ALICE.seed[20] === "A" ? "B" : "A") + ALICE.seed.slice(21), /checksum/],
    [ALICE.pub, /checksum|length/],
    [ALICE.seed.toLowerCase(), /base32/],
    ["", /length/],
  ];
  for (const [seed, msg] of bad) {
    await assert.rejects(nkeyPublicKey(seed), (e) => e instanceof AuthError && msg.test(e.message) && !e.message.includes(seed || "\0"));
  }
});

test("nonce signing {jwt, seed}: auth is the first op; produce and subscribe wait for it", async () => {
  const s = server();
  const states = [];
  const c = await open(s, { auth: { jwt: "jwt-alice", seed: ALICE.seed }, onStateChange: (st) => states.push(st) });
  assert.deepEqual(c.identity, { user: ALICE.pub, expires: undefined });
  const auth = s.frames[0];
  assert.deepEqual(Object.keys(auth).sort(), ["id", "jwt", "op", "sig"]);
  assert.equal(auth.jwt, "jwt-alice");
  assert.match(auth.sig, /^[A-Za-z0-9+/]+=*$/, "standard base64");
  assert.equal(Buffer.from(auth.sig, "base64").length, 64);
  const sub = c.subscribe("sensors.a", { from: "earliest" });
  assert.deepEqual(await c.produce("sensors.a", { value: 1 }), { partition: 0, offset: 0 });
  const it = sub[Symbol.asyncIterator]();
  assert.equal((await it.next()).value.value, 1);
  assert.deepEqual(states, ["open"]);
  await c.close();
});

test("requests made while authenticating go out after the authenticated reply", async () => {
  const s = server();
  const c = await import("../dist/samsa.js").then((m) => new m.Client("ws://fake/ws", { WebSocket: s.WebSocket, pingIntervalMs: 0, auth: { jwt: "jwt-alice", seed: ALICE.seed } }));
  const p = c.produce("t", { value: "early" });
  const sub = c.subscribe("t", { from: "earliest" });
  await p;
  await sub.ready;
  const ops = s.frames.map((f) => f.op);
  assert.equal(ops[0], "auth");
  assert.deepEqual(ops.slice(1).sort(), ["produce", "subscribe"]);
  assert.equal(s.conns[0].principal.user, ALICE.pub);
  await c.close();
});

test("a static user {seed} sends its public key as nkey", async () => {
  const s = server();
  const c = await open(s, { auth: { seed: BOB.seed } });
  const auth = s.opsOf("auth")[0];
  assert.equal(auth.nkey, BOB.pub);
  assert.equal(auth.jwt, undefined);
  assert.equal(c.identity.user, "svc");
  await c.produce("svc.x", { value: 1 });
  await c.close();
});

test("bearer: {op:auth, bearer}; forbidden produce leaves the connection usable", async () => {
  const s = server();
  const c = await open(s, { auth: { bearer: "bearer-ro" } });
  assert.deepEqual(s.opsOf("auth")[0], { op: "auth", id: s.opsOf("auth")[0].id, bearer: "bearer-ro" });
  await assert.rejects(c.produce("sensors.a", { value: 1 }), (e) => e instanceof SamsaError && !(e instanceof AuthError) && e.code === "forbidden");
  s.append("sensors.a", 0, "x");
  const sub = c.subscribe("sensors.a", { from: "earliest" });
  assert.equal((await sub[Symbol.asyncIterator]().next()).value.value, "x");
  await assert.rejects(c.subscribe("other", { from: "earliest" }).ready, (e) => e.code === "forbidden");
  assert.equal(c.state, "open");
  assert.equal(s.conns.length, 1);
  await c.close();
});

test("no credentials for a broker that requires them: AuthError, no retries", async () => {
  const s = server();
  const states = [];
  await assert.rejects(open(s, { onStateChange: (st) => states.push(st) }), (e) => isAuthError("unauthorized")(e) && /requires authentication/.test(e.message));
  await sleep(50);
  assert.equal(s.conns.length, 1);
  assert.deepEqual(states, ["closed"]);
});

test("a refused credential is terminal: AuthError from connect(), one attempt", async () => {
  const cases = [
    [{ jwt: "jwt-alice", seed: BOB.seed }, /bad signature/], // signed by another key
    [{ bearer: "jwt-alice" }, /not a bearer/],
    [{ jwt: "bearer-alice", seed: ALICE.seed }, /bearer/],
    [{ bearer: "nope" }, /unknown token/],
  ];
  for (const [auth, msg] of cases) {
    const s = server();
    await assert.rejects(open(s, { auth }), (e) => isAuthError("unauthorized")(e) && msg.test(e.message), JSON.stringify(auth));
    await sleep(30);
    assert.equal(s.conns.length, 1, "no reconnect with a bad credential");
  }
  // unusable credentials never reach the server
  for (const auth of [{ jwt: "jwt-alice" }, { seed: "SUNOPE" }, {}, () => ({ user: "x" })]) {
    const s = server();
    await assert.rejects(open(s, { auth }), isAuthError("unauthorized"));
    assert.equal(s.opsOf("auth").length, 0);
  }
});

test("an expired token is refused", async () => {
  const s = server();
  s.auth.tokens.set("old", { user: ALICE.pub, bearer: true, expires: Date.now() - 1000, ...ALL });
  await assert.rejects(open(s, { auth: { bearer: "old" } }), (e) => isAuthError("unauthorized")(e) && /expired/.test(e.message));
});

test("cookie: the server's authenticated after hello is enough; a bad cookie is an AuthError", async () => {
  const s = server();
  s.auth.cookie = "bearer-alice";
  const c = await open(s);
  assert.equal(c.identity.via, "cookie");
  assert.equal(c.identity.user, ALICE.pub);
  assert.equal(s.opsOf("auth").length, 0);
  await c.produce("t", { value: 1 });
  await c.close();

  s.auth.cookie = "jwt-alice";
  await assert.rejects(open(s), (e) => isAuthError("unauthorized")(e) && /cookie refused: .*not a bearer/.test(e.message));
});

test("every reconnect signs the new nonce before resubscribing; no duplicates", async () => {
  const s = server();
  const c = await open(s, { auth: { jwt: "jwt-alice", seed: ALICE.seed } });
  const got = [];
  const sub = c.subscribe("t", { from: "earliest" }, (r) => got.push(r.offset));
  s.append("t", 0, "a", "b");
  await until(() => got.length === 2);
  for (let i = 0; i < 2; i++) {
    s.drop(1012, "restart");
    await until(() => s.live().length === 1 && c.state === "open", 5000, "reconnected");
    s.append("t", 0, "c" + i);
    await until(() => got.length === 3 + i, 5000, "the record after the reconnect");
  }
  assert.deepEqual(got, [0, 1, 2, 3]);
  assert.equal(s.conns.length, 3);
  const sigs = new Set(s.opsOf("auth").map((a) => a.sig));
  assert.equal(sigs.size, 3, "a different nonce, a different signature, per connection");
  // on every connection, auth came first and subscribe after it
  const ops = s.frames.map((f) => f.op).filter((o) => o === "auth" || o === "subscribe");
  assert.deepEqual(ops, ["auth", "subscribe", "auth", "subscribe", "auth", "subscribe"]);
  await sub.close();
  await c.close();
});

test("4001 with fixed credentials: the client closes with AuthError, subscribers and produce get it", async () => {
  const s = server();
  const c = await open(s, { auth: { jwt: "jwt-alice", seed: ALICE.seed } });
  const sub = c.subscribe("t", { from: "earliest" });
  await sub.ready;
  s.holdAcks = true;
  const p = c.produce("t", { value: 1 });
  await until(() => s.opsOf("produce").length === 1);
  s.revoke(ALICE.pub);
  await assert.rejects(p, (e) => isAuthError("unauthorized")(e) && /4001 revoked/.test(e.message));
  await assert.rejects(sub.closed, isAuthError("unauthorized"));
  await assert.rejects(c.produce("t", { value: 2 }), isAuthError("unauthorized"));
  assert.equal(c.state, "closed");
  await sleep(30);
  assert.equal(s.conns.length, 1, "no reconnect with the old token");
});

test("an auth function is called on every connect; after a 4001 it brings new credentials", async () => {
  const s = server();
  s.auth.tokens.set("bearer-bob", { user: BOB.pub, bearer: true, ...ALL });
  const given = [];
  const fn = async () => {
    await sleep(1);
    const b = given.length === 0 ? "bearer-alice" : "bearer-bob";
    given.push(b);
    return { bearer: b };
  };
  const c = await open(s, { auth: fn });
  const got = [];
  const sub = c.subscribe("t", { from: "earliest" }, (r) => got.push(r.value));
  s.append("t", 0, "a");
  await until(() => got.length === 1);
  s.revoke(ALICE.pub);
  await until(() => c.identity?.user === BOB.pub, 5000, "re-authenticated as bob");
  s.append("t", 0, "b");
  await until(() => got.length === 2);
  assert.deepEqual(got, ["a", "b"]);
  assert.deepEqual(given, ["bearer-alice", "bearer-bob"]);

  // The function's credentials fail now: the error reaches subscribers and producers.
  s.holdAcks = true;
  const p = c.produce("t", { value: "c" });
  await until(() => s.opsOf("produce").length === 1);
  s.revoke(BOB.pub);
  await assert.rejects(p, (e) => isAuthError("unauthorized")(e) && /revoked/.test(e.message));
  await assert.rejects(sub.closed, isAuthError("unauthorized"));
  assert.equal(c.state, "closed");
  assert.deepEqual(given, ["bearer-alice", "bearer-bob", "bearer-bob"]);
});

test("an auth function that throws: AuthError with the cause", async () => {
  const s = server();
  const boom = new Error("backend down");
  await assert.rejects(
    open(s, {
      auth: async () => {
        throw boom;
      },
    }),
    (e) => isAuthError("unauthorized")(e) && e.cause === boom && /backend down/.test(e.message),
  );
});

test("refresh: an auth function re-authenticates the live connection before expiry", async () => {
  const s = server();
  let n = 0;
  const fn = () => {
    const tok = `short-${++n}`;
    s.auth.tokens.set(tok, { user: ALICE.pub, bearer: true, expires: Date.now() + 600, ...ALL });
    return { bearer: tok };
  };
  const states = [];
  const c = await open(s, { auth: fn, onStateChange: (st) => states.push(st) });
  const firstExpiry = c.identity.expires;
  await until(() => n >= 3 && Date.now() > firstExpiry + 100, 10_000, "two refreshes past the first expiry");
  assert.equal(s.conns.length, 1, "the same connection");
  assert.equal(s.conns[0].readyState, 1);
  assert.ok(c.identity.expires > firstExpiry);
  assert.deepEqual(states, ["open"]);
  await c.produce("t", { value: 1 });
  await c.close();
});

test("fixed credentials are not refreshed: the expiry closes the client with AuthError", async () => {
  const s = server();
  s.auth.tokens.set("brief", { user: ALICE.pub, bearer: true, expires: Date.now() + 150, ...ALL });
  const c = await open(s, { auth: { bearer: "brief" } });
  const sub = c.subscribe("t");
  await assert.rejects(sub.closed, (e) => isAuthError("unauthorized")(e) && /token expired/.test(e.message));
  assert.equal(s.opsOf("auth").length, 1);
  assert.equal(c.state, "closed");
});

test("a broker without auth ignores the credentials", async () => {
  const s = new FakeServer();
  const c = await open(s, { auth: { bearer: "whatever" } });
  assert.equal(s.opsOf("auth").length, 0);
  assert.equal(c.identity, undefined);
  await c.produce("t", { value: 1 });
  await c.close();
  assert.ok(!(new ConnectionClosedError("x") instanceof AuthError));
});
