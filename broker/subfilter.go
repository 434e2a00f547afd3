package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/samsa-broker/samsa/broker/record"
	"github.com/samsa-broker/samsa/wasm"
)

// ErrUnknownFilter: no filter module has that name.
var ErrUnknownFilter = errors.New("unknown filter")

// subFilters keeps the instance pools of per-subscription consume filters
// (WebSocket subscriptions with a filter), one per filter version and
// parameters, shared by every subscription that asks for the same, and
// closed after a while unused.
type subFilters struct {
	mu    sync.Mutex
	pools map[subFilterKey]*subFilterPool
}

type subFilterKey struct {
	name    string
	version int
	params  string
}

type subFilterPool struct {
	pool     *wasm.Pool
	lastUsed time.Time
}

// subFilterIdle is how long an unused subscription filter pool is kept.
const subFilterIdle = 2 * time.Minute

// FilterRecords runs the latest version of the deployed filter name, with
// params, on recs (the records of one batch of topic/partition, in offset
// order) on the consume path, and returns the records to deliver: dropped
// ones left out, rewritten ones with their new key, value and headers and
// their source offsets. With no records it only checks that the filter
// exists. Errors wrap ErrUnknownFilter or ErrFiltersDisabled, or
// wasm.ErrFilterFailed for a failure of the filter.
func (b *Broker) FilterRecords(ctx context.Context, name string, params json.RawMessage, topic string, partition int32, recs []record.Record) ([]record.Record, error) {
	host := b.opts.Filters
	if host == nil {
		return nil, ErrFiltersDisabled
	}
	versions, err := host.Versions(name)
	if err != nil || len(versions) == 0 {
		return nil, fmt.Errorf("filter %q: %w", name, ErrUnknownFilter)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	pool, err := b.subFilterPool(ctx, name, versions[len(versions)-1].Version, params)
	if err != nil {
		return nil, err
	}
	in := make([]wasm.Record, len(recs))
	for i, r := range recs {
		in[i] = wasm.Record{Offset: r.Offset, Timestamp: r.Timestamp, Key: r.Key, Value: r.Value, Headers: toWasmHeaders(r.Headers)}
	}
	decs, logs, err := pool.Run(ctx, wasm.ConsumePath, topic, partition, in)
	if len(logs) > 0 {
		b.flog.enqueueSub(name, versions[len(versions)-1].Version, logs)
	}
	if err != nil {
		return nil, err
	}
	out := recs[:0:0]
	for i, d := range decs {
		r := recs[i]
		switch d.Action {
		case wasm.Drop:
			continue
		case wasm.Rewrite:
			r.Key, r.Value, r.Headers = d.Key, d.Value, fromWasmHeaders(d.Headers)
		}
		out = append(out, r)
	}
	return out, nil
}

func (b *Broker) subFilterPool(ctx context.Context, name string, version int, params json.RawMessage) (*wasm.Pool, error) {
	key := subFilterKey{name: name, version: version, params: string(params)}
	now := time.Now()
	b.subs.mu.Lock()
	defer b.subs.mu.Unlock()
	if b.subs.pools == nil {
		b.subs.pools = make(map[subFilterKey]*subFilterPool)
	}
	for k, p := range b.subs.pools {
		if now.Sub(p.lastUsed) > subFilterIdle {
			delete(b.subs.pools, k)
			go p.pool.Close() // waits for runs still in flight
		}
	}
	if p, ok := b.subs.pools[key]; ok {
		p.lastUsed = now
		return p.pool, nil
	}
	pool, err := b.opts.Filters.NewPool(ctx, name, version, params, wasm.Limits{})
	if err != nil {
		if errors.Is(err, wasm.ErrUnknownModule) {
			return nil, fmt.Errorf("filter %q: %w", name, ErrUnknownFilter)
		}
		return nil, err
	}
	b.subs.pools[key] = &subFilterPool{pool: pool, lastUsed: now}
	return pool, nil
}

func (b *Broker) closeSubFilters() {
	b.subs.mu.Lock()
	defer b.subs.mu.Unlock()
	for k, p := range b.subs.pools {
		p.pool.Close()
		delete(b.subs.pools, k)
	}
}

func toWasmHeaders(hs []record.Header) []wasm.Header {
	if len(hs) == 0 {
		return nil
	}
	out := make([]wasm.Header, len(hs))
	for i, h := range hs {
		out[i] = wasm.Header{Key: h.Key, Value: h.Value}
	}
	return out
}

func fromWasmHeaders(hs []wasm.Header) []record.Header {
	if len(hs) == 0 {
		return nil
	}
	out := make([]record.Header, len(hs))
	for i, h := range hs {
		out[i] = record.Header{Key: h.Key, Value: h.Value}
	}
	return out
}
