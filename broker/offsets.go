package broker

import (
	"fmt"

	"github.com/samsa-broker/samsa/broker/record"
)

// Special timestamps of ListOffset, as in Kafka's ListOffsets.
const (
	LatestTimestamp   int64 = -1
	EarliestTimestamp int64 = -2
	// MaxTimestamp asks for the record with the largest timestamp (the
	// first of them, by offset), with that timestamp (KIP-734).
	MaxTimestamp int64 = -3
)

// Offsets returns a partition's log start offset and high watermark. A
// filtered view answers with its source's.
func (b *Broker) Offsets(topic string, partition int32) (start, hwm int64, err error) {
	p, _, err := b.readPartition(topic, partition)
	if err != nil {
		return -1, -1, err
	}
	return p.log.StartOffset(), p.highWatermark(), nil
}

// ListOffset answers Kafka's ListOffsets for one partition: LatestTimestamp
// gives the high watermark, EarliestTimestamp the log start offset, and a
// timestamp (ms) the offset of the first record whose timestamp is at or
// after it, with that record's timestamp; MaxTimestamp the first record
// with the largest timestamp. When no record is that recent it
// returns offset -1 and timestamp -1, as Kafka does. A filtered view
// answers from its source (the offset may be of a record the view drops;
// consumers skip ahead from it).
func (b *Broker) ListOffset(topic string, partition int32, timestamp int64) (offset, ts int64, err error) {
	p, _, err := b.readPartition(topic, partition)
	if err != nil {
		return -1, -1, err
	}
	hwm := p.highWatermark()
	switch {
	case timestamp == LatestTimestamp:
		return hwm, -1, nil
	case timestamp == EarliestTimestamp:
		return p.log.StartOffset(), -1, nil
	case timestamp == MaxTimestamp:
		// The first batch holding the log's largest timestamp holds the
		// first record with it.
		if timestamp = p.log.MaxTimestamp(); timestamp < 0 {
			return -1, -1, nil
		}
	case timestamp < 0:
		return -1, -1, fmt.Errorf("%w: unsupported special timestamp %d", ErrInvalidConfig, timestamp)
	}
	raw, found, err := p.log.OffsetForTime(timestamp)
	if err != nil {
		return -1, -1, storageError(err)
	}
	if !found {
		return -1, -1, nil
	}
	batch, _, err := record.DecodeBatch(raw, 64<<20)
	if err != nil {
		return -1, -1, fmt.Errorf("%w: %v", ErrCorruptBatch, err)
	}
	if batch.BaseOffset >= hwm {
		return -1, -1, nil
	}
	for _, r := range batch.Records {
		if r.Timestamp >= timestamp && r.Offset < hwm {
			return r.Offset, r.Timestamp, nil
		}
	}
	// The batch's max timestamp qualified but no single record did (a
	// LogAppendTime batch): the batch is the answer.
	return batch.BaseOffset, batch.MaxTimestamp, nil
}

// DeleteRecords makes every record before offset unreadable and frees the
// segments that hold only such records (Kafka's DeleteRecords). offset -1
// means the high watermark. It returns the new log start offset.
func (b *Broker) DeleteRecords(topic string, partition int32, offset int64) (int64, error) {
	p, _, err := b.partition(topic, partition)
	if err != nil {
		return -1, err
	}
	hwm := p.highWatermark()
	if offset == -1 {
		offset = hwm
	}
	if offset < 0 || offset > hwm {
		return -1, fmt.Errorf("%w: offset %d of %s-%d is outside [%d, %d]", ErrOffsetOutOfRange, offset, topic, partition, p.log.StartOffset(), hwm)
	}
	if offset > p.log.StartOffset() {
		if err := p.log.DeleteBefore(offset); err != nil {
			return -1, storageError(err)
		}
	}
	return p.log.StartOffset(), nil
}
