import { backoffDelay } from "./backoff.js";
import { encodeHeaders, encodeValue, toBase64, type HeadersInit, type Value } from "./codec.js";
import { binRecord, parseAck, parseRecords, produceFrame, toBytes, utf8 } from "./binary.js";
import { authOp, refreshDelay, type AuthOption, type Credentials, type Identity } from "./auth.js";
import { AuthError, ConnectionClosedError, SamsaError, TimeoutError } from "./errors.js";
import {
  Subscription,
  type CommitOffsets,
  type SamsaRecord,
  type SubHost,
  type SubscribeOptions,
} from "./subscription.js";

/** The subprotocol this SDK speaks. */
export const SUBPROTOCOL = "samsa.v1";

/** The part of the WebSocket API the client uses (browsers' and ws's). */
export interface WebSocketLike {
  readonly readyState: number;
  /** Set to "arraybuffer" by the client. */
  binaryType?: string;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  terminate?(): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
}
export type WebSocketConstructor = new (url: string, protocols: string | string[]) => WebSocketLike;

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

export interface ClientOptions {
  /** Reconnect (jittered exponential backoff) and resume. Default true. */
  reconnect?: boolean;
  /** Backoff bounds: full jitter in [0, min(maxMs, initialMs·2^attempt)). Defaults 100 ms and 10 s. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** How long connect() waits for the first connection (retrying when reconnect is on). Default 30 s. */
  connectTimeoutMs?: number;
  /**
   * Deadline of a request (produce: from the produce() call, across
   * reconnects). Default 30 s. One timer per client checks the deadlines:
   * what is overdue fails within min(requestTimeoutMs/4, 1 s) past it.
   */
  requestTimeoutMs?: number;
  /**
   * App-level heartbeat: when nothing was received for this long, send a
   * `ping` op; no reply within pingTimeoutMs drops the link (and reconnects).
   * Default 15 s; 0 disables.
   */
  pingIntervalMs?: number;
  /** Default 10 s. */
  pingTimeoutMs?: number;
  /**
   * Produce requests sent but not acknowledged when the link drops are sent
   * again after the reconnect (at-least-once: a record whose ack was lost may
   * be appended twice). false: they fail with ConnectionClosedError and only
   * records not yet sent wait for the reconnect. Default true.
   */
  resendOnReconnect?: boolean;
  /**
   * Records produced and not yet acknowledged (queued, in flight) at most;
   * beyond, produce() fails: with ConnectionClosedError while disconnected,
   * with SamsaError "limit" while connected. Default 10000.
   */
  maxBufferedRecords?: number;
  /** Records per produce op. Default 1000. */
  maxBatchRecords?: number;
  /** Produce ops in flight per connection. Default 32. */
  maxInflight?: number;
  /** Wait this long to batch produce() calls; 0 (default): records of the same tick. */
  lingerMs?: number;
  /** Produce strings as JSON strings (encoding "json") instead of text. Default false. */
  jsonStrings?: boolean;
  /**
   * Binary frames (PROTOCOL.md §6), the fast path: produce requests go as
   * kind 1 frames (records with a timestamp still go as JSON: the frame
   * carries none), and subscriptions default to `format: "binary"`
   * (deliveries with Uint8Array keys and values). Default false.
   */
  binary?: boolean;
  /**
   * Credentials for a broker that requires authentication (hello
   * `auth: "required"`): `{jwt, seed}`, `{seed}` (static user), `{bearer}`,
   * or a function returning one of them, called on every (re)connect and
   * before the token expires. Without it, such a broker must authenticate
   * the connection by its cookie, else connect() fails with AuthError.
   */
  auth?: AuthOption;
  /** WebSocket implementation; default globalThis.WebSocket, else the `ws` package. */
  WebSocket?: WebSocketConstructor;
  /** Random source of the jitter (tests). */
  random?: () => number;
  onStateChange?: (state: ConnectionState, err?: Error) => void;
}

export interface ProduceRecord {
  key?: string | Uint8Array | null;
  /**
   * JSON ops: see the README's Values. Binary frames (`binary: true`): a
   * Uint8Array as it is, a string its UTF-8, anything else its JSON text.
   */
  value: Value;
  headers?: HeadersInit;
  partition?: number;
  timestamp?: number | Date;
}

export interface ProduceResult {
  partition: number;
  offset: number;
}

export interface StandaloneCommit {
  group: string;
  topic: string;
  offsets: CommitOffsets;
}

interface Entry {
  topic: string;
  /** The record as a JSON produce record, or (binary) as a kind 1 record. */
  json?: string;
  bin?: Uint8Array;
  bytes: number;
  resolve: (r: ProduceResult) => void;
  reject: (e: unknown) => void;
  settled: boolean;
  /** Date.now() past which the record fails (checked by the client's sweep). */
  deadline: number;
  lastError?: SamsaError;
}

interface Pending {
  resolve: (msg: any) => void;
  reject: (e: unknown) => void;
  /** Requests (not produce ops): when the reply is overdue, and what then. */
  deadline?: number;
  expire?: () => void;
  entries?: Entry[];
}

/** Someone waiting for the connection (a request made while disconnected). */
interface Waiter {
  deadline: number;
  wake: (timedOut: boolean) => void;
}


async function defaultWebSocket(): Promise<WebSocketConstructor> {
  const g = (globalThis as any).WebSocket;
  if (g) return g;
  try {
    const m: any = await import("ws" as string);
    return m.WebSocket ?? m.default;
  } catch {
    throw new SamsaError("internal", "no global WebSocket: install the 'ws' package");
  }
}

function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) n += c >= 0x800 && (c < 0xd800 || c > 0xdfff) ? 2 : 1;
  }
  return n;
}

function normalizeOffsets(o: CommitOffsets): Array<{ partition: number; offset: number; metadata?: string }> {
  return Array.isArray(o) ? o : Object.entries(o).map(([p, offset]) => ({ partition: +p, offset }));
}

/** Connects to a samsa broker's WebSocket endpoint (ws://host:8080/ws). */
export async function connect(url: string, options: ClientOptions = {}): Promise<Client> {
  const c = new Client(url, options);
  await c.connected;
  return c;
}

export class Client implements SubHost {
  readonly url: string;
  /** Resolves once the first connection is up; rejects if it never comes. */
  readonly connected: Promise<void>;
  /** The server's `hello` of the current connection. */
  hello?: { session: string; nonce?: string; auth?: string; limits?: { max_frame_bytes?: number; max_subscriptions?: number }; [k: string]: unknown };

  /** Who the current connection is authenticated as (brokers with auth on). */
  identity?: Identity;

  private readonly o: Required<Omit<ClientOptions, "WebSocket" | "onStateChange" | "backoff" | "auth">> & ClientOptions;
  private ctor?: WebSocketConstructor;
  private ws?: WebSocketLike;
  private _state: ConnectionState = "connecting";
  private ready = false;
  private attempt = 0;
  private nextId = 1;
  private subSeq = 0;
  private pending = new Map<number, Pending>();
  private subs = new Map<string, Subscription<any>>();
  private queue: Entry[] = [];
  private buffered = 0;
  private inflight = 0;
  private flushScheduled = false;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private pingTimer?: ReturnType<typeof setInterval>;
  private lastRecv = 0;
  private pinging = false;
  private readyWaiters: Waiter[] = [];
  /** Produce ops refused with "unavailable", waiting to go back to the queue. */
  private retrying = new Map<Entry[], ReturnType<typeof setTimeout>>();
  /**
   * The one timer that fails overdue records, requests and waiters (no
   * timer per record): armed while any is pending, for the earliest
   * deadline (at least `sweepEvery()` after the previous sweep).
   */
  private sweepTimer?: ReturnType<typeof setTimeout>;
  private sweepAt = 0;
  private connectedRes!: [() => void, (e: unknown) => void];
  private creds?: Credentials;
  private closing = false;
  private closeErr?: SamsaError;
  private socketClosed?: () => void;
  private refreshTimer?: ReturnType<typeof setTimeout>;
  private cookieErr?: string;

  constructor(url: string, options: ClientOptions = {}) {
    this.url = url;
    this.o = {
      reconnect: true,
      connectTimeoutMs: 30_000,
      requestTimeoutMs: 30_000,
      pingIntervalMs: 15_000,
      pingTimeoutMs: 10_000,
      resendOnReconnect: true,
      maxBufferedRecords: 10_000,
      maxBatchRecords: 1000,
      maxInflight: 32,
      lingerMs: 0,
      jsonStrings: false,
      binary: false,
      random: Math.random,
      ...options,
    };
    this.connected = new Promise((a, b) => (this.connectedRes = [a, b]));
    this.connected.catch(() => {});
    const t = setTimeout(() => {
      if (!this.ready) this.shutdown(new TimeoutError(`no connection to ${url} within ${this.o.connectTimeoutMs} ms`));
    }, this.o.connectTimeoutMs);
    this.connected.then(
      () => clearTimeout(t),
      () => clearTimeout(t),
    );
    void this.open();
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this._state;
  }

  private setState(s: ConnectionState, err?: Error): void {
    if (this._state === s) return;
    this._state = s;
    this.o.onStateChange?.(s, err);
  }

  // ---- connection ----

  private async open(): Promise<void> {
    try {
      this.ctor ??= this.o.WebSocket ?? (await defaultWebSocket());
    } catch (e) {
      this.shutdown(e as SamsaError);
      return;
    }
    if (this.closing) return;
    let ws: WebSocketLike;
    try {
      ws = new this.ctor(this.url, SUBPROTOCOL);
    } catch (e) {
      this.shutdown(new ConnectionClosedError(`cannot open ${this.url}: ${(e as Error).message}`));
      return;
    }
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onmessage = ({ data }) => {
      if (this.ws !== ws) return;
      if (typeof data === "string") this.onMessage(data);
      else if (data instanceof ArrayBuffer) this.onBinary(new Uint8Array(data));
      else if (ArrayBuffer.isView(data)) this.onBinary(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    };
    ws.onclose = (ev) => this.onClose(ws, ev.code, ev.reason);
    ws.onerror = () => {}; // a close event follows
  }

  private onClose(ws: WebSocketLike, code: number, reason: string): void {
    ws.onclose = ws.onmessage = ws.onerror = null;
    if (this.ws !== ws) return;
    this.ws = undefined;
    this.ready = false;
    this.hello = this.identity = this.cookieErr = undefined;
    clearInterval(this.pingTimer);
    clearTimeout(this.refreshTimer);
    this.pinging = false;
    const err = new ConnectionClosedError(`connection closed (${code}${reason ? " " + reason : ""})`, code, reason);
    // Requests in flight: produce ops go back to the queue (or fail), the rest fail.
    const resend: Entry[] = [];
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      if (p.entries) {
        this.inflight--;
        if (this.o.resendOnReconnect && !this.closing) resend.push(...p.entries);
        else this.rejectEntries(p.entries, err);
      } else p.reject(err);
    }
    this.queue = resend.concat(this.queue);
    for (const s of this.subs.values()) s.onDisconnect();
    this.socketClosed?.();
    if (this.closing) return;
    if (code === 4001 && (typeof this.o.auth !== "function" || !this.o.reconnect)) {
      // Expired or revoked: only an auth function can bring a new token.
      this.shutdown(new AuthError("unauthorized", `the server closed the connection (4001${reason ? " " + reason : ""}): new credentials are needed`));
      return;
    }
    if (!this.o.reconnect || code === 1008) {
      this.shutdown(err);
      return;
    }
    this.setState("reconnecting", err);
    const delay = backoffDelay(this.attempt++, this.o.backoff?.initialMs, this.o.backoff?.maxMs, this.o.random);
    this.reconnectTimer = setTimeout(() => void this.open(), delay);
  }

  /** Drops the current link as if it failed (the client reconnects when it may). */
  private dropLink(reason: string): void {
    const ws = this.ws;
    if (!ws) return;
    try {
      if (ws.terminate) ws.terminate();
      else ws.close(4000, reason);
    } catch {
      /* already closed */
    }
    this.onClose(ws, 1006, reason);
  }

  private onMessage(data: string): void {
    this.lastRecv = Date.now();
    let m: any;
    try {
      m = JSON.parse(data);
    } catch {
      return;
    }
    const sub = typeof m.sub === "string" ? this.subs.get(m.sub) : undefined;
    const p = m.id !== undefined ? this.pending.get(m.id) : undefined;
    switch (m.type) {
      case "hello":
        this.onHello(m);
        return;
      case "authenticated":
        if (m.id === undefined) this.identity = { user: m.user, expires: m.expires, via: m.via }; // the auth cookie
        break;
      case "records":
        sub?.onRecords(m.records ?? []);
        return;
      case "assigned":
        sub?.onAssigned(m.partitions ?? [], m.generation);
        return;
      case "revoked":
        sub?.onRevoked((m.partitions ?? []).map((x: { partition: number }) => x.partition));
        return;
      case "reset":
        sub?.onReset(m.partition, m.offset);
        return;
      case "error": {
        const e = new SamsaError(m.code ?? "internal", m.message ?? m.code, m.sub);
        if (p) this.settle(m.id, p, e);
        else if (sub) {
          this.subs.delete(sub.name);
          sub.fail(e);
        } else if (m.code === "unauthorized") this.cookieErr = e.message;
        return;
      }
    }
    if (p) this.settle(m.id, p, undefined, m);
  }

  /** A binary frame: a produce ack (kind 2) or records (kind 3); other kinds are ignored. */
  private onBinary(b: Uint8Array): void {
    this.lastRecv = Date.now();
    try {
      if (b[0] === 2) {
        const a = parseAck(b);
        const p = this.pending.get(a.id);
        if (p?.entries) this.settle(a.id, p, a.err, a);
      } else if (b[0] === 3) {
        const m = parseRecords(b);
        this.subs.get(m.sub)?.onRecords(m.records);
      }
    } catch (e) {
      // A frame we cannot read: lost acks or records would break the
      // resume rule, so reconnect and resume instead.
      if (e instanceof RangeError) this.dropLink("bad binary frame");
      else throw e;
    }
  }

  private settle(id: number, p: Pending, err?: SamsaError, msg?: any): void {
    this.pending.delete(id);
    if (!p.entries) {
      if (err) p.reject(err);
      else p.resolve(msg);
      this.idleCheck();
      return;
    }
    this.inflight--;
    if (err) {
      if (err.code === "unavailable" && this.o.resendOnReconnect) {
        // Temporarily unable (broker closing, storage): retry until the records' deadline.
        for (const e of p.entries) e.lastError = err;
        const again = p.entries;
        const t = setTimeout(() => {
          if (!this.retrying.delete(again)) return;
          this.queue = again.concat(this.queue);
          this.scheduleFlush();
        }, 50 + backoffDelay(2, 100, 1000, this.o.random));
        this.retrying.set(again, t);
      } else this.rejectEntries(p.entries, err);
    } else {
      const res: ProduceResult[] = msg?.results ?? [];
      p.entries.forEach((e, i) => {
        this.buffered--;
        if (e.settled) return;
        e.settled = true;
        e.resolve(res[i]);
      });
    }
    this.scheduleFlush();
    this.idleCheck();
  }

  private onHello(m: any): void {
    this.hello = m;
    this.lastRecv = Date.now();
    if (m.auth === "required") void this.authenticate(this.ws!, m.nonce ?? "");
    else this.onReady();
  }

  /**
   * Authenticates the connection ws before anything else is sent on it.
   * A refusal (or credentials the SDK cannot use) closes the client with
   * an AuthError; a timeout drops the link (and reconnects).
   */
  private async authenticate(ws: WebSocketLike, nonce: string): Promise<void> {
    try {
      if (!this.o.auth) {
        // The broker's auth cookie may have authenticated the connection:
        // the server says so right after hello, so before this pong.
        await this.rawRequest(ws, { op: "ping" });
        if (this.ws === ws && !this.identity) {
          throw new AuthError(
            "unauthorized",
            this.cookieErr ? `auth cookie refused: ${this.cookieErr}` : 'the broker requires authentication (hello auth "required"): give options.auth',
          );
        }
      } else {
        const op = await this.authOp(nonce);
        if (this.ws !== ws) return;
        this.onAuthenticated(ws, await this.rawRequest(ws, op));
      }
    } catch (e) {
      if (this.ws !== ws || e instanceof ConnectionClosedError) return; // the link dropped: onClose reconnects
      if (e instanceof TimeoutError) this.dropLink("auth timeout");
      else if (e instanceof AuthError) this.shutdown(e);
      else if (e instanceof SamsaError) this.shutdown(new AuthError(e.code, e.message));
      else this.shutdown(new AuthError("unauthorized", `authentication failed: ${(e as Error)?.message ?? e}`, e));
      return;
    }
    if (this.ws === ws) this.onReady();
  }

  /** The auth op for this connection: calls the auth function (bounded by requestTimeoutMs), signs the nonce. */
  private async authOp(nonce: string): Promise<Record<string, unknown>> {
    const a = this.o.auth!;
    let creds: Credentials = a as Credentials;
    if (typeof a === "function") {
      let t: ReturnType<typeof setTimeout> | undefined;
      try {
        creds = await Promise.race([
          a(),
          new Promise<never>((_, rej) => (t = setTimeout(() => rej(new TimeoutError("auth function: no credentials")), this.o.requestTimeoutMs))),
        ]);
      } catch (e) {
        if (e instanceof SamsaError) throw e;
        throw new AuthError("unauthorized", `auth function failed: ${(e as Error)?.message ?? e}`, e);
      } finally {
        clearTimeout(t);
      }
    }
    this.creds = creds;
    return authOp(creds, nonce);
  }

  private onAuthenticated(ws: WebSocketLike, m: any): void {
    this.identity = { user: m.user, expires: m.expires };
    clearTimeout(this.refreshTimer);
    if (typeof this.o.auth === "function" && m.expires) {
      this.refreshTimer = setTimeout(() => void this.refresh(ws), refreshDelay(this.creds, m.expires, Date.now()));
    }
  }

  /**
   * Re-authenticates the live connection with fresh credentials before
   * its token expires. On failure it tries again halfway to the expiry
   * (while more than a second is left); failing that, the server closes
   * with 4001 at the expiry and the client reconnects, calling the auth
   * function again.
   */
  private async refresh(ws: WebSocketLike): Promise<void> {
    if (this.ws !== ws || !this.ready) return;
    try {
      const op = await this.authOp(this.hello!.nonce ?? "");
      if (this.ws === ws) this.onAuthenticated(ws, await this.rawRequest(ws, op));
    } catch {
      const left = (this.identity?.expires ?? 0) - Date.now();
      if (this.ws === ws && left > 1000) this.refreshTimer = setTimeout(() => void this.refresh(ws), left / 2);
    }
  }

  private onReady(): void {
    this.ready = true;
    this.attempt = 0;
    this.lastRecv = Date.now();
    this.setState("open");
    this.connectedRes[0]();
    if (this.o.pingIntervalMs > 0) {
      this.pingTimer = setInterval(() => this.heartbeat(), Math.max(10, this.o.pingIntervalMs / 2));
    }
    for (const s of this.subs.values()) if (!s.ended) this.subscribeSub(s);
    const ws = this.readyWaiters;
    this.readyWaiters = [];
    ws.forEach((w) => w.wake(false));
    this.scheduleFlush();
  }

  private heartbeat(): void {
    if (!this.ready || this.pinging || Date.now() - this.lastRecv < this.o.pingIntervalMs) return;
    this.pinging = true;
    const ws = this.ws;
    this.request({ op: "ping" }, this.o.pingTimeoutMs).then(
      () => (this.pinging = false),
      (e) => {
        this.pinging = false;
        if (e instanceof TimeoutError && this.ws === ws) this.dropLink("ping timeout");
      },
    );
  }

  /** @internal */
  send(msg: object): boolean {
    if (!this.ready || !this.ws) return false;
    try {
      this.ws.send(JSON.stringify(msg));
      return true;
    } catch {
      return false;
    }
  }

  private whenReady(deadline: number): Promise<void> {
    if (this.ready) return Promise.resolve();
    if (this.closeErr) return Promise.reject(this.closeErr);
    return new Promise((res, rej) => {
      this.readyWaiters.push({
        deadline,
        wake: (timedOut) => (timedOut ? rej(new TimeoutError("not connected")) : this.closeErr ? rej(this.closeErr) : res()),
      });
      this.arm(deadline);
    });
  }

  /** Sends a request and resolves with its reply (waits for a connection first). */
  private async request(msg: Record<string, unknown>, timeoutMs = this.o.requestTimeoutMs): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    await this.whenReady(deadline);
    return this.rawRequest(this.ws, msg, Math.max(1, deadline - Date.now()));
  }

  /** Sends a request on ws (ready or not) and resolves with its reply. */
  private rawRequest(ws: WebSocketLike | undefined, msg: Record<string, unknown>, timeoutMs = this.o.requestTimeoutMs): Promise<any> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      const p: Pending = { resolve, reject, deadline, expire: () => reject(new TimeoutError(`${msg.op}: no reply within ${timeoutMs} ms`)) };
      try {
        if (!ws || ws !== this.ws) throw 0;
        this.pending.set(id, p);
        ws.send(JSON.stringify({ ...msg, id }));
        this.arm(deadline);
      } catch {
        this.pending.delete(id);
        reject(new ConnectionClosedError("not connected"));
      }
    });
  }

  // ---- produce ----

  /**
   * Produces one record; resolves with its partition and offset once the
   * broker acknowledged it (acks "all"). Records produced in the same tick
   * (or within lingerMs) go in one produce op per topic.
   */
  produce(topic: string, record: ProduceRecord): Promise<ProduceResult> {
    return new Promise((resolve, reject) => {
      if (this.closeErr || this.closing) return reject(this.closeErr ?? new ConnectionClosedError("client closed", 1000));
      const e: Entry = { topic, bytes: 0, resolve, reject, settled: false, deadline: 0 };
      const bin = this.o.binary && this.binaryRecord(topic, record);
      if (bin) {
        e.bin = bin;
        e.bytes = bin.length;
      } else {
        const [value, encoding] = encodeValue(record.value, this.o.jsonStrings);
        const r: Record<string, unknown> = { value };
        if (encoding !== "json") r.encoding = encoding;
        const k = record.key;
        if (k instanceof Uint8Array) {
          r.key = toBase64(k);
          r.key_encoding = "base64";
        } else if (k != null) r.key = k;
        if (record.headers) r.headers = encodeHeaders(record.headers);
        if (record.partition !== undefined) r.partition = record.partition;
        if (record.timestamp !== undefined) r.timestamp = +record.timestamp;
        e.json = JSON.stringify(r);
        e.bytes = utf8Length(e.json);
      }
      const bytes = e.bytes;
      if (bytes + 200 + topic.length > this.maxFrame()) {
        return reject(new SamsaError("too_large", `record of ${bytes} bytes exceeds the frame limit ${this.maxFrame()}`));
      }
      if (this.buffered >= this.o.maxBufferedRecords) {
        return reject(
          this.ready
            ? new SamsaError("limit", `more than ${this.o.maxBufferedRecords} records wait for acks`)
            : new ConnectionClosedError(`disconnected and ${this.o.maxBufferedRecords} records wait already`),
        );
      }
      e.deadline = Date.now() + this.o.requestTimeoutMs;
      this.buffered++;
      this.queue.push(e);
      this.arm(e.deadline);
      this.scheduleFlush();
    });
  }

  /**
   * The record as a kind 1 record, or undefined when the binary frame
   * cannot carry it (a timestamp; a partition that is not an i32; more
   * than 65535 headers or a header key over 65535 bytes; a topic that may
   * exceed 65535 bytes): it then goes as JSON.
   */
  private binaryRecord(topic: string, r: ProduceRecord): Uint8Array | undefined {
    const p = r.partition ?? -1;
    if (r.timestamp !== undefined || p !== (p | 0) || topic.length > 21845) return;
    const h = r.headers ? (Array.isArray(r.headers) ? r.headers : Object.entries(r.headers)) : [];
    const hs = h.map(([k, v]): [Uint8Array, Uint8Array | null] => [utf8(k), toBytes(v)]);
    if (hs.length > 65535 || hs.some(([k]) => k.length > 65535)) return;
    return binRecord(p, toBytes(r.key), toBytes(r.value, this.o.jsonStrings), hs);
  }

  private maxFrame(): number {
    return this.hello?.limits?.max_frame_bytes ?? 1 << 20;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const run = () => {
      this.flushScheduled = false;
      this.flush();
    };
    if (this.o.lingerMs > 0) setTimeout(run, this.o.lingerMs);
    else queueMicrotask(run);
  }

  private flush(): void {
    while (this.ready && this.inflight < this.o.maxInflight && this.queue.length) {
      // One op: records of the first record's topic and framing (JSON or binary).
      const { topic, bin } = this.queue[0];
      const head = `{"op":"produce","id":${this.nextId},"topic":${JSON.stringify(topic)},"records":[`;
      const topicBytes = utf8(topic);
      const limit = this.maxFrame() - 16;
      let size = bin ? 11 + topicBytes.length : head.length + 2;
      const batch: Entry[] = [];
      const rest: Entry[] = [];
      // Scan only up to the first record that does not fit: the rest of
      // the queue is kept as it is (no per-op pass over a long queue).
      const q = this.queue;
      let i = 0;
      for (; i < q.length; i++) {
        const e = q[i];
        if (e.settled) {
          this.buffered--;
          continue;
        }
        if (e.topic !== topic || !e.bin !== !bin) rest.push(e);
        else if (batch.length && (batch.length >= this.o.maxBatchRecords || size + e.bytes + 1 > limit)) break;
        else {
          batch.push(e);
          size += e.bytes + 1;
        }
      }
      this.queue = i < q.length ? rest.concat(q.slice(i)) : rest;
      if (!batch.length) continue;
      const id = this.nextId++;
      const p: Pending = { resolve: noop, reject: noop, entries: batch };
      this.pending.set(id, p);
      this.inflight++;
      try {
        this.ws!.send(
          bin ? produceFrame(id, topicBytes, batch.map((e) => e.bin!)) : head + batch.map((e) => e.json).join(",") + "]}",
        );
      } catch {
        // The close event puts the batch back (or fails it).
      }
    }
  }

  private rejectEntries(entries: Entry[], err: unknown): void {
    for (const e of entries) {
      this.buffered--;
      if (e.settled) continue;
      e.settled = true;
      e.reject(err);
    }
  }

  // ---- deadlines ----

  /** The sweep's granularity: how late past its deadline something may fail. */
  private sweepEvery(): number {
    return Math.max(1, Math.min(this.o.requestTimeoutMs / 4, 1000));
  }

  /** Makes sure the sweep runs by deadline (by one timer for the whole client). */
  private arm(deadline: number): void {
    if (this.sweepTimer !== undefined && this.sweepAt <= deadline) return;
    clearTimeout(this.sweepTimer);
    this.sweepAt = deadline;
    // +1: timers count whole ms on another clock than Date.now().
    this.sweepTimer = setTimeout(() => this.sweep(), Math.max(0, deadline - Date.now()) + 1);
  }

  /** Stops the sweep when nothing waits for a deadline (so an idle client holds no timer). */
  private idleCheck(): void {
    if (this.sweepTimer !== undefined && !this.buffered && !this.pending.size && !this.readyWaiters.length) {
      clearTimeout(this.sweepTimer);
      this.sweepTimer = undefined;
    }
  }

  /**
   * Fails what is overdue: produced records (TimeoutError, or the last
   * error of their op), requests (their own expiry) and waiters for the
   * connection; then arms itself for the earliest deadline left. One pass
   * over what is pending (at most maxBufferedRecords records), once per
   * deadline rather than a timer per record.
   */
  private sweep(): void {
    this.sweepTimer = undefined;
    const now = Date.now();
    let next = Infinity;
    const fired: Array<() => void> = [];
    const expire = (e: Entry): void => {
      if (e.settled) return;
      if (e.deadline > now) {
        if (e.deadline < next) next = e.deadline;
        return;
      }
      e.settled = true;
      const err = e.lastError ?? new TimeoutError(`produce to ${e.topic}: no ack within ${this.o.requestTimeoutMs} ms`);
      fired.push(() => e.reject(err));
    };
    for (const [id, p] of this.pending) {
      if (p.entries) p.entries.forEach(expire);
      else if (p.deadline === undefined) continue;
      else if (p.deadline > now) next = Math.min(next, p.deadline);
      else {
        this.pending.delete(id);
        fired.push(p.expire!);
      }
    }
    for (const batch of this.retrying.keys()) batch.forEach(expire);
    const q = this.queue;
    q.forEach(expire);
    // Overdue records leave the queue now (they no longer count as buffered).
    if (q.some((e) => e.settled)) {
      this.queue = q.filter((e) => !e.settled);
      this.buffered -= q.length - this.queue.length;
    }
    this.readyWaiters = this.readyWaiters.filter((w) => {
      if (w.deadline > now) {
        next = Math.min(next, w.deadline);
        return true;
      }
      fired.push(() => w.wake(true));
      return false;
    });
    if (next < Infinity) this.arm(Math.max(next, now + this.sweepEvery()));
    for (const f of fired) f();
  }

  // ---- subscribe ----

  /**
   * Subscribes to a topic. Iterate the result (`for await`), or pass a
   * callback (which may return a promise: the next record waits for it).
   */
  subscribe<V = unknown>(topic: string, options: SubscribeOptions = {}, onRecord?: (r: SamsaRecord<V>) => unknown): Subscription<V> {
    if (this.o.binary && !options.format) options = { ...options, format: "binary" };
    const s = new Subscription<V>(this, `s${++this.subSeq}`, topic, options, onRecord);
    if (this.closeErr || this.closing) {
      s.fail(this.closeErr ?? new ConnectionClosedError("client closed", 1000));
      return s;
    }
    this.subs.set(s.name, s);
    if (this.ready) this.subscribeSub(s);
    return s;
  }

  /** @internal (re)subscribes s on the current connection. */
  subscribeSub(s: Subscription<any>): void {
    const id = this.nextId++;
    const ws = this.ws;
    const p: Pending = {
      resolve: (m) => s.onSubscribed(m.partitions ?? []),
      reject: (e) => {
        if (!(e instanceof SamsaError) || this.ws !== ws || s.ended) return;
        if (s.started && e.code === "unavailable") {
          // Resubscribing while the broker is not ready yet: try again on this connection.
          setTimeout(() => this.ws === ws && !s.ended && this.subscribeSub(s), 200 + backoffDelay(3, 100, 2000, this.o.random));
        } else {
          this.subs.delete(s.name);
          s.fail(e);
        }
      },
    };
    // An unanswered subscribe: the link is unusable; reconnect and resubscribe.
    p.deadline = Date.now() + this.o.requestTimeoutMs;
    p.expire = () => this.ws === ws && this.dropLink("subscribe timeout");
    this.pending.set(id, p);
    if (this.send(s.subscribeOp(id))) this.arm(p.deadline);
    else this.pending.delete(id);
  }

  /** @internal */
  async unsubscribeSub(s: Subscription<any>): Promise<void> {
    s.end();
    if (this.subs.get(s.name) !== s) return;
    this.subs.delete(s.name);
    if (!this.ready) return;
    try {
      await this.request({ op: "unsubscribe", sub: s.name });
    } catch {
      // gone already (not_found) or the link dropped: either way it is over
    }
  }

  // ---- commit ----

  /**
   * Commits offsets. With a group subscription: as that member (default:
   * what it handed to the application). Standalone: {group, topic, offsets}
   * (accepted while the group has no members).
   */
  commit(target: Subscription<any> | StandaloneCommit, offsets?: CommitOffsets): Promise<void> {
    if (target instanceof Subscription) return this.commitSub(target, offsets);
    return this.request({ op: "commit", group: target.group, topic: target.topic, offsets: normalizeOffsets(target.offsets) }).then(noop);
  }

  /** @internal */
  async commitSub(s: Subscription<any>, offsets?: CommitOffsets): Promise<void> {
    if (!s.options.group) {
      throw new SamsaError("bad_request", "not a group subscription: use client.commit({group, topic, offsets})");
    }
    const deadline = Date.now() + this.o.requestTimeoutMs;
    for (;;) {
      const list = offsets ? normalizeOffsets(offsets) : [];
      if (!offsets) for (const [partition, offset] of s.delivered) if (s.assigned?.has(partition)) list.push({ partition, offset });
      if (!list.length) return;
      if (s.ended) throw new SamsaError("not_found", "subscription closed");
      try {
        await this.request({ op: "commit", sub: s.name, offsets: list }, Math.max(1, deadline - Date.now()));
        return;
      } catch (e) {
        const retry = e instanceof ConnectionClosedError ? this.o.reconnect : (e as SamsaError).code === "unavailable";
        if (!retry || Date.now() >= deadline) throw e;
        // A rebalance (or a reconnect) is in progress: retry after the next assignment.
        await s.nextAssignment(Math.min(1000, Math.max(0, deadline - Date.now())));
      }
    }
  }

  /** Round trip of a `ping` op, in ms. */
  async ping(): Promise<number> {
    const t = Date.now();
    await this.request({ op: "ping" });
    return Date.now() - t;
  }

  // ---- close ----

  /**
   * Closes the client: waits (up to requestTimeoutMs) for produced records
   * to be acknowledged while connected, ends every subscription (group
   * members leave at once), and closes the socket. Records still unacked
   * fail with ConnectionClosedError.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    const deadline = Date.now() + this.o.requestTimeoutMs;
    while (this.ready && this.buffered > 0 && Date.now() < deadline) await sleep(10);
    this.closing = true;
    for (const s of this.subs.values()) s.end();
    this.subs.clear();
    const ws = this.ws;
    if (ws) {
      const done = new Promise<void>((res) => (this.socketClosed = res));
      try {
        ws.close(1000, "client closed");
      } catch {
        /* ignore */
      }
      await Promise.race([done, sleep(1000)]);
      if (this.ws === ws) this.onClose(ws, 1000, "client closed");
    }
    this.shutdown(new ConnectionClosedError("client closed", 1000));
  }

  private shutdown(err: SamsaError): void {
    const ce = err instanceof ConnectionClosedError || err instanceof AuthError ? err : new ConnectionClosedError(err.message);
    if (this.closeErr) return;
    this.closeErr = ce;
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.refreshTimer);
    clearInterval(this.pingTimer);
    if (this.ws) this.dropLink("closed");
    this.rejectEntries(this.queue, ce);
    this.queue = [];
    for (const [batch, t] of this.retrying) {
      clearTimeout(t);
      this.rejectEntries(batch, batch[0].lastError ?? ce);
    }
    this.retrying.clear();
    for (const s of this.subs.values()) s.fail(ce);
    this.subs.clear();
    this.connectedRes[1](err);
    const ws = this.readyWaiters;
    this.readyWaiters = [];
    ws.forEach((w) => w.wake(false));
    this.idleCheck();
    this.setState("closed", err);
  }
}

function noop(): void {}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
