import { decodeHeaders, decodeValue, type Encoding, type Header } from "./codec.js";
import { SamsaError } from "./errors.js";

/** Where a subscription starts (PROTOCOL.md §4 subscribe `from`). */
export type From =
  | "earliest"
  | "latest"
  | { offset: number }
  | { offsets: Record<number, number> }
  | { timestamp: number | Date };

export interface SubscribeOptions {
  /** Default "latest". */
  from?: From;
  /** Partitions to read; default all. Not with `group`. */
  partitions?: number[];
  /** Join this consumer group (range assignor; commit with commit()). */
  group?: string;
  /** A deployed consume filter with its parameters. */
  filter?: { name: string; params?: unknown };
  /**
   * The credit window in records (default 1000): at most this many records
   * are granted to the server and buffered locally at once. The SDK tops the
   * credit up as the application consumes records.
   */
  credit?: number;
  /** Delivery encoding of values (default "auto"). */
  encoding?: "auto" | Encoding;
  /** Delivery encoding of keys (default "auto"). */
  keyEncoding?: "auto" | Encoding;
  /**
   * "binary": deliveries come as binary frames (PROTOCOL.md §6) and every
   * key, value and header value is a Uint8Array (or null), whatever
   * `encoding`; "json" (default unless the client has `binary: true`):
   * JSON deliveries decoded by their encoding.
   */
  format?: "json" | "binary";
  sessionTimeoutMs?: number;
  /** Group: called with the partitions (and start offsets) on every assignment. */
  onAssigned?: (partitions: PartitionStart[], generation: number) => void;
  /** Group: called with the partitions taken away before a rebalance. */
  onRevoked?: (partitions: number[]) => void;
  /** The server moved a partition's next offset (retention deleted records). */
  onReset?: (partition: number, offset: number) => void;
  /** Callback form: called when the subscription ends with an error. */
  onError?: (err: SamsaError) => void;
}

export interface PartitionStart {
  partition: number;
  offset: number;
  high_watermark?: number;
}

/** A delivered record. */
export interface SamsaRecord<V = unknown> {
  topic: string;
  partition: number;
  offset: number;
  /** Unix ms. */
  timestamp: number;
  /** text → string, base64 and binary → Uint8Array, json → the value; null when the key is null. */
  key: unknown;
  /**
   * json → the parsed value, text → string, base64 and binary → Uint8Array
   * (the record's bytes); null is a Kafka null.
   */
  value: V;
  /** The encoding the value was delivered in; "binary" for binary deliveries (format "binary"). */
  encoding: Encoding | "binary";
  headers: Header[];
}

/** What a Subscription needs from its client. @internal */
export interface SubHost {
  send(msg: object): boolean;
  subscribeSub(s: Subscription): void;
  unsubscribeSub(s: Subscription): Promise<void>;
  commitSub(s: Subscription, offsets?: CommitOffsets): Promise<void>;
}

export type CommitOffsets = Record<number, number> | Array<{ partition: number; offset: number; metadata?: string }>;

interface RawRecord {
  partition: number;
  offset: number;
  timestamp: number;
  key?: unknown;
  key_encoding?: string;
  value?: unknown;
  encoding?: string;
  headers?: unknown;
}

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * A subscription: an async iterable of records (or, in the callback form,
 * a handle to close it). Survives reconnects: it resubscribes from the next
 * offset of every partition it has seen, so the application sees no
 * duplicates and no gaps.
 */
export class Subscription<V = unknown> implements AsyncIterable<SamsaRecord<V>> {
  readonly topic: string;
  /** The subscription's name on the connection (`sub`). */
  readonly name: string;
  readonly options: SubscribeOptions;
  /** Resolves with the start offsets of the first `subscribed` reply. */
  readonly ready: Promise<PartitionStart[]>;
  /** Resolves when the subscription ends cleanly, rejects with its error. */
  readonly closed: Promise<void>;

  /** @internal next offset to receive, per partition (resume + dedupe). */
  readonly next = new Map<number, number>();
  /** @internal next offset after the last record handed to the application. */
  readonly delivered = new Map<number, number>();
  /** @internal partitions assigned (group), null otherwise. */
  assigned: Set<number> | null = null;
  /** @internal credit the server holds for us. */
  outstanding = 0;
  /** @internal true while subscribed on the current connection. */
  active = false;
  /** @internal true once a subscribe succeeded. */
  started = false;
  /** @internal true once the subscription is over. */
  ended = false;
  /** @internal */
  readonly window: number;

  private readonly host: SubHost;
  private queue: SamsaRecord<V>[] = [];
  private waiter?: () => void;
  private error?: SamsaError;
  private readyRes!: [(p: PartitionStart[]) => void, (e: unknown) => void];
  private closedRes!: [() => void, (e: unknown) => void];
  private assignWaiters: Array<() => void> = [];

  /** @internal */
  constructor(host: SubHost, name: string, topic: string, options: SubscribeOptions, onRecord?: (r: SamsaRecord<V>) => unknown) {
    this.host = host;
    this.name = name;
    this.topic = topic;
    this.options = options;
    this.window = Math.max(1, Math.min(options.credit ?? 1000, 2 ** 31 - 1));
    if (options.group) this.assigned = new Set();
    this.ready = new Promise((a, b) => (this.readyRes = [a, b]));
    this.closed = new Promise((a, b) => (this.closedRes = [a, b]));
    this.ready.catch(noop);
    this.closed.catch(noop);
    if (onRecord) void this.pump(onRecord);
  }

  /** Group subscriptions: the partitions currently assigned. */
  get assignment(): number[] {
    return this.assigned ? [...this.assigned].sort((a, b) => a - b) : [];
  }

  /** Records received and not yet handed to the application. */
  get buffered(): number {
    return this.queue.length;
  }

  /**
   * Commits offsets as this group member (Kafka semantics: the next offset
   * to read). Default: for every assigned partition, the offset after the
   * last record handed to the application.
   */
  commit(offsets?: CommitOffsets): Promise<void> {
    return this.host.commitSub(this, offsets);
  }

  /** Unsubscribes (a group member leaves its group). Idempotent. */
  async close(): Promise<void> {
    if (this.ended) return;
    this.end();
    await this.host.unsubscribeSub(this);
  }

  [Symbol.asyncIterator](): AsyncIterator<SamsaRecord<V>> {
    return {
      next: () => this.pull(),
      return: async () => {
        await this.close();
        return DONE;
      },
    };
  }

  private async pull(): Promise<IteratorResult<SamsaRecord<V>>> {
    for (;;) {
      const r = this.queue.shift();
      if (r) {
        if (!((this.delivered.get(r.partition) ?? -1) > r.offset)) this.delivered.set(r.partition, r.offset + 1);
        this.grant();
        return { done: false, value: r };
      }
      if (this.ended) {
        if (this.error) {
          const e = this.error;
          this.error = undefined;
          throw e;
        }
        return DONE;
      }
      await new Promise<void>((res) => (this.waiter = res));
    }
  }

  private async pump(cb: (r: SamsaRecord<V>) => unknown): Promise<void> {
    try {
      for (;;) {
        const r = await this.pull();
        if (r.done) return;
        await cb(r.value);
      }
    } catch (e) {
      const err = e instanceof SamsaError ? e : new SamsaError("internal", String((e as Error)?.message ?? e));
      if (this.options.onError) this.options.onError(err);
      else if (!(e instanceof SamsaError)) {
        // An exception of the application's callback: end the subscription.
        this.fail(err);
        void this.host.unsubscribeSub(this);
      }
    }
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** @internal the subscribe op for the current connection. */
  subscribeOp(id: number): object {
    const o = this.options;
    let from: From = o.from ?? "latest";
    if (this.next.size) {
      const offsets: Record<string, number> = {};
      for (const [p, off] of this.next) offsets[p] = off;
      from = { offsets };
    } else if (typeof from === "object" && from && "timestamp" in from) {
      from = { timestamp: +(from as { timestamp: number | Date }).timestamp };
    }
    this.outstanding = Math.max(1, this.window - this.queue.length);
    const op: Record<string, unknown> = { op: "subscribe", id, sub: this.name, topic: this.topic, from, credit: this.outstanding };
    if (o.partitions) op.partitions = o.partitions;
    if (o.group) op.group = o.group;
    if (o.filter) op.filter = o.filter;
    if (o.encoding) op.encoding = o.encoding;
    if (o.keyEncoding) op.key_encoding = o.keyEncoding;
    if (o.format) op.format = o.format;
    if (o.sessionTimeoutMs) op.session_timeout_ms = o.sessionTimeoutMs;
    return op;
  }

  /** @internal */
  onSubscribed(parts: PartitionStart[]): void {
    this.active = this.started = true;
    for (const p of parts ?? []) {
      // Take the server's start when it jumps ahead (retention); when it is
      // behind what we have seen, onRecords drops the repeats.
      const cur = this.next.get(p.partition);
      if (cur === undefined || p.offset > cur) this.next.set(p.partition, p.offset);
    }
    this.readyRes[0](parts ?? []);
  }

  /** @internal */
  onAssigned(parts: PartitionStart[], generation: number): void {
    this.assigned = new Set(parts.map((p) => p.partition));
    for (const p of parts) {
      const cur = this.next.get(p.partition);
      // Someone committed past us: jump. Behind us: the server re-sends what
      // we had; onRecords drops it.
      if (cur === undefined || p.offset > cur) this.next.set(p.partition, p.offset);
      // Never commit below where the group already is.
      if ((this.delivered.get(p.partition) ?? Infinity) < p.offset) this.delivered.delete(p.partition);
    }
    this.options.onAssigned?.(parts, generation);
    const ws = this.assignWaiters;
    this.assignWaiters = [];
    ws.forEach((f) => f());
  }

  /** @internal */
  onRevoked(parts: number[]): void {
    for (const p of parts) this.assigned?.delete(p);
    this.options.onRevoked?.(parts);
  }

  /** @internal */
  onReset(partition: number, offset: number): void {
    this.next.set(partition, offset);
    this.options.onReset?.(partition, offset);
  }

  /** @internal resolves at the next `assigned` (or after ms). */
  nextAssignment(ms: number): Promise<void> {
    return new Promise((res) => {
      const t = setTimeout(res, ms);
      this.assignWaiters.push(() => {
        clearTimeout(t);
        res();
      });
    });
  }

  /** @internal a `records` message (JSON), or the records of a binary one. */
  onRecords(recs: RawRecord[]): void {
    if (this.ended) return;
    for (const r of recs) {
      this.outstanding--;
      const nx = this.next.get(r.partition);
      if (nx !== undefined && r.offset < nx) continue; // seen before a reconnect/rebalance
      this.next.set(r.partition, r.offset + 1);
      this.queue.push({
        topic: this.topic,
        partition: r.partition,
        offset: r.offset,
        timestamp: r.timestamp,
        key: decodeValue(r.key, r.key_encoding),
        value: decodeValue(r.value, r.encoding) as V,
        encoding: (r.encoding ?? "json") as Encoding | "binary",
        headers: decodeHeaders(r.headers),
      });
    }
    this.grant();
    this.wake();
  }

  /**
   * @internal Tops the server's credit up to the window once at least half
   * of it is free: outstanding + buffered never exceeds the window.
   */
  grant(): void {
    const want = this.window - this.outstanding - this.queue.length;
    if (this.active && !this.ended && want > 0 && want >= this.window / 2) {
      if (this.host.send({ op: "credit", sub: this.name, records: want })) this.outstanding += want;
    }
  }

  /** @internal the connection dropped: resubscribe later. */
  onDisconnect(): void {
    this.active = false;
    this.outstanding = 0;
  }

  /** @internal ends the subscription with an error. */
  fail(e: SamsaError): void {
    if (this.ended) return;
    this.error = e;
    this.readyRes[1](e);
    this.closedRes[1](e);
    this.end();
  }

  /** @internal ends the subscription (records buffered are still delivered). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.active = false;
    this.readyRes[1](new SamsaError("not_found", "subscription closed"));
    this.closedRes[0]();
    this.wake();
  }
}

function noop(): void {}
