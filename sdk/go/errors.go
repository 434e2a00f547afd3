package samsa

import (
	"errors"
	"fmt"
)

// Code is one of the stable error codes of the samsa.v1 protocol
// (PROTOCOL.md §2).
type Code string

// The protocol's error codes.
const (
	CodeBadRequest   Code = "bad_request"
	CodeUnknownOp    Code = "unknown_op"
	CodeUnknownTopic Code = "unknown_topic"
	CodeNotFound     Code = "not_found"
	CodeTooLarge     Code = "too_large"
	CodeRejected     Code = "rejected"
	CodeForbidden    Code = "forbidden"
	CodeUnauthorized Code = "unauthorized"
	CodeLimit        Code = "limit"
	CodeUnavailable  Code = "unavailable"
	CodeInternal     Code = "internal"
)

// binaryCodes maps the u16 codes of binary acks to codes.
var binaryCodes = [...]Code{
	1: CodeBadRequest, 2: CodeUnknownOp, 3: CodeUnknownTopic, 4: CodeNotFound,
	5: CodeTooLarge, 6: CodeRejected, 7: CodeForbidden, 8: CodeUnauthorized,
	9: CodeLimit, 10: CodeUnavailable, 11: CodeInternal,
}

func codeOfBinary(n uint16) Code {
	if int(n) < len(binaryCodes) && binaryCodes[n] != "" {
		return binaryCodes[n]
	}
	return Code(fmt.Sprintf("code_%d", n))
}

// Error is an error the server reported. Compare with errors.Is against the
// Err* sentinels below (they match by Code) or inspect Code.
type Error struct {
	Code    Code
	Message string
	// Sub is the subscription the error ended, if any.
	Sub string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "samsa: " + string(e.Code)
	}
	return "samsa: " + string(e.Code) + ": " + e.Message
}

// Is reports whether target is an *Error with the same Code (so that
// errors.Is(err, samsa.ErrUnknownTopic) works).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == "" && t.Sub == ""
}

// Temporary reports whether retrying the same request later may succeed.
func (e *Error) Temporary() bool { return e.Code == CodeUnavailable || e.Code == CodeLimit }

// Sentinels for errors.Is, one per protocol code.
var (
	ErrBadRequest   = &Error{Code: CodeBadRequest}
	ErrUnknownOp    = &Error{Code: CodeUnknownOp}
	ErrUnknownTopic = &Error{Code: CodeUnknownTopic}
	ErrNotFound     = &Error{Code: CodeNotFound}
	ErrTooLarge     = &Error{Code: CodeTooLarge}
	ErrRejected     = &Error{Code: CodeRejected}
	ErrForbidden    = &Error{Code: CodeForbidden}
	ErrUnauthorized = &Error{Code: CodeUnauthorized}
	ErrLimit        = &Error{Code: CodeLimit}
	ErrUnavailable  = &Error{Code: CodeUnavailable}
	ErrInternal     = &Error{Code: CodeInternal}
)

// Errors of the client itself.
var (
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("samsa: client closed")
	// ErrDisconnected: the connection was lost while the request was in
	// flight. For a produce this means the outcome is unknown: the
	// records may or may not have been appended. Retrying may duplicate.
	ErrDisconnected = errors.New("samsa: connection lost with the request in flight")
	// ErrSubscriptionClosed: Next on a subscription that was closed.
	ErrSubscriptionClosed = errors.New("samsa: subscription closed")
)

// Close codes of the server (PROTOCOL.md §8).
const (
	// ClosePolicy (1008): the server refused the connection (Origin,
	// limits).
	ClosePolicy = 1008
	// CloseUnauthorized (4001): the token expired or was revoked, or the
	// connection did not authenticate in time.
	CloseUnauthorized = 4001
)

// CloseError is the close code and reason the server ended a connection
// with. Codes 1008 (policy) and 4001 (unauthorized) are permanent: the
// client stops reconnecting and every call fails with the CloseError;
// except that with Options.CredentialsFunc a 4001 reconnects with fresh
// credentials.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("samsa: connection closed by the server: %d %s", e.Code, e.Reason)
}

// Permanent reports whether reconnecting cannot help (1008, 4001).
func (e *CloseError) Permanent() bool {
	return e.Code == ClosePolicy || e.Code == CloseUnauthorized
}

// IsRetriable reports whether err is transient: a lost connection, an
// unavailable broker or a per-connection limit.
func IsRetriable(err error) bool {
	if errors.Is(err, ErrDisconnected) {
		return true
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Temporary()
	}
	var ce *CloseError
	if errors.As(err, &ce) {
		return !ce.Permanent()
	}
	return false
}
