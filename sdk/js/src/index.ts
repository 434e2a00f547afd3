export { connect, Client, SUBPROTOCOL } from "./client.js";
export type {
  ClientOptions,
  ConnectionState,
  ProduceRecord,
  ProduceResult,
  StandaloneCommit,
  WebSocketLike,
  WebSocketConstructor,
} from "./client.js";
export { Subscription } from "./subscription.js";
export type { SubscribeOptions, SamsaRecord, PartitionStart, From, CommitOffsets } from "./subscription.js";
export { SamsaError, ConnectionClosedError, TimeoutError, AuthError } from "./errors.js";
export { nkeyPublicKey } from "./auth.js";
export type { Credentials, AuthOption, Identity } from "./auth.js";
export type { ErrorCode } from "./errors.js";
export type { Encoding, Header, HeadersInit, Value } from "./codec.js";
export { backoffDelay } from "./backoff.js";
export { toBase64, fromBase64 } from "./codec.js";
