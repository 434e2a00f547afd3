package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/samsa-broker/samsa/broker/commitlog"
)

// ProducePartition is the records for one partition in a produce: one or
// more Kafka RecordBatch v2, byte for byte as a producer sent them.
type ProducePartition struct {
	Topic     string
	Partition int32
	Records   []byte
}

// ProduceResult is the outcome for one ProducePartition.
type ProduceResult struct {
	BaseOffset     int64
	LogAppendTime  int64 // -1: the topic uses create time
	LogStartOffset int64
	Err            error
}

// PendingProduce is a produce whose records are appended and that may still
// wait for durability. Wait returns the final results.
type PendingProduce struct {
	b       *Broker
	results []ProduceResult
	// durable are the partitions that must be fsynced before the ack.
	durable []*partition
	// resultOf maps each durable partition to the results it decides.
	resultOf [][]int
	wait     bool
}

// Produce validates and appends the batches, in order, and returns at once.
// On a topic with produce bindings the batches first go through the filter
// chain (see produceFiltered); without, they are appended as they are,
// never decoded.
// Appends on one partition happen in the order Produce is called, so a
// transport that calls Produce in request order keeps idempotent sequences
// in order while it waits for durability off its read path.
//
// acks is Kafka's: 0 (no ack), 1 or -1 (all). With flush.policy=always, an
// ack (1 or -1) waits until the records are fsynced; a single broker has no
// replicas, so acks=1 is as durable as acks=all.
func (b *Broker) Produce(acks int16, parts []ProducePartition) *PendingProduce {
	pp := &PendingProduce{b: b, results: make([]ProduceResult, len(parts)), wait: acks != 0}
	index := make(map[*partition]int)
	var woken []*partition
	// track makes p's appends part of result i: woken at once, or synced
	// before the ack.
	track := func(p *partition, i int) {
		if p.flushPolicy() != FlushAlways {
			woken = append(woken, p)
			return
		}
		j, ok := index[p]
		if !ok {
			j = len(pp.durable)
			index[p] = j
			pp.durable = append(pp.durable, p)
			pp.resultOf = append(pp.resultOf, nil)
		}
		pp.resultOf[j] = append(pp.resultOf[j], i)
	}
	for i, pr := range parts {
		res := &pp.results[i]
		res.BaseOffset, res.LogAppendTime, res.LogStartOffset = -1, -1, -1
		p, cfg, err := b.partition(pr.Topic, pr.Partition)
		if err != nil {
			if verr := b.viewError(pr.Topic); verr != nil {
				err = verr
			}
			res.Err = err
			continue
		}
		res.LogStartOffset = p.log.StartOffset()
		hdrs, err := validateBatches(pr.Records, cfg.MaxMessageBytes)
		if err != nil {
			res.Err = fmt.Errorf("%s-%d: %w", pr.Topic, pr.Partition, err)
			continue
		}
		if chain := b.produceChain(pr.Topic); chain != nil {
			// Filters bound: decode, filter, re-encode, route.
			base, extra, err := b.produceFiltered(p, pr, hdrs, chain)
			for _, xp := range extra {
				track(xp, i)
			}
			if err != nil {
				res.Err = err
				continue
			}
			res.BaseOffset = base
			track(p, i)
			continue
		}
		if err := b.reserveDisk(int64(len(pr.Records))); err != nil {
			res.Err = err
			continue
		}
		base, err := p.append(pr.Records, hdrs)
		if err != nil {
			res.Err = fmt.Errorf("%s-%d: %w", pr.Topic, pr.Partition, err)
			continue
		}
		res.BaseOffset = base
		track(p, i)
	}
	for _, p := range woken {
		p.notify()
	}
	if !pp.wait && len(pp.durable) > 0 {
		// Nobody waits for the ack, but consumers wait for the fsync.
		go pp.sync(b.ctx)
	}
	return pp
}

// Wait blocks until the appended records are durable as the topic's flush
// policy requires, and returns the results in the order of the request.
func (pp *PendingProduce) Wait(ctx context.Context) []ProduceResult {
	if pp.wait && len(pp.durable) > 0 {
		if err := pp.sync(ctx); err != nil {
			for j := range pp.durable {
				for _, i := range pp.resultOf[j] {
					if pp.results[i].Err == nil {
						pp.results[i].Err = err
					}
				}
			}
		}
	}
	return pp.results
}

func (pp *PendingProduce) sync(ctx context.Context) error {
	logs := make([]*commitlog.Log, len(pp.durable))
	for i, p := range pp.durable {
		logs[i] = p.log
	}
	err := pp.b.syncer.Sync(ctx, logs...)
	for _, p := range pp.durable {
		p.notify()
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: waiting for fsync: %v", ErrTimeout, err)
	default:
		pp.b.logger.Error("fsync failed", "err", err)
		return storageError(err)
	}
}

// validateBatches checks a producer's records before anything is appended.
func validateBatches(records []byte, maxBytes int32) ([]commitlog.BatchHeader, error) {
	if len(records) == 0 {
		return nil, fmt.Errorf("%w: no record batch", ErrCorruptBatch)
	}
	hdrs, err := commitlog.ValidateBatches(records, int(maxBytes))
	if err != nil {
		switch {
		case errors.Is(err, commitlog.ErrBatchTooLarge):
			return nil, fmt.Errorf("%w: %v", ErrBatchTooLarge, err)
		case errors.Is(err, commitlog.ErrUnsupportedMagic):
			return nil, fmt.Errorf("%w: %v", ErrUnsupportedFormat, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrCorruptBatch, err)
	}
	for _, h := range hdrs {
		if codec := h.Attributes & 0x7; codec > 4 {
			return nil, fmt.Errorf("%w: unknown compression codec %d", ErrCorruptBatch, codec)
		}
		if h.Attributes&0x10 != 0 || h.Attributes&0x20 != 0 {
			return nil, fmt.Errorf("%w: transactional and control batches are refused", ErrTransactionsUnsupported)
		}
	}
	return hdrs, nil
}

// InitProducerID gives an idempotent producer its id and epoch.
// Transactional producers are refused.
func (b *Broker) InitProducerID(transactionalID string) (int64, int16, error) {
	if transactionalID != "" {
		return -1, -1, fmt.Errorf("transactional id %q: %w", transactionalID, ErrTransactionsUnsupported)
	}
	id, err := b.producers.allocate()
	if err != nil {
		return -1, -1, err
	}
	return id, 0, nil
}
