// Command sensor-sim produces simulated sensor readings to a samsa topic
// over the WebSocket protocol (sdk/go):
//
//	{"sensor":"s1","temp":21.37,"ts":1767225600123}
//
// keyed by sensor (so each sensor's readings stay in order on one
// partition), at --rate readings per second in total across --sensors
// sensors, until interrupted (or --count readings).
//
//	go run ./examples/sensor-sim --url ws://127.0.0.1:8080/ws --topic sensors --rate 20 --sensors 4
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	samsa "github.com/samsa-broker/samsa/sdk/go"
)

type reading struct {
	Sensor string  `json:"sensor"`
	Temp   float64 `json:"temp"`
	TS     int64   `json:"ts"`
}

type config struct {
	url     string
	topic   string
	rate    float64
	sensors int
	count   int64
	binary  bool
	quiet   bool
}

func main() {
	var cfg config
	flag.StringVar(&cfg.url, "url", "ws://127.0.0.1:8080/ws", "broker WebSocket endpoint")
	flag.StringVar(&cfg.topic, "topic", "sensors", "topic to produce to")
	flag.Float64Var(&cfg.rate, "rate", 10, "readings per second, all sensors together (0: as fast as acks allow)")
	flag.IntVar(&cfg.sensors, "sensors", 3, "number of sensors (s1..sN)")
	flag.Int64Var(&cfg.count, "count", 0, "stop after this many readings (0: run until interrupted)")
	flag.BoolVar(&cfg.binary, "binary", false, "produce with binary frames")
	flag.BoolVar(&cfg.quiet, "quiet", false, "no per-second progress lines")
	flag.Parse()
	if cfg.sensors < 1 || cfg.rate < 0 {
		fmt.Fprintln(os.Stderr, "sensor-sim: --sensors must be >= 1 and --rate >= 0")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Printf("sensor-sim: %v", err)
		os.Exit(1)
	}
}

// run produces readings until ctx ends or cfg.count readings were sent,
// then waits for their acks.
func run(ctx context.Context, cfg config) error {
	c, err := samsa.Dial(ctx, cfg.url, samsa.Options{
		Binary:        cfg.binary,
		RetryInflight: true, // at least once: a reading whose ack was lost is sent again
		OnConnect:     func(s string) { log.Printf("connected to %s (session %s)", cfg.url, s) },
		OnDisconnect:  func(err error) { log.Printf("disconnected: %v (reconnecting)", err) },
	})
	if err != nil {
		return err
	}
	defer c.Close()

	var sent, acked, failed atomic.Int64
	var lastOffset atomic.Int64
	lastOffset.Store(-1)
	cb := func(a samsa.Ack, err error) {
		if err != nil {
			if n := failed.Add(1); n <= 10 || n%1000 == 0 {
				log.Printf("produce failed (%d so far): %v", n, err)
			}
			return
		}
		acked.Add(1)
		lastOffset.Store(a.Offset)
	}

	if !cfg.quiet {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			prev := int64(0)
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				n := acked.Load()
				log.Printf("%d readings acked (%d/s), last offset %d, %d failed", n, n-prev, lastOffset.Load(), failed.Load())
				prev = n
			}
		}()
	}

	// Each sensor drifts around its own base temperature.
	temps := make([]float64, cfg.sensors)
	for i := range temps {
		temps[i] = 18 + 6*rand.Float64()
	}
	var interval time.Duration
	if cfg.rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.rate)
	}
	start := time.Now()
	var buf []byte
	for i := int64(0); cfg.count == 0 || i < cfg.count; i++ {
		if interval > 0 {
			// Pace against the start time, so that slow acks do not lower
			// the average rate.
			due := start.Add(time.Duration(i) * interval)
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		s := int(i % int64(cfg.sensors))
		phase := float64(time.Since(start).Seconds())/20 + float64(s)
		temps[s] += (rand.Float64() - 0.5) * 0.2
		r := reading{
			Sensor: fmt.Sprintf("s%d", s+1),
			Temp:   math.Round((temps[s]+2*math.Sin(phase))*100) / 100,
			TS:     time.Now().UnixMilli(),
		}
		buf, _ = json.Marshal(r)
		c.ProduceAsync(ctx, cfg.topic, samsa.Record{Key: []byte(r.Sensor), Value: buf}, cb)
		sent.Add(1)
	}
	// Wait (briefly after an interrupt) for the outstanding acks.
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Flush(fctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Printf("flush: %v", err)
	}
	log.Printf("done: %d sent, %d acked, %d failed, last offset %d", sent.Load(), acked.Load(), failed.Load(), lastOffset.Load())
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d readings failed", n)
	}
	return nil
}
