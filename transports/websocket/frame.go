package websocket

import (
	"bytes"
	"encoding/binary"
	"sync"
	"time"

	gws "github.com/gorilla/websocket"
)

// The server writes its frames itself rather than through gorilla's
// writer: the write loop takes every frame queued on a connection and
// sends them with one write, which is what makes a million deliveries a
// second possible on two cores (a loopback write costs microseconds, a
// frame header a few nanoseconds). gorilla still does the handshake and
// reads; every frame the server sends (data, ping, pong, close) goes
// through the connection's queue, so there is one writer. Server frames
// are never masked and this server negotiates no extensions, so a frame
// is a 2 to 10 byte header and the payload (RFC 6455 §5.2).

const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// appendFrameHeader appends the header of a final, unmasked frame with
// opcode op and a payload of n bytes.
func appendFrameHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		b = append(b, 126)
		return binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		return binary.BigEndian.AppendUint64(b, uint64(n))
	}
}

// appendFrame appends m as one frame.
func appendFrame(b []byte, m *outMsg) []byte {
	switch m.kind {
	case outPing:
		if m.code == 1 { // a pong answering the client's ping
			b = appendFrameHeader(b, opPong, len(m.data))
			return append(b, m.data...)
		}
		return appendFrameHeader(b, opPing, 0)
	case outClose:
		payload := gws.FormatCloseMessage(m.code, m.reason)
		if len(payload) > 125 { // a control frame's limit; reasons are short
			payload = payload[:125]
		}
		b = appendFrameHeader(b, opClose, len(payload))
		return append(b, payload...)
	}
	op := byte(opText)
	if m.kind == outBinary {
		op = opBinary
	}
	b = appendFrameHeader(b, op, len(m.head)+len(m.data))
	b = append(b, m.head...)
	return append(b, m.data...)
}

// writeBatchBytes is how much the write loop gathers before a write.
const writeBatchBytes = 256 << 10

// frameBufs pools the write loop's gather buffers.
type frameBufs struct{ pool sync.Pool }

func (f *frameBufs) get() *[]byte {
	if p, ok := f.pool.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, 16<<10)
	return &b
}

func (f *frameBufs) put(p *[]byte) {
	if cap(*p) > 2*writeBatchBytes {
		return
	}
	*p = (*p)[:0]
	f.pool.Put(p)
}

// writeFrames writes msgs as consecutive frames with as few writes as
// their size allows. A close frame gets at most a second.
func (c *conn) writeFrames(msgs []outMsg) error {
	deadline := time.Now().Add(c.s.opts.WriteTimeout)
	for i := range msgs {
		if msgs[i].kind == outClose {
			if d := time.Now().Add(time.Second); d.Before(deadline) {
				deadline = d
			}
		}
	}
	nc := c.ws.NetConn()
	if err := nc.SetWriteDeadline(deadline); err != nil {
		return err
	}
	bp := c.s.frames.get()
	defer c.s.frames.put(bp)
	buf := (*bp)[:0]
	for i := range msgs {
		buf = appendFrame(buf, &msgs[i])
		if len(buf) >= writeBatchBytes {
			if _, err := nc.Write(buf); err != nil {
				*bp = buf[:0]
				return err
			}
			buf = buf[:0]
		}
	}
	var err error
	if len(buf) > 0 {
		_, err = nc.Write(buf)
	}
	*bp = buf[:0]
	return err
}

// readBuf returns an empty buffer to read a message into.
func (s *Server) readBuf() *bytes.Buffer {
	if b, ok := s.readBufs.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

// putReadBuf gives back a buffer of readBuf once the message is handled.
// Buffers that held a frame of up to MaxFrameBytes are kept (reading
// doubles a buffer's size as it fills, hence twice that), so that large
// produce frames are read without growing a fresh buffer each time.
func (s *Server) putReadBuf(b *bytes.Buffer) {
	if b.Cap() <= 2*s.opts.MaxFrameBytes+64<<10 {
		s.readBufs.Put(b)
	}
}
