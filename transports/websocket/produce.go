package websocket

import (
	"encoding/binary"
	"encoding/json"
	"strconv"
	"time"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker"
	"github.com/samsa-broker/samsa/broker/record"
)

// prodRec is one record to produce; partition -1 lets the server choose.
type prodRec struct {
	partition int32
	rec       record.Record
}

// ackFinish builds the reply of a produce from the partitions of each
// record and their offsets, or from an error. ok false sends nothing.
type ackFinish func(parts []int32, offsets []int64, err *protoError) (outMsg, bool)

// ackItem is one produce reply waiting its turn.
type ackItem struct {
	pp      *broker.PendingProduce
	parts   []int32 // per record
	idx     []int   // per record: its index in parts of the request
	within  []int64 // per record: its position in its partition's batch
	finish  ackFinish
	readyOK bool
	ready   outMsg
}

type jsonRecord struct {
	Key         json.RawMessage `json:"key"`
	KeyEncoding string          `json:"key_encoding"`
	Value       json.RawMessage `json:"value"`
	Encoding    string          `json:"encoding"`
	Headers     []jsonHeader    `json:"headers"`
	Partition   *int32          `json:"partition"`
	Timestamp   *int64          `json:"timestamp"`
}

type jsonHeader struct {
	Key      string          `json:"key"`
	Value    json.RawMessage `json:"value"`
	Encoding string          `json:"encoding"`
}

func (c *conn) produceJSON(req *request) {
	id := req.ID
	var acks int16
	switch req.Acks {
	case "", "all":
		acks = -1
	case "none":
		acks = 0
	default:
		c.readyAck(outMsg{kind: outText, data: errorFrame(id, "", errf(codeBadRequest, "acks must be \"all\" or \"none\""))})
		return
	}
	finish := func(parts []int32, offsets []int64, err *protoError) (outMsg, bool) {
		if err != nil {
			return outMsg{kind: outText, data: errorFrame(id, "", err)}, true
		}
		if acks == 0 {
			return outMsg{}, false
		}
		b := make([]byte, 0, 40+len(parts)*32)
		b = append(b, `{"type":"ack",`...)
		b = appendID(b, id)
		b = append(b, `"results":[`...)
		for i := range parts {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"partition":`...)
			b = strconv.AppendInt(b, int64(parts[i]), 10)
			b = append(b, `,"offset":`...)
			b = strconv.AppendInt(b, offsets[i], 10)
			b = append(b, '}')
		}
		b = append(b, "]}"...)
		return outMsg{kind: outText, data: b}, true
	}
	fail := func(e *protoError) { c.readyAck(outMsg{kind: outText, data: errorFrame(id, "", e)}) }
	if req.Topic == "" {
		fail(errf(codeBadRequest, "produce: topic is required"))
		return
	}
	var jrecs []jsonRecord
	if len(req.Records) == 0 {
		fail(errf(codeBadRequest, "produce: records are required"))
		return
	}
	if err := json.Unmarshal(req.Records, &jrecs); err != nil {
		fail(errf(codeBadRequest, "produce: records: %v", err))
		return
	}
	if len(jrecs) == 0 {
		fail(errf(codeBadRequest, "produce: records are required"))
		return
	}
	now := time.Now().UnixMilli()
	recs := make([]prodRec, len(jrecs))
	for i := range jrecs {
		jr := &jrecs[i]
		pr := &recs[i]
		pr.partition = -1
		if jr.Partition != nil {
			if *jr.Partition < 0 {
				fail(errf(codeBadRequest, "records[%d]: partition must be >= 0", i))
				return
			}
			pr.partition = *jr.Partition
		}
		venc, kenc := jr.Encoding, jr.KeyEncoding
		if venc == "" {
			venc = encJSON
		}
		if kenc == "" {
			kenc = encText
		}
		var err error
		if pr.rec.Key, err = decodeValue(jr.Key, kenc, "records["+strconv.Itoa(i)+"].key"); err != nil {
			fail(toProto(err))
			return
		}
		if pr.rec.Value, err = decodeValue(jr.Value, venc, "records["+strconv.Itoa(i)+"].value"); err != nil {
			fail(toProto(err))
			return
		}
		pr.rec.Timestamp = now
		if jr.Timestamp != nil {
			pr.rec.Timestamp = *jr.Timestamp
		}
		if len(jr.Headers) > 0 {
			pr.rec.Headers = make([]record.Header, len(jr.Headers))
			for j, h := range jr.Headers {
				henc := h.Encoding
				if henc == "" {
					henc = encText
				}
				if henc != encText && henc != encBase64 {
					fail(errf(codeBadRequest, "records[%d].headers[%d]: encoding must be text or base64", i, j))
					return
				}
				v, err := decodeValue(h.Value, henc, "records["+strconv.Itoa(i)+"].headers["+strconv.Itoa(j)+"]")
				if err != nil {
					fail(toProto(err))
					return
				}
				pr.rec.Headers[j] = record.Header{Key: h.Key, Value: v}
			}
		}
	}
	c.produce(req.Topic, acks, recs, finish)
}

func (c *conn) produceBinary(data []byte) {
	r := binReader{b: data}
	reqID := r.u32()
	if r.bad {
		c.badRun++
		c.sendText(errorFrame(nil, "", errf(codeBadRequest, "binary produce: truncated frame")))
		return
	}
	finish := func(parts []int32, offsets []int64, err *protoError) (outMsg, bool) {
		if err != nil {
			return outMsg{kind: outBinary, data: binaryAckError(reqID, err)}, true
		}
		b := make([]byte, 0, 11+12*len(parts))
		b = append(b, kindAck)
		b = binary.LittleEndian.AppendUint32(b, reqID)
		b = binary.LittleEndian.AppendUint16(b, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(parts)))
		for i := range parts {
			b = binary.LittleEndian.AppendUint32(b, uint32(parts[i]))
			b = binary.LittleEndian.AppendUint64(b, uint64(offsets[i]))
		}
		return outMsg{kind: outBinary, data: b}, true
	}
	fail := func(e *protoError) { c.readyAck(outMsg{kind: outBinary, data: binaryAckError(reqID, e)}) }
	topic := string(r.take(int(r.u16())))
	count := r.u32()
	if r.bad || uint64(count)*14 > uint64(len(r.b)) {
		fail(errf(codeBadRequest, "binary produce: truncated frame"))
		return
	}
	if count == 0 || topic == "" {
		fail(errf(codeBadRequest, "binary produce: topic and records are required"))
		return
	}
	now := time.Now().UnixMilli()
	recs := make([]prodRec, count)
	for i := range recs {
		pr := &recs[i]
		pr.partition = int32(r.u32())
		pr.rec.Key = r.nbytes()
		pr.rec.Value = r.nbytes()
		pr.rec.Timestamp = now
		if nh := int(r.u16()); nh > 0 && !r.bad {
			if nh*6 > len(r.b) {
				r.bad = true
				break
			}
			pr.rec.Headers = make([]record.Header, nh)
			for j := range pr.rec.Headers {
				k := r.take(int(r.u16()))
				pr.rec.Headers[j] = record.Header{Key: string(k), Value: r.nbytes()}
			}
		}
		if r.bad {
			break
		}
		if pr.partition < -1 {
			fail(errf(codeBadRequest, "binary produce: record %d: bad partition %d", i, pr.partition))
			return
		}
	}
	if r.bad {
		fail(errf(codeBadRequest, "binary produce: truncated frame"))
		return
	}
	if len(r.b) != 0 {
		fail(errf(codeBadRequest, "binary produce: %d trailing bytes", len(r.b)))
		return
	}
	c.produce(topic, -1, recs, finish)
}

// produce assigns partitions, encodes one batch per partition, appends and
// queues the reply in request order.
func (c *conn) produce(topic string, acks int16, recs []prodRec, finish ackFinish) {
	b := c.s.b
	if perr := c.allow(auth.ProduceTopic, topic); perr != nil {
		c.readyAckFinish(finish, perr)
		return
	}
	if _, err := b.View(topic); err == nil {
		c.readyAckFinish(finish, errf(codeBadRequest, "topic %q is a filtered view and is read-only", topic))
		return
	}
	info, err := b.AutoCreate(topic)
	if err != nil {
		c.readyAckFinish(finish, toProto(err))
		return
	}
	n := info.Partitions
	parts := make([]int32, len(recs))
	sticky := int32(-1)
	for i := range recs {
		p := recs[i].partition
		switch {
		case p >= 0:
			if p >= n {
				c.readyAckFinish(finish, errf(codeUnknownTopic, "records[%d]: topic %q has %d partitions, no partition %d", i, topic, n, p))
				return
			}
		case recs[i].rec.Key != nil:
			p = broker.KeyPartition(recs[i].rec.Key, n)
		default:
			if sticky < 0 {
				sticky = c.rr % n
				c.rr = (c.rr + 1) % n
			}
			p = sticky
		}
		parts[i] = p
	}
	// Group by partition, in order of first appearance: count, then fill
	// groups of the exact size.
	var order []int32
	var counts []int
	idxOf := make(map[int32]int, 4)
	idx := make([]int, len(recs))
	within := make([]int64, len(recs))
	for i := range recs {
		j, ok := idxOf[parts[i]]
		if !ok {
			j = len(order)
			idxOf[parts[i]] = j
			order = append(order, parts[i])
			counts = append(counts, 0)
		}
		idx[i] = j
		within[i] = int64(counts[j])
		counts[j]++
	}
	groups := make([][]record.Record, len(order))
	for j, n := range counts {
		groups[j] = make([]record.Record, 0, n)
	}
	for i := range recs {
		groups[idx[i]] = append(groups[idx[i]], recs[i].rec)
	}
	pps := make([]broker.ProducePartition, len(order))
	for j, p := range order {
		batch, err := record.AppendBatch(nil, groups[j], record.EncodeOptions{})
		if err != nil {
			c.readyAckFinish(finish, errf(codeBadRequest, "%v", err))
			return
		}
		pps[j] = broker.ProducePartition{Topic: topic, Partition: p, Records: batch}
	}
	if !c.waitSlot() {
		return
	}
	pp := b.Produce(acks, pps)
	c.pushAck(ackItem{pp: pp, parts: parts, idx: idx, within: within, finish: finish})
}

func (c *conn) readyAck(m outMsg) {
	if !c.waitSlot() {
		return
	}
	c.pushAck(ackItem{readyOK: true, ready: m})
}

func (c *conn) readyAckFinish(finish ackFinish, e *protoError) {
	m, ok := finish(nil, nil, e)
	if ok {
		c.readyAck(m)
	}
}

// waitSlot blocks while MaxInflightProduce produce requests wait for their
// acks; it reports false when the connection ended.
func (c *conn) waitSlot() bool {
	for {
		c.amu.Lock()
		if c.inflight < c.s.opts.MaxInflightProduce {
			c.inflight++
			c.amu.Unlock()
			return true
		}
		if c.slot == nil {
			c.slot = make(chan struct{}, 1)
		}
		ch := c.slot
		c.amu.Unlock()
		select {
		case <-ch:
		case <-c.ctx.Done():
			return false
		}
	}
}

func (c *conn) pushAck(it ackItem) {
	c.amu.Lock()
	c.acks = append(c.acks, it)
	if !c.acking {
		c.acking = true
		go c.ackLoop()
	}
	c.amu.Unlock()
}

// ackLoop answers produce requests in order, waiting for each one's
// durability; it exits when none is left.
func (c *conn) ackLoop() {
	for {
		c.amu.Lock()
		if len(c.acks) == 0 {
			c.acks = nil
			c.acking = false
			c.amu.Unlock()
			return
		}
		it := c.acks[0]
		c.acks[0] = ackItem{}
		c.acks = c.acks[1:]
		c.amu.Unlock()

		m, ok := it.ready, it.readyOK
		if it.pp != nil {
			res := it.pp.Wait(c.ctx)
			var perr *protoError
			for j := range res {
				if res[j].Err != nil {
					perr = toProto(res[j].Err)
					break
				}
			}
			if perr != nil {
				m, ok = it.finish(nil, nil, perr)
			} else {
				offsets := make([]int64, len(it.parts))
				for i := range offsets {
					offsets[i] = res[it.idx[i]].BaseOffset + it.within[i]
				}
				m, ok = it.finish(it.parts, offsets, nil)
			}
		}
		if ok {
			c.enqueue(m)
		}
		c.amu.Lock()
		c.inflight--
		if c.slot != nil {
			select {
			case c.slot <- struct{}{}:
			default:
			}
		}
		c.amu.Unlock()
	}
}
