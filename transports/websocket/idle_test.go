package websocket

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawDial opens a WebSocket connection with a hand-written handshake and
// reads the hello frame; it keeps nothing but the net.Conn.
func rawDial(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	_, err = fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: samsa.v1\r\n\r\n", addr)
	if err != nil {
		c.Close()
		return nil, err
	}
	var buf [2048]byte
	n := 0
	for {
		m, err := c.Read(buf[n:])
		if err != nil {
			c.Close()
			return nil, err
		}
		n += m
		end := bytes.Index(buf[:n], []byte("\r\n\r\n"))
		if end < 0 {
			continue
		}
		if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 101")) {
			c.Close()
			return nil, fmt.Errorf("handshake: %q", buf[:n])
		}
		f := buf[end+4 : n]
		if len(f) >= 4 {
			l := int(f[1] & 0x7f)
			hl := 2
			if l == 126 {
				l = int(f[2])<<8 | int(f[3])
				hl = 4
			}
			if len(f) >= hl+l {
				if !bytes.Contains(f[hl:hl+l], []byte(`"hello"`)) {
					c.Close()
					return nil, fmt.Errorf("no hello: %q", f)
				}
				_ = c.SetDeadline(time.Time{})
				return c, nil
			}
		}
	}
}

// TestIdleClientHelper is the client process of measureIdle: it opens the
// connections, says "ready", and holds them until stdin closes.
func TestIdleClientHelper(t *testing.T) {
	addr := os.Getenv("SAMSA_WS_IDLE_ADDR")
	if addr == "" {
		t.Skip("helper process only")
	}
	n, _ := strconv.Atoi(os.Getenv("SAMSA_WS_IDLE_N"))
	conns := make([]net.Conn, 0, n)
	for i := range n {
		c, err := rawDial(addr)
		if err != nil {
			fmt.Printf("error %d: %v\n", i, err)
			os.Exit(1)
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	os.Exit(0)
}

func memInUse() (heap, stack uint64, goroutines int) {
	for range 3 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse, runtime.NumGoroutine()
}

// measureIdle opens n idle connections from a child process and returns
// the broker process's heap+stack bytes and goroutines per connection.
func measureIdle(t testing.TB, e *testEnv, n int) (bytesPerConn, goroutinesPerConn float64) {
	t.Helper()
	// Warm up: one connection, so that pools and lazily built state exist.
	c := e.dial(t)
	c.close()
	waitFor(t, "warm-up connection to end", 5*time.Second, func() bool { return e.s.Connections() == 0 })
	h0, s0, g0 := memInUse()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClientHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SAMSA_WS_IDLE_ADDR="+strings.TrimPrefix(e.hs.URL, "http://"), "SAMSA_WS_IDLE_N="+strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if line == "ready" {
			break
		}
		if strings.HasPrefix(line, "error") {
			t.Fatalf("client: %s", line)
		}
	}
	waitFor(t, "server connections", 30*time.Second, func() bool { return e.s.Connections() == n })
	// Let the writers of hello frames exit.
	time.Sleep(200 * time.Millisecond)
	h1, s1, g1 := memInUse()
	bytesPerConn = (float64(h1+s1) - float64(h0+s0)) / float64(n)
	goroutinesPerConn = float64(g1-g0) / float64(n)
	t.Logf("%d idle connections: heap %+d B, stack %+d B, %.0f B/conn, %.2f goroutines/conn",
		n, int64(h1)-int64(h0), int64(s1)-int64(s0), bytesPerConn, goroutinesPerConn)
	return bytesPerConn, goroutinesPerConn
}

// BenchmarkIdleConnections10k measures 10,000 idle connections
// (go test -run x -bench IdleConnections10k -benchtime 1x).
func BenchmarkIdleConnections10k(b *testing.B) {
	for range b.N {
		e := startServer(b)
		per, g := measureIdle(b, e, 10000)
		b.ReportMetric(per, "B/conn")
		b.ReportMetric(g, "goroutines/conn")
		e.close() // before the next iteration opens 10,000 more
	}
}
