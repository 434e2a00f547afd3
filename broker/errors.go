package broker

import "errors"

// Errors returned by the Broker API. Transports map them to their own error
// codes (transports/kafka maps them to Kafka error codes); they are always
// wrapped with context, so match them with errors.Is.
var (
	ErrUnknownTopic            = errors.New("unknown topic or partition")
	ErrTopicExists             = errors.New("topic already exists")
	ErrInvalidTopic            = errors.New("invalid topic name")
	ErrInvalidPartitions       = errors.New("invalid partition count")
	ErrInvalidConfig           = errors.New("invalid config")
	ErrOffsetOutOfRange        = errors.New("offset out of range")
	ErrCorruptBatch            = errors.New("corrupt record batch")
	ErrBatchTooLarge           = errors.New("record batch too large")
	ErrUnsupportedFormat       = errors.New("unsupported record batch format")
	ErrOutOfOrderSequence      = errors.New("out of order sequence number")
	ErrInvalidProducerEpoch    = errors.New("invalid producer epoch")
	ErrTransactionsUnsupported = errors.New("transactions are not supported")
	ErrStorage                 = errors.New("storage error")
	ErrDiskFull                = errors.New("disk full: max_disk_bytes reached")
	ErrClosed                  = errors.New("broker closed")
	ErrTimeout                 = errors.New("request timed out")

	// ErrFiltersDisabled: the broker runs without a Wasm host.
	ErrFiltersDisabled = errors.New("filters are disabled")
	// ErrUnknownBinding: no binding has that id.
	ErrUnknownBinding = errors.New("unknown binding")
	// ErrFilterInUse: a module cannot be removed while it is bound.
	ErrFilterInUse = errors.New("filter is in use")
	// ErrFilterRejected: a produce filter rejected the records (or failed
	// under on_error reject). The error is a *FilterError with the
	// guest's message.
	ErrFilterRejected = errors.New("rejected by filter")
)
