package kafka

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/samsa-broker/samsa/broker"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func apiVersionsReq(version int16) *kmsg.ApiVersionsRequest {
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = version
	req.ClientSoftwareName = "samsa-test"
	req.ClientSoftwareVersion = "1.0"
	return req
}

// TestApiVersionsHeader checks the exact bytes: the ApiVersions response
// header is the correlation id alone, even for flexible versions.
func TestApiVersionsHeader(t *testing.T) {
	e := startServer(t)
	for v := int16(0); v <= 5; v++ {
		rc := e.dial(t)
		rc.send(apiVersionsReq(v), 0x01020304)
		corr, body, err := rc.readFrame()
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if corr != 0x01020304 {
			t.Fatalf("v%d: correlation id %#x", v, corr)
		}
		// Body starts with the error code, then the key array length.
		if body[0] != 0 || body[1] != 0 {
			t.Fatalf("v%d: error code bytes % x", v, body[:2])
		}
		n := len(apiVersionsResponse(0, 0, false).ApiKeys) // auth off: no SASL APIs
		if v >= 3 {
			if body[2] != byte(n+1) { // compact array length
				t.Fatalf("v%d: array length byte %d, want %d (tag byte in the header?)", v, body[2], n+1)
			}
		} else if got := binary.BigEndian.Uint32(body[2:]); got != uint32(n) {
			t.Fatalf("v%d: array length %d, want %d", v, got, n)
		}
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version = v
		if err := resp.ReadFrom(body); err != nil {
			t.Fatalf("v%d: decode: %v", v, err)
		}
		keys := map[int16][2]int16{}
		for _, k := range resp.ApiKeys {
			keys[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
		}
		for key, want := range map[int16][2]int16{0: {0, 13}, 1: {0, 18}, 3: {0, 13}, 18: {0, 5}, 19: {0, 7}} {
			if keys[key] != want {
				t.Fatalf("v%d: %s versions %v, want %v", v, keyName(key), keys[key], want)
			}
		}
		if _, ok := keys[29]; ok {
			t.Fatalf("DescribeAcls advertised, but it is not implemented")
		}
		if keys[10] != [2]int16{0, 6} || keys[11] != [2]int16{0, 9} {
			t.Fatalf("v%d: group APIs advertised as %v and %v", v, keys[10], keys[11])
		}
	}
}

// TestUnsupportedVersions: an error response, never a dropped connection.
func TestUnsupportedVersions(t *testing.T) {
	e := startServer(t)
	rc := e.dial(t)
	checkUsable := func(corr int32) {
		t.Helper()
		rc.send(apiVersionsReq(3), corr)
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version = 3
		rc.recv(corr, resp)
		if resp.ErrorCode != 0 || len(resp.ApiKeys) != len(apiVersionsResponse(0, 0, false).ApiKeys) {
			t.Fatalf("connection not usable after an unsupported version: %+v", resp)
		}
	}

	tests := []struct {
		name    string
		frame   []byte
		corr    int32
		check   func(body []byte)
		flexHdr bool
	}{
		{
			name: "ApiVersions v99 answers a v0 body with error 35 and the key list",
			frame: func() []byte {
				req := apiVersionsReq(3)
				b := frameRequest(req, 11)
				binary.BigEndian.PutUint16(b[6:], 99)
				return b
			}(),
			corr: 11,
			check: func(body []byte) {
				resp := kmsg.NewPtrApiVersionsResponse()
				resp.Version = 0
				if err := resp.ReadFrom(body); err != nil {
					t.Fatal(err)
				}
				if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) != len(apiVersionsResponse(0, 0, false).ApiKeys) {
					t.Fatalf("ApiVersions v99: %+v", resp)
				}
			},
		},
		{
			name: "Produce v14",
			frame: func() []byte {
				b := frameRequest(produceReq(13, -1, "x", 0, nil), 12)
				binary.BigEndian.PutUint16(b[6:], 14)
				return b
			}(),
			corr:    12,
			flexHdr: true,
		},
		{
			name: "Metadata v20",
			frame: func() []byte {
				b := frameRequest(metadataReq(13, "x"), 13)
				binary.BigEndian.PutUint16(b[6:], 20)
				return b
			}(),
			corr:    13,
			flexHdr: true,
			check: func(body []byte) {
				resp := kmsg.NewPtrMetadataResponse()
				resp.Version = 13
				if err := resp.ReadFrom(body); err != nil {
					t.Fatal(err)
				}
				if resp.ErrorCode != kerr.UnsupportedVersion.Code {
					t.Fatalf("Metadata v20: error %d", resp.ErrorCode)
				}
			},
		},
		{
			name:  "DescribeAcls (not implemented) answers UNSUPPORTED_VERSION",
			frame: frameRequest(&kmsg.DescribeACLsRequest{Version: 1}, 14),
			corr:  14,
			check: func(body []byte) {
				resp := kmsg.NewPtrDescribeACLsResponse()
				resp.Version = 1
				if err := resp.ReadFrom(body); err != nil {
					t.Fatal(err)
				}
				if resp.ErrorCode != kerr.UnsupportedVersion.Code {
					t.Fatalf("DescribeAcls: error %d", resp.ErrorCode)
				}
			},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc.write(tc.frame)
			corr, body, err := rc.readFrame()
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			if corr != tc.corr {
				t.Fatalf("correlation id %d, want %d", corr, tc.corr)
			}
			if tc.flexHdr {
				if body[0] != 0 {
					t.Fatalf("flexible header tag byte %d", body[0])
				}
				body = body[1:]
			}
			if tc.check != nil {
				tc.check(body)
			}
			checkUsable(int32(100 + i))
		})
	}
}

// TestBadFrames: malformed, truncated, oversized frames close only their
// connection, with a log line naming the remote address.
func TestBadFrames(t *testing.T) {
	e := startServer(t, func(_ *broker.Options, o *Options) { o.MaxFrameBytes = 1 << 20 })
	other := e.dial(t)
	size := func(n int32, rest ...byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(n))
		return append(b, rest...)
	}
	valid := frameRequest(metadataReq(9, "t"), 1)
	tests := []struct {
		name   string
		data   []byte
		half   bool // close our write side after sending
		reason string
	}{
		{"oversized", size(2 << 20), false, "max_frame_bytes"},
		{"negative size", size(-5), false, "outside"},
		{"shorter than a header", size(3, 0, 3, 0), false, "shorter than a request header"},
		{"bad client id length", size(10, 0, 3, 0, 9, 0, 0, 0, 1, 0x7f, 0x00), false, "client id"},
		{"negative version", size(10, 0, 3, 0xff, 0xff, 0, 0, 0, 1, 0, 0), false, "negative version"},
		{"unknown api key", size(10, 0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0, 0), false, "unknown api key"},
		{"garbage header tags", append(size(int32(len(valid)-4)), append(valid[4:14:14], bytes.Repeat([]byte{0xff}, len(valid)-14)...)...), false, "request header of Metadata v9"},
		{"garbage body", append(size(int32(len(valid)-4)), append(valid[4:19:19], bytes.Repeat([]byte{0xff}, len(valid)-19)...)...), false, "undecodable Metadata v9"},
		{"truncated body", func() []byte {
			b := frameRequest(produceReq(9, 1, "t", 0, batch(t, "a", "b")), 1)
			return b[:len(b)-20]
		}(), true, "truncated frame"},
		{"truncated size", []byte{0, 0}, true, "truncated frame size"},
		{"truncated request", append(size(int32(len(valid)-4+10)), valid[4:]...), true, "truncated frame"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := e.dial(t)
			rc.write(tc.data)
			if tc.half {
				_ = rc.nc.(interface{ CloseWrite() error }).CloseWrite()
			}
			rc.expectClosed()
			deadline := time.Now().Add(5 * time.Second)
			for !logged(e, rc.nc.LocalAddr().String(), tc.reason) {
				if time.Now().After(deadline) {
					t.Fatalf("no log line with %q and %q:\n%s", rc.nc.LocalAddr(), tc.reason, e.logs.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			// The other client is still served.
			other.send(metadataReq(9, "t"), int32(i))
			resp := kmsg.NewPtrMetadataResponse()
			resp.Version = 9
			other.recv(int32(i), resp)
			if resp.Topics[0].ErrorCode != 0 {
				t.Fatalf("other client: %+v", resp.Topics[0])
			}
		})
	}
}

func logged(e *testEnv, remote, reason string) bool {
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, "remote="+remote) && strings.Contains(line, reason) {
			return true
		}
	}
	return false
}

// TestResponseOrder pipelines slow and fast requests: responses come back
// in request order, and acks=0 produces get none.
func TestResponseOrder(t *testing.T) {
	e := startServer(t, func(_ *broker.Options, o *Options) { o.MaxInFlight = 4 })
	if _, err := e.b.CreateTopic("order", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	rc := e.dial(t)
	type sent struct {
		corr int32
		resp kmsg.Response
	}
	var want []sent
	var frames []byte
	add := func(req kmsg.Request, corr int32, respond bool) {
		frames = append(frames, frameRequest(req, corr)...)
		if respond {
			resp := req.ResponseKind()
			want = append(want, sent{corr, resp})
		}
	}
	corr := int32(1000)
	for i := 0; i < 10; i++ {
		// A fetch that waits (nothing beyond the end), then fast ones.
		add(fetchReq(11, "order", 0, int64(100+i), 150*time.Millisecond), corr, true)
		add(metadataReq(9, "order"), corr+1, true)
		add(produceReq(9, 0, "order", 0, batch(t, "acks0")), corr+2, false)
		add(produceReq(9, -1, "order", 0, batch(t, "acks-all")), corr+3, true)
		add(apiVersionsReq(3), corr+4, true)
		corr += 5
	}
	go rc.write(frames)
	var lastOffset int64 = -1
	for _, w := range want {
		rc.recv(w.corr, w.resp)
		if pr, ok := w.resp.(*kmsg.ProduceResponse); ok {
			p := pr.Topics[0].Partitions[0]
			if p.ErrorCode != 0 || p.BaseOffset <= lastOffset {
				t.Fatalf("produce %d: %+v after offset %d", w.corr, p, lastOffset)
			}
			lastOffset = p.BaseOffset
		}
	}
	// 10 acks=0 and 10 acks=all records, appended in request order.
	if _, hwm, _ := e.b.Offsets("order", 0); hwm != 20 {
		t.Fatalf("high watermark %d, want 20", hwm)
	}
}

// TestFetchLongPoll: a fetch waiting up to 5 s returns as soon as a record
// is produced.
func TestFetchLongPoll(t *testing.T) {
	e := startServer(t)
	if _, err := e.b.CreateTopic("lp", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	rc := e.dial(t)
	start := time.Now()
	rc.send(fetchReq(12, "lp", 0, 0, 5*time.Second), 1)
	time.Sleep(200 * time.Millisecond)
	prod := e.dial(t)
	prod.send(produceReq(9, 1, "lp", 0, batch(t, "wake up")), 2)
	presp := kmsg.NewPtrProduceResponse()
	presp.Version = 9
	prod.recv(2, presp)
	if presp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("produce: %+v", presp.Topics[0].Partitions[0])
	}
	fresp := kmsg.NewPtrFetchResponse()
	fresp.Version = 12
	rc.recv(1, fresp)
	elapsed := time.Since(start)
	if elapsed >= 3*time.Second {
		t.Fatalf("fetch took %v: it waited for MaxWait instead of the append", elapsed)
	}
	p := fresp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || p.HighWatermark != 1 || p.LastStableOffset != 1 || len(p.RecordBatches) == 0 || p.PreferredReadReplica != -1 {
		t.Fatalf("fetch: %+v", p)
	}
	if fresp.SessionID != 0 {
		t.Fatalf("session id %d", fresp.SessionID)
	}
}

// TestFetchInsideBatch: a fetch at an offset inside a batch returns the
// whole batch, for name-based and topic-id-based versions.
func TestFetchInsideBatch(t *testing.T) {
	e := startServer(t)
	info, err := e.b.CreateTopic("ib", 1, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	rc := e.dial(t)
	rc.send(produceReq(3, -1, "ib", 0, batch(t, "0", "1", "2", "3", "4", "5", "6", "7", "8", "9")), 1)
	presp := kmsg.NewPtrProduceResponse()
	presp.Version = 3
	rc.recv(1, presp)
	if p := presp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("produce: %+v", p)
	}
	for i, v := range []int16{4, 11, 13, 16, 18} {
		req := fetchReq(v, "ib", 0, 6, 0)
		req.Topics[0].TopicID = info.ID
		rc.send(req, int32(10+i))
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = v
		rc.recv(int32(10+i), resp)
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.HighWatermark != 10 {
			t.Fatalf("v%d: %+v", v, p)
		}
		var b kmsg.RecordBatch
		if err := b.ReadFrom(p.RecordBatches); err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if b.FirstOffset != 0 || b.NumRecords != 10 {
			t.Fatalf("v%d: batch at %d with %d records, want the whole batch", v, b.FirstOffset, b.NumRecords)
		}
		if v >= 13 && resp.Topics[0].TopicID != info.ID {
			t.Fatalf("v%d: topic id not echoed", v)
		}
	}
	// Out of range and unknown partitions / topic ids.
	rc.send(fetchReq(11, "ib", 0, 50, 0), 30)
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 11
	rc.recv(30, resp)
	if resp.Topics[0].Partitions[0].ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("out of range: %+v", resp.Topics[0].Partitions[0])
	}
	rc.send(fetchReq(11, "ib", 3, 0, 0), 31)
	rc.recv(31, resp)
	if resp.Topics[0].Partitions[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown partition: %+v", resp.Topics[0].Partitions[0])
	}
	byID := fetchReq(13, "", 0, 0, 0)
	byID.Topics[0].TopicID = [16]byte{1}
	rc.send(byID, 32)
	resp = kmsg.NewPtrFetchResponse()
	resp.Version = 13
	rc.recv(32, resp)
	if resp.Topics[0].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("unknown topic id: %+v", resp.Topics[0].Partitions[0])
	}
}

// TestProduceErrors: old message-set versions, corrupt batches, unknown
// partitions; error messages from v8.
func TestProduceErrors(t *testing.T) {
	e := startServer(t)
	if _, err := e.b.CreateTopic("pe", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	rc := e.dial(t)
	// A magic-1 message set, as Produce v2 carries.
	msgSet := []byte{
		0, 0, 0, 0, 0, 0, 0, 0, // offset
		0, 0, 0, 22, // size
		0, 0, 0, 0, // crc
		1, 0, // magic 1, attributes
		0, 0, 0, 0, 0, 0, 0, 0, // timestamp
		0xff, 0xff, 0xff, 0xff, // null key
		0, 0, 0, 0, // empty value
	}
	corrupt := batch(t, "x")
	corrupt[len(corrupt)-1] ^= 0xff
	tests := []struct {
		name    string
		version int16
		topic   string
		part    int32
		records []byte
		code    int16
	}{
		{"v0 message set", 0, "pe", 0, msgSet, kerr.UnsupportedForMessageFormat.Code},
		{"v2 message set", 2, "pe", 0, msgSet, kerr.UnsupportedForMessageFormat.Code},
		{"corrupt batch", 9, "pe", 0, corrupt, kerr.CorruptMessage.Code},
		{"unknown partition", 9, "pe", 5, batch(t, "x"), kerr.UnknownTopicOrPartition.Code},
		{"ok", 9, "pe", 0, batch(t, "x"), 0},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc.send(produceReq(tc.version, 1, tc.topic, tc.part, tc.records), int32(i))
			resp := kmsg.NewPtrProduceResponse()
			resp.Version = tc.version
			rc.recv(int32(i), resp)
			p := resp.Topics[0].Partitions[0]
			if p.ErrorCode != tc.code {
				t.Fatalf("error %d, want %d", p.ErrorCode, tc.code)
			}
			if tc.version >= 8 && tc.code != 0 && (p.ErrorMessage == nil || *p.ErrorMessage == "") {
				t.Fatalf("no error message")
			}
		})
	}
}

// TestCloseWithIdleAndWaitingConnections: Close returns while clients hold
// connections and fetches wait.
func TestCloseWithIdleAndWaitingConnections(t *testing.T) {
	e := startServer(t)
	if _, err := e.b.CreateTopic("cl", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	idle := e.dial(t)
	waiting := e.dial(t)
	waiting.send(fetchReq(11, "cl", 0, 0, 30*time.Second), 1)
	time.Sleep(100 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- e.s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	idle.expectClosed()
	waiting.expectClosed()
}

func TestProduceByTopicIDAndAcks(t *testing.T) {
	e := startServer(t)
	info, err := e.b.CreateTopic("pid", 1, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	rc := e.dial(t)
	req := produceReq(13, -1, "", 0, batch(t, "by id"))
	req.Topics[0].TopicID = info.ID
	rc.send(req, 1)
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 13
	rc.recv(1, resp)
	if tp := resp.Topics[0]; tp.TopicID != info.ID || tp.Partitions[0].ErrorCode != 0 || tp.Partitions[0].BaseOffset != 0 {
		t.Fatalf("produce v13: %+v", tp)
	}
	req.Topics[0].TopicID = [16]byte{9}
	rc.send(req, 2)
	rc.recv(2, resp)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("produce v13 unknown id: %+v", p)
	}
	bad := produceReq(9, 2, "pid", 0, batch(t, "x"))
	rc.send(bad, 3)
	resp = kmsg.NewPtrProduceResponse()
	resp.Version = 9
	rc.recv(3, resp)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != kerr.InvalidRequiredAcks.Code {
		t.Fatalf("acks 2: %+v", p)
	}
}

func TestOffsetForLeaderEpoch(t *testing.T) {
	e := startServer(t)
	if _, err := e.b.CreateTopic("ofle", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	rc := e.dial(t)
	rc.send(produceReq(9, 1, "ofle", 0, batch(t, "a", "b", "c")), 1)
	presp := kmsg.NewPtrProduceResponse()
	presp.Version = 9
	rc.recv(1, presp)
	for i, v := range []int16{0, 2, 3, 4} {
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.Version = v
		req.ReplicaID = -1
		for _, topic := range []string{"ofle", "missing"} {
			rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
			rp.LeaderEpoch = 0
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
		}
		rc.send(req, int32(10+i))
		resp := kmsg.NewPtrOffsetForLeaderEpochResponse()
		resp.Version = v
		rc.recv(int32(10+i), resp)
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.EndOffset != 3 || (v >= 1 && p.LeaderEpoch != -1) {
			t.Fatalf("v%d: %+v", v, p)
		}
		if p := resp.Topics[1].Partitions[0]; p.ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("v%d missing: %+v", v, p)
		}
	}
}
