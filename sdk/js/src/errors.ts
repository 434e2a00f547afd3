/**
 * Stable error codes of samsa.v1 (PROTOCOL.md §2), plus the SDK's own
 * "connection_closed" and "timeout".
 */
export type ErrorCode =
  | "bad_request"
  | "unknown_op"
  | "unknown_topic"
  | "not_found"
  | "too_large"
  | "rejected"
  | "forbidden"
  | "unauthorized"
  | "limit"
  | "unavailable"
  | "internal"
  | "connection_closed"
  | "timeout"
  | (string & {});

/** Every error the SDK raises is a SamsaError; `code` is stable. */
export class SamsaError extends Error {
  readonly code: ErrorCode;
  /** The subscription an unsolicited server error was about. */
  readonly sub?: string;
  constructor(code: ErrorCode, message: string, sub?: string) {
    super(message);
    this.name = "SamsaError";
    this.code = code;
    if (sub !== undefined) this.sub = sub;
  }
}

/**
 * The connection closed (or could not be opened) and the operation cannot
 * complete on it: the client was closed, reconnect is off, the server
 * closed with 1008 (policy), or a bounded queue of the SDK is full while
 * disconnected.
 */
export class ConnectionClosedError extends SamsaError {
  /** WebSocket close code (1006 when the link failed without a close frame). */
  readonly closeCode: number;
  readonly reason: string;
  constructor(message: string, closeCode = 1006, reason = "") {
    super("connection_closed", message);
    this.name = "ConnectionClosedError";
    this.closeCode = closeCode;
    this.reason = reason;
  }
}

/** A request got no reply in time. Its outcome is unknown. */
export class TimeoutError extends SamsaError {
  constructor(message: string) {
    super("timeout", message);
    this.name = "TimeoutError";
  }
}

/**
 * Authentication failed (PROTOCOL.md §9); the client is closed. `code` is
 * the server's: `unauthorized` (bad signature, unknown issuer, expired or
 * revoked token, the wrong kind of token, no credentials for a broker that
 * requires them, the server closed the connection with 4001) or
 * `forbidden` (credentials of another user than the auth cookie's); or `unauthorized` for
 * credentials the SDK cannot use (a malformed seed, an auth function that
 * threw, no Ed25519 in this runtime's WebCrypto).
 */
export class AuthError extends SamsaError {
  /** What the auth function threw, when it threw. */
  readonly cause?: unknown;
  constructor(code: ErrorCode, message: string, cause?: unknown) {
    super(code, message);
    this.name = "AuthError";
    if (cause !== undefined) this.cause = cause;
  }
}
