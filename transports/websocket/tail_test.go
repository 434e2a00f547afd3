package websocket

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/samsa-broker/samsa/broker"
)

// tailSubSpec is one subscriber of TestSharedTail.
type tailSubSpec struct {
	format string // "json" or "binary"
	enc    string // value encoding of JSON deliveries
	credit int    // initial credit; refilled as records arrive
	late   bool   // subscribes from earliest after half the records
}

// TestSharedTail checks that subscriptions delivered by a partition's
// tailer (and those reading by themselves: NoSharedTail) receive every
// record exactly once, in order, with the right values, whatever their
// format, encoding and credit, including subscribers that start behind
// and catch up while records keep arriving.
func TestSharedTail(t *testing.T) {
	specs := []tailSubSpec{
		{format: "binary", credit: 100000},
		{format: "binary", credit: 100000},
		{format: "binary", credit: 3},
		{format: "json", enc: "auto", credit: 100000},
		{format: "json", enc: "auto", credit: 100000},
		{format: "json", enc: "base64", credit: 100000},
		{format: "json", enc: "text", credit: 1},
		{format: "json", enc: "auto", credit: 17},
		{format: "binary", credit: 100000, late: true},
		{format: "json", enc: "auto", credit: 5, late: true},
	}
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			e := startServer(t, func(b *broker.Options, o *Options) {
				b.DefaultPartitions = 2
				o.NoSharedTail = !shared
				o.TailLinger = time.Millisecond
			})
			const topic, total = "tail", 3000
			prod := e.dial(t)
			defer prod.close()
			// Create the topic before anyone subscribes.
			prod.produce(topic, 0, map[string]any{"key": "k0", "value": "v0"})

			type result struct {
				i    int
				got  map[int32][]int64
				vals map[string]bool
				err  error
			}
			results := make(chan result, len(specs))
			var wg sync.WaitGroup
			subscribe := func(i int, sp tailSubSpec) {
				defer wg.Done()
				r := result{i: i, got: map[int32][]int64{}, vals: map[string]bool{}}
				r.err = runTailSub(e, sp, total+1, &r.got, r.vals)
				results <- r
			}
			for i, sp := range specs {
				if !sp.late {
					wg.Add(1)
					go subscribe(i, sp)
				}
			}
			// Produce in batches of 1 to 20 records with keys over both
			// partitions, slowly enough that subscribers sit at the tail.
			rng := rand.New(rand.NewPCG(1, 2))
			sent := 1
			id := 1
			for sent < total+1 {
				n := min(1+rng.IntN(20), total+1-sent)
				recs := make([]map[string]any, n)
				for k := range recs {
					recs[k] = map[string]any{"key": "k" + strconv.Itoa(sent+k), "value": "v" + strconv.Itoa(sent+k)}
				}
				prod.produce(topic, id, recs...)
				id++
				if sent < (total+1)/2 && sent+n >= (total+1)/2 {
					for i, sp := range specs {
						if sp.late {
							wg.Add(1)
							go subscribe(i, sp)
						}
					}
				}
				sent += n
				if id%10 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			wg.Wait()
			close(results)
			for r := range results {
				if r.err != nil {
					t.Errorf("subscriber %d (%+v): %v", r.i, specs[r.i], r.err)
					continue
				}
				n := 0
				for p, offs := range r.got {
					for k, o := range offs {
						if o != int64(k) {
							t.Fatalf("subscriber %d partition %d: record %d has offset %d", r.i, p, k, o)
						}
					}
					n += len(offs)
				}
				if n != total+1 || len(r.vals) != total+1 {
					t.Errorf("subscriber %d got %d records (%d distinct values), want %d", r.i, n, len(r.vals), total+1)
				}
			}
			if rounds := e.s.tailRounds.Load(); shared && rounds == 0 {
				t.Error("no delivery went through a tailer")
			} else if !shared && rounds != 0 {
				t.Errorf("NoSharedTail: %d tailer rounds", rounds)
			}
		})
	}
}

// runTailSub subscribes from earliest as sp says and reads until it has
// want records, refilling its credit by what it received.
func runTailSub(e *testEnv, sp tailSubSpec, want int, got *map[int32][]int64, vals map[string]bool) error {
	c, err := e.tryDial()
	if err != nil {
		return err
	}
	defer c.close()
	req := map[string]any{"op": "subscribe", "id": 1, "sub": "s", "topic": "tail", "from": "earliest", "credit": sp.credit, "format": sp.format}
	if sp.enc != "" {
		req["encoding"] = sp.enc
	}
	if err := c.ws.WriteJSON(req); err != nil {
		return err
	}
	n, granted := 0, sp.credit
	for n < want {
		_ = c.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("after %d records: %w", n, err)
		}
		var batch int
		if mt == gws.BinaryMessage {
			r := binReader{b: data}
			if r.take(1)[0] != kindRecords || string(r.take(int(r.u16()))) != "s" {
				return fmt.Errorf("bad binary frame %x", data)
			}
			cnt := int(r.u32())
			for range cnt {
				p := int32(r.u32())
				off := int64(binary.LittleEndian.Uint64(r.take(8)))
				r.take(8)
				r.nbytes()
				v := r.nbytes()
				for range r.u16() {
					r.take(int(r.u16()))
					r.nbytes()
				}
				(*got)[p] = append((*got)[p], off)
				vals[strings.Trim(string(v), `"`)] = true
			}
			if r.bad || len(r.b) != 0 {
				return fmt.Errorf("bad binary records layout")
			}
			batch = cnt
		} else {
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				return err
			}
			switch m["type"] {
			case "subscribed", "credited":
				continue
			case "records":
			default:
				return fmt.Errorf("unexpected %s", data)
			}
			for _, d := range records(m) {
				(*got)[int32(d.Partition)] = append((*got)[int32(d.Partition)], d.Offset)
				v, ok := d.Value.(string)
				if !ok {
					return fmt.Errorf("value %v (%s)", d.Value, d.Encoding)
				}
				if d.Encoding == encBase64 {
					b, err := base64.StdEncoding.DecodeString(v)
					if err != nil {
						return err
					}
					v = string(b)
				}
				vals[strings.Trim(v, `"`)] = true
			}
			batch = len(records(m))
		}
		n += batch
		if n > granted {
			return fmt.Errorf("received %d records with %d credit granted", n, granted)
		}
		if sp.credit < 1000 && batch > 0 {
			granted += batch
			if err := c.ws.WriteJSON(map[string]any{"op": "credit", "sub": "s", "records": batch}); err != nil {
				return err
			}
		}
	}
	return nil
}
