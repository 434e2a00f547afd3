package broker

import (
	"sort"

	"github.com/samsa-broker/samsa/broker/group"
)

// PartitionLag is how far a group's committed offset trails a partition's
// high watermark.
type PartitionLag struct {
	Topic         string
	Partition     int32
	Committed     int64 // -1 when nothing is committed
	HighWatermark int64
	// Lag is HighWatermark - Committed, or HighWatermark - LogStartOffset
	// when nothing is committed (everything readable is unconsumed).
	Lag int64
}

// GroupLag returns the lag of every partition a group has committed
// offsets for, sorted by topic and partition. Partitions of topics that no
// longer exist are left out.
func (b *Broker) GroupLag(groupID string) []PartitionLag {
	committed := b.groups.CommittedOffsets(groupID)
	out := make([]PartitionLag, 0, len(committed))
	for tp, off := range committed {
		start, hwm, err := b.Offsets(tp.Topic, tp.Partition)
		if err != nil {
			continue
		}
		pl := PartitionLag{Topic: tp.Topic, Partition: tp.Partition, Committed: off, HighWatermark: hwm}
		switch {
		case off < 0:
			pl.Lag = hwm - start
		default:
			pl.Lag = max(hwm-off, 0)
		}
		out = append(out, pl)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// GroupStats lists every group's state, member count and generation.
func (b *Broker) GroupStats() []group.GroupStats { return b.groups.Stats() }
