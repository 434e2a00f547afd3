// Package filtertest runs samsa filter handlers on the host, so that a
// filter's logic is unit-tested with plain `go test`, no wasm needed.
//
// Run and RunBatch do what the broker and the wasm glue do: they make a
// fresh instance with the parameters (calling Init if the handler has one),
// encode the batch in the ABI's wire format, decode it, call the handler,
// check that it returned one decision per record, and encode and decode the
// decisions. So a handler that passes here sees exactly the same batches
// and produces exactly the same bytes inside the module.
//
//	func TestDropsEmpty(t *testing.T) {
//		ds := filtertest.Run(myHandler, nil, filtertest.Records("a", "")...)
//		if ds[1].Action != filter.ActionDrop { t.Fatal(ds) }
//	}
package filtertest

import (
	"fmt"

	filter "github.com/samsa-broker/samsa/sdk/filter/go"
)

// Topic and Partition are the topic and partition of the batches Run makes.
const (
	Topic     = "test"
	Partition = 0
)

// Timestamp is the timestamp Records gives its records (2026-01-01T00:00:00Z).
const Timestamp int64 = 1767225600000

// Run runs h with params on one batch of records from topic Topic and
// returns its decisions. It panics if the handler fails (Init or Filter
// returns an error or panics, or the decision count is wrong); use
// RunBatch to test failures.
func Run(h filter.Handler, params []byte, records ...filter.Record) []filter.Decision {
	ds, err := RunBatch(h, params, filter.Batch{Topic: Topic, Partition: Partition, Records: records})
	if err != nil {
		panic(fmt.Sprintf("filtertest.Run: %v", err))
	}
	return ds
}

// RunBatch runs h with params on b, the way the broker does, and returns
// its decisions or the error that would make the call fail.
func RunBatch(h filter.Handler, params []byte, b filter.Batch) ([]filter.Decision, error) {
	inst, err := filter.NewInstance(h, params)
	if err != nil {
		return nil, err
	}
	out, err := inst.Process(filter.EncodeBatch(&b))
	if err != nil {
		return nil, err
	}
	return filter.DecodeDecisions(out)
}

// Records makes one record per value, with offsets 0, 1, 2 ... (as on the
// produce path), timestamp Timestamp, no key and no headers.
func Records(values ...string) []filter.Record {
	rs := make([]filter.Record, len(values))
	for i, v := range values {
		rs[i] = filter.Record{Offset: int64(i), Timestamp: Timestamp, Value: []byte(v)}
	}
	return rs
}
