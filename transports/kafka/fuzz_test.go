package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// fuzzSeeds are real encoded requests (frames without the size prefix).
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	add := func(req kmsg.Request, versions ...int16) {
		for _, v := range versions {
			req.SetVersion(v)
			seeds = append(seeds, frameRequest(req, 42)[4:])
		}
	}
	add(apiVersionsReq(0), 0, 3, 4, 5)
	add(metadataReq(0, "a", "b"), 0, 1, 4, 9, 10, 12, 13)
	add(produceReq(3, -1, "a", 0, batch(t, "x", "y")), 0, 3, 7, 9, 12, 13)
	add(fetchReq(4, "a", 0, 5, 100), 0, 4, 7, 11, 12, 13, 16, 18)
	lreq := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "a"
	lt.Partitions = append(lt.Partitions, kmsg.NewListOffsetsRequestTopicPartition())
	lreq.Topics = append(lreq.Topics, lt)
	add(lreq, 0, 1, 6, 11)
	ct := kmsg.NewPtrCreateTopicsRequest()
	ctt := kmsg.NewCreateTopicsRequestTopic()
	ctt.Topic = "a"
	ctt.Configs = append(ctt.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: "retention.ms", Value: kmsg.StringPtr("1")})
	ct.Topics = append(ct.Topics, ctt)
	add(ct, 0, 4, 5, 7)
	dt := kmsg.NewPtrDeleteTopicsRequest()
	dt.TopicNames = []string{"a"}
	dt.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr("a")}}
	add(dt, 0, 4, 6)
	dc := kmsg.NewPtrDescribeConfigsRequest()
	dc.Resources = append(dc.Resources, kmsg.DescribeConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "a"})
	add(dc, 0, 1, 4)
	ia := kmsg.NewPtrIncrementalAlterConfigsRequest()
	ia.Resources = append(ia.Resources, kmsg.IncrementalAlterConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "a",
		Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "retention.ms", Value: kmsg.StringPtr("5")}}})
	add(ia, 0, 1)
	add(kmsg.NewPtrInitProducerIDRequest(), 0, 2, 5)
	add(kmsg.NewPtrDescribeClusterRequest(), 0, 2)
	add(&kmsg.FindCoordinatorRequest{CoordinatorKey: "g"}, 0, 3, 4)
	add(&kmsg.ControlledShutdownRequest{}, 0)
	return seeds
}

// FuzzDecodeRequest: the frame/request decoder and the error-response path
// never panic, whatever the bytes.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 18, 0, 99, 0, 0, 0, 1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, frame []byte) {
		r, err := decodeRequest(frame)
		if err != nil {
			return
		}
		if r.kreq == nil {
			return
		}
		if !r.supported {
			resp, _ := errorResponse(r.kreq, r.hdr.version, 35)
			_ = encodeResponse(r.hdr.correlationID, resp)
			return
		}
		// A decoded request re-encodes without panicking.
		_ = r.kreq.AppendTo(nil)
	})
}

func TestFuzzSeedsDecode(t *testing.T) {
	for i, s := range fuzzSeeds(t) {
		r, err := decodeRequest(s)
		if err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		if r.hdr.key == 7 && r.hdr.version == 0 {
			continue // ControlledShutdown v0 has no client id
		}
		if r.hdr.correlationID != 42 || r.hdr.clientID == nil || *r.hdr.clientID != "test" {
			t.Fatalf("seed %d: header %+v", i, r.hdr)
		}
	}
}
