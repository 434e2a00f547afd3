package kafka

import (
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/samsa-broker/samsa/auth"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SASL authentication (KIP-43, KIP-152, KIP-368).
//
// With Options.Auth enabled a connection starts unauthenticated: only
// ApiVersions, SaslHandshake and SaslAuthenticate are served; anything else
// closes the connection with a log line, as Kafka does. SaslHandshake picks
// the mechanism; v1 wraps the tokens in SaslAuthenticate requests, v0 sends
// them unframed (a 4-byte length and the bytes, answered the same way). A
// failed authentication answers SASL_AUTHENTICATION_FAILED (v1) and closes
// the connection. An authenticated connection may re-authenticate (KIP-368)
// as the same principal; SaslAuthenticate v1+ tells the client how long its
// session lasts (until the JWT expires), and the connection is closed when
// it does, or when the principal is revoked.

const (
	saslHandshakeKey    = 17
	saslAuthenticateKey = 36
	describeScramKey    = 50
	alterScramKey       = 51

	// maxPreAuthFrameBytes bounds frames before authentication (Kafka's
	// sasl.server.max.receive.size), so that an anonymous client cannot
	// make the server buffer max_frame_bytes.
	maxPreAuthFrameBytes = 512 << 10
)

// saslMechanisms are the mechanisms SaslHandshake offers.
var saslMechanisms = []string{auth.MechPlain, auth.MechScramSHA256, auth.MechScramSHA512, auth.MechOAuthBearer}

// saslState is a connection's authentication state. principal is read by
// handlers (on and off the read path) and by the revocation callback; the
// other fields belong to the read path.
type saslState struct {
	principal atomic.Pointer[auth.Principal]

	mech    string // set by SaslHandshake until the exchange ends; "" otherwise
	raw     bool   // SaslHandshake v0: the next frames are raw SASL tokens
	started bool   // the exchange has seen its first token
	scram   auth.ScramConversation

	mu     sync.Mutex
	expiry *time.Timer
}

// authOn reports whether connections must authenticate.
func (s *Server) authOn() bool { return s.opts.Auth.Enabled() }

// authOnlyKey reports whether key is served only with auth on; with auth
// off these APIs are neither advertised nor answered (as before auth
// existed).
func authOnlyKey(key int16) bool {
	switch key {
	case saslHandshakeKey, saslAuthenticateKey, describeScramKey, alterScramKey:
		return true
	}
	return false
}

// preAuthKey reports whether key may be sent before authenticating.
func preAuthKey(key int16) bool {
	return key == apiVersionsKey || key == saslHandshakeKey || key == saslAuthenticateKey
}

// authenticated reports whether the connection may send any request.
func (c *conn) authenticated() bool {
	return !c.s.authOn() || c.sasl.principal.Load() != nil
}

// principalName names the connection's principal for logs.
func (c *conn) principalName() string {
	if p := c.sasl.principal.Load(); p != nil {
		return p.Name
	}
	return ""
}

func handleSaslHandshake(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.SASLHandshakeRequest)
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = saslMechanisms
	st := &c.sasl
	switch {
	case st.mech != "":
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return reply{resp: resp, closeAfter: "SaslHandshake during a SASL exchange"}
	case req.Version == 0 && st.principal.Load() != nil:
		// KIP-368: re-authentication needs SaslAuthenticate.
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return reply{resp: resp, closeAfter: "re-authentication with SaslHandshake v0"}
	}
	mech := ""
	for _, m := range saslMechanisms {
		if strings.EqualFold(m, req.Mechanism) {
			mech = m
		}
	}
	if mech == "" {
		// The client may retry with another mechanism it knows.
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		return reply{resp: resp}
	}
	st.mech, st.raw, st.started, st.scram = mech, req.Version == 0, false, nil
	return reply{resp: resp}
}

func handleSaslAuthenticate(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.SASLAuthenticateRequest)
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	resp.SASLAuthBytes = []byte{}
	if c.sasl.mech == "" {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		resp.ErrorMessage = ptr("SaslAuthenticate without a SaslHandshake")
		return reply{resp: resp, closeAfter: "SaslAuthenticate without a SaslHandshake"}
	}
	out, p, err := c.saslStep(req.SASLAuthBytes)
	if err != nil {
		msg := saslErrMessage(err)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		resp.ErrorMessage = &msg
		return reply{resp: resp, closeAfter: "SASL authentication failed: " + msg}
	}
	if out != nil {
		resp.SASLAuthBytes = out
	}
	if p != nil && req.Version >= 1 && !p.Expires.IsZero() {
		resp.SessionLifetimeMillis = max(time.Until(p.Expires).Milliseconds(), 1)
	}
	return reply{resp: resp}
}

// handleRawToken answers one unframed SASL token (after SaslHandshake v0).
// A failure closes the connection without an answer, as Kafka does.
func (c *conn) handleRawToken(tok []byte) error {
	out, _, err := c.saslStep(tok)
	if err != nil {
		return &closeError{msg: "SASL authentication failed: " + saslErrMessage(err)}
	}
	f, err := c.enqueue()
	if err != nil {
		return err
	}
	frame := make([]byte, 4+len(out))
	binary.BigEndian.PutUint32(frame, uint32(len(out)))
	copy(frame[4:], out)
	f.frame = frame
	close(f.done)
	return nil
}

// saslStep runs one step of the exchange started by SaslHandshake: it
// returns the server's answer and, once the client is authenticated, its
// principal (installed on the connection). An error ends the exchange; its
// text holds no secret.
func (c *conn) saslStep(tok []byte) (out []byte, p *auth.Principal, err error) {
	st := &c.sasl
	a := c.s.opts.Auth
	mech := st.mech
	if !st.started {
		st.started = true
		if err := a.RateLimit(c.remote); err != nil {
			c.endExchange()
			c.s.log.Info("kafka SASL authentication refused", "remote", c.remote, "mechanism", mech, "err", err)
			return nil, nil, err
		}
	}
	done := true
	switch mech {
	case auth.MechPlain:
		p, err = c.saslPlain(tok)
	case auth.MechOAuthBearer:
		p, err = c.saslOAuthBearer(tok)
	case auth.MechScramSHA256, auth.MechScramSHA512:
		if st.scram == nil {
			if st.scram, err = a.ScramServer(mech); err != nil {
				break
			}
		}
		out, done, err = st.scram.Step(tok)
		if err == nil && done {
			if p = st.scram.Principal(); p == nil {
				err = errors.New("authentication failed")
			}
		}
	default:
		err = errors.New("authentication failed: no mechanism")
	}
	if err == nil && done {
		err = c.setPrincipal(p)
	}
	if err != nil {
		c.endExchange()
		if !errors.Is(err, auth.ErrRateLimited) {
			a.Failed(c.remote)
		}
		c.s.log.Info("kafka SASL authentication failed", "remote", c.remote, "mechanism", mech, "err", saslErrMessage(err))
		return nil, nil, err
	}
	if !done {
		return out, nil, nil
	}
	c.endExchange()
	c.s.log.Info("kafka client authenticated", "remote", c.remote, "user", p.Name, "mechanism", mech)
	return out, p, nil
}

// endExchange forgets the exchange in progress; a new one starts with
// SaslHandshake.
func (c *conn) endExchange() {
	st := &c.sasl
	st.mech, st.raw, st.started, st.scram = "", false, false, nil
}

// saslPlain checks a PLAIN message: [authzid] NUL authcid NUL passwd.
func (c *conn) saslPlain(tok []byte) (*auth.Principal, error) {
	parts := strings.Split(string(tok), "\x00")
	if len(parts) != 3 {
		return nil, errors.New("authentication failed: malformed PLAIN message")
	}
	authzid, user, password := parts[0], parts[1], parts[2]
	if authzid != "" && authzid != user {
		return nil, errors.New("authentication failed: PLAIN authorization id differs from the user name")
	}
	return c.s.opts.Auth.Plain(user, password)
}

// saslOAuthBearer checks an OAUTHBEARER initial client response (RFC 7628):
// gs2-header %x01 *(key "=" value %x01) %x01, whose "auth" value is
// "Bearer <user JWT>".
func (c *conn) saslOAuthBearer(tok []byte) (*auth.Principal, error) {
	msg := string(tok)
	malformed := errors.New("authentication failed: malformed OAUTHBEARER message")
	gs2, kvs, ok := strings.Cut(msg, "\x01")
	if !ok || !strings.HasSuffix(kvs, "\x01") {
		return nil, malformed
	}
	flag, rest, ok := strings.Cut(gs2, ",")
	if !ok || (flag != "n" && flag != "y") || !strings.HasSuffix(rest, ",") {
		return nil, malformed
	}
	authzid := strings.TrimSuffix(rest, ",")
	if authzid != "" {
		if !strings.HasPrefix(authzid, "a=") {
			return nil, malformed
		}
		authzid = authzid[2:]
	}
	token := ""
	for _, kv := range strings.Split(strings.TrimSuffix(kvs, "\x01"), "\x01") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k != "auth" {
			continue
		}
		scheme, cred, ok := strings.Cut(v, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return nil, malformed
		}
		token = strings.TrimSpace(cred)
	}
	if token == "" {
		return nil, errors.New("authentication failed: OAUTHBEARER message without a bearer token")
	}
	// Only bearer JWTs: a non-bearer JWT is public and proves nothing
	// without a signed nonce, which OAUTHBEARER cannot carry.
	p, err := c.s.opts.Auth.VerifyBearer(token)
	if err != nil {
		return nil, err
	}
	if authzid != "" && authzid != p.Name && authzid != p.PublicKey {
		return nil, errors.New("authentication failed: OAUTHBEARER authorization id differs from the token's subject")
	}
	return p, nil
}

// saslErrMessage is what the client and the log are told about a failed
// authentication: the auth package's own words (which never hold a
// secret), or a generic text.
func saslErrMessage(err error) string {
	if errors.Is(err, auth.ErrUnauthenticated) || errors.Is(err, auth.ErrRateLimited) {
		return err.Error()
	}
	if msg := err.Error(); strings.HasPrefix(msg, "authentication failed") {
		return msg // ours
	}
	return "authentication failed"
}

// setPrincipal installs p after a successful exchange: a re-authentication
// must keep the principal (KIP-368). It (re)arms the expiry timer.
func (c *conn) setPrincipal(p *auth.Principal) error {
	if old := c.sasl.principal.Load(); old != nil && old.Name != p.Name {
		return errors.New("authentication failed: re-authentication as a different principal")
	}
	c.sasl.principal.Store(p)
	st := &c.sasl
	st.mu.Lock()
	if st.expiry != nil {
		st.expiry.Stop()
		st.expiry = nil
	}
	if !p.Expires.IsZero() {
		name := p.Name
		st.expiry = time.AfterFunc(time.Until(p.Expires), func() {
			if c.ctx.Err() == nil {
				c.s.log.Info("closing kafka connection: credentials expired", "remote", c.remote, "user", name)
			}
			c.cancel()
		})
	}
	st.mu.Unlock()
	// A revocation between the check in the auth package and now.
	if c.s.revokedPrincipal(p) {
		c.s.log.Info("closing kafka connection: credentials revoked", "remote", c.remote, "user", p.Name)
		c.cancel()
	}
	return nil
}

func (c *conn) stopExpiry() {
	c.sasl.mu.Lock()
	if c.sasl.expiry != nil {
		c.sasl.expiry.Stop()
		c.sasl.expiry = nil
	}
	c.sasl.mu.Unlock()
}

func (s *Server) revokedPrincipal(p *auth.Principal) bool {
	a := s.opts.Auth
	return a.Revoked(p.PublicKey) || a.Revoked(p.Name) || a.Revoked(p.Issuer)
}

// revoked closes the connections authenticated as id (a user public key,
// user name or issuer key) or by a JWT it signed.
func (s *Server) revoked(id string) {
	if id == "" {
		return
	}
	var victims []*conn
	s.mu.Lock()
	for c := range s.conns {
		if p := c.sasl.principal.Load(); p != nil && (p.PublicKey == id || p.Name == id || p.Issuer == id) {
			victims = append(victims, c)
		}
	}
	s.mu.Unlock()
	for _, c := range victims {
		s.log.Info("closing kafka connection: credentials revoked", "remote", c.remote, "user", c.principalName())
		c.cancel()
	}
}
