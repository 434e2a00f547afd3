package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/samsa-broker/samsa/broker"
	samsa "github.com/samsa-broker/samsa/sdk/go"
	wstransport "github.com/samsa-broker/samsa/transports/websocket"
)

func TestSensorSim(t *testing.T) {
	bopts := broker.Options{DataDir: t.TempDir(), AutoCreateTopics: true, DefaultPartitions: 2}
	bopts.Defaults = broker.DefaultTopicConfig()
	bopts.Defaults.Flush = broker.FlushOS
	b, err := broker.Open(bopts)
	if err != nil {
		t.Fatal(err)
	}
	ws := wstransport.New(b, wstransport.Options{})
	mux := http.NewServeMux()
	mux.Handle("/ws", ws)
	hs := httptest.NewServer(mux)
	defer func() { ws.Close(); hs.Close(); b.Close() }()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := run(ctx, config{url: url, topic: "sensors", rate: 200, sensors: 3, count: 60, quiet: true}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Fatalf("60 readings at 200/s took %v", el)
	}

	c, err := samsa.Dial(ctx, url, samsa.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sub, err := c.Subscribe(ctx, "sensors", samsa.SubscribeOptions{From: samsa.Earliest()})
	if err != nil {
		t.Fatal(err)
	}
	perSensor := map[string]int{}
	partOf := map[string]int32{}
	for range 60 {
		r, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var rd struct {
			Sensor string   `json:"sensor"`
			Temp   *float64 `json:"temp"`
			TS     int64    `json:"ts"`
		}
		if err := json.Unmarshal(r.Value, &rd); err != nil || rd.Temp == nil || rd.TS == 0 || string(r.Key) != rd.Sensor {
			t.Fatalf("reading %q (key %q): %v", r.Value, r.Key, err)
		}
		if p, ok := partOf[rd.Sensor]; ok && p != r.Partition {
			t.Fatalf("sensor %s on partitions %d and %d", rd.Sensor, p, r.Partition)
		}
		partOf[rd.Sensor] = r.Partition
		perSensor[rd.Sensor]++
	}
	if len(perSensor) != 3 || perSensor["s1"] != 20 {
		t.Fatalf("readings per sensor: %v", perSensor)
	}
}
