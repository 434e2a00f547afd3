package kafka

import (
	"context"
	"crypto/tls"
	"time"
)

// tlsHandshakeTimeout bounds the TLS handshake of a new connection, so that
// a client that connects and says nothing costs a goroutine for a while,
// not forever.
const tlsHandshakeTimeout = 10 * time.Second

// tlsHandshake completes the TLS handshake of a TLS connection (a no-op
// otherwise). It reports false, with a log line, when the handshake failed.
func (c *conn) tlsHandshake() bool {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return true
	}
	ctx, cancel := context.WithTimeout(c.ctx, tlsHandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		if c.ctx.Err() == nil {
			c.s.log.Info("kafka TLS handshake failed", "remote", c.remote, "err", err)
		}
		return false
	}
	return true
}
