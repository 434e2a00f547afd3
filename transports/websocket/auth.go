package websocket

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/samsa-broker/samsa/auth"
)

// Authentication of connections (PROTOCOL.md §9). With Options.Auth
// enabled a connection starts unauthenticated: only auth and ping are
// served until an auth op (or the configured cookie) succeeds. The
// principal is then fixed for the connection's life (a later auth op may
// refresh the token of the same user); it expires with its token, which
// closes the connection with 4001, as does revocation of its key.

// session is the authenticated identity of a connection.
type session struct {
	p *auth.Principal
}

// authOn reports whether connections must authenticate.
func (s *Server) authOn() bool { return s.opts.Auth != nil && s.opts.Auth.Enabled() }

// authCookie verifies the bearer JWT of the configured cookie on the
// upgrade request, if any; a missing cookie is no error.
func (s *Server) authCookie(r *http.Request, ip string) (*auth.Principal, error) {
	if !s.authOn() || s.opts.AuthCookie == "" {
		return nil, nil
	}
	ck, err := r.Cookie(s.opts.AuthCookie)
	if err != nil || ck.Value == "" {
		return nil, nil
	}
	a := s.opts.Auth
	if err := a.RateLimit(ip); err != nil {
		return nil, err
	}
	p, err := a.VerifyBearer(ck.Value)
	if err != nil {
		a.Failed(ip)
		return nil, err
	}
	return p, nil
}

// principal is the connection's identity; nil before authentication
// (and always when auth is off).
func (c *conn) principal() *auth.Principal {
	if ss := c.sess.Load(); ss != nil {
		return ss.p
	}
	return nil
}

// opAllowedBeforeAuth reports whether op is served before
// authentication.
func opAllowedBeforeAuth(op string) bool { return op == "auth" || op == "ping" }

// authenticated returns unauthorized when auth is on and the connection
// has not authenticated (or its token has expired).
func (c *conn) authenticated() *protoError {
	if !c.s.authOn() {
		return nil
	}
	p := c.principal()
	if p == nil {
		return errf(codeUnauthorized, "not authenticated: send {\"op\":\"auth\"} first")
	}
	if !p.Expires.IsZero() && !time.Now().Before(p.Expires) {
		return errf(codeUnauthorized, "token expired")
	}
	return nil
}

// allow checks that the connection may do action on resource (a topic
// or a group): unauthorized when not authenticated, forbidden when the
// principal lacks the permission.
func (c *conn) allow(action auth.Action, resource string) *protoError {
	if !c.s.authOn() {
		return nil
	}
	if perr := c.authenticated(); perr != nil {
		return perr
	}
	p := c.principal()
	if p.Allowed(action, resource) {
		return nil
	}
	what := "topic"
	verb := "use"
	switch action {
	case auth.ProduceTopic:
		verb = "produce to"
	case auth.ConsumeTopic:
		verb = "consume from"
	case auth.JoinGroup:
		what, verb = "group", "join or commit to"
	}
	return errf(codeForbidden, "%s may not %s %s %q", userName(p), verb, what, resource)
}

// userName is how replies and logs name a principal.
func userName(p *auth.Principal) string {
	if p.Name != "" {
		return p.Name
	}
	return p.PublicKey
}

// authRequest is the auth op's fields. NKey is a static user's public
// key ([[auth.users]] nkey), which signs the nonce like a JWT's user.
type authRequest struct {
	JWT    string `json:"jwt"`
	NKey   string `json:"nkey"`
	Sig    string `json:"sig"`
	Bearer string `json:"bearer"`
}

// handleAuth serves the auth op.
func (c *conn) handleAuth(id json.RawMessage, data []byte) *protoError {
	if !c.s.authOn() {
		c.sendText(simpleReply("authenticated", id, ""))
		return nil
	}
	var ar authRequest
	if err := json.Unmarshal(data, &ar); err != nil {
		return errf(codeBadRequest, "auth: %v", err)
	}
	a := c.s.opts.Auth
	var p *auth.Principal
	var err error
	if ar.JWT == "" {
		ar.JWT = ar.NKey
	} else if ar.NKey != "" {
		return errf(codeBadRequest, "auth: give jwt or nkey, not both")
	}
	switch {
	case ar.JWT != "" && ar.Bearer != "":
		return errf(codeBadRequest, "auth: give either jwt (or nkey) and sig (nonce signing) or bearer, not both")
	case ar.JWT != "":
		if ar.Sig == "" {
			return errf(codeBadRequest, "auth: sig is required with jwt: the base64 signature of the hello nonce's bytes by the user's key")
		}
		sig, derr := decodeSig(ar.Sig)
		if derr != nil {
			return errf(codeBadRequest, "auth: sig is not base64")
		}
		if err = a.RateLimit(c.ip); err == nil {
			p, err = a.VerifyNonce(ar.JWT, c.nonce, sig)
		} else {
			return authError(err)
		}
	case ar.Bearer != "":
		if err = a.RateLimit(c.ip); err == nil {
			p, err = a.VerifyBearer(ar.Bearer)
		} else {
			return authError(err)
		}
	default:
		return errf(codeBadRequest, "auth: give jwt and sig (nonce signing) or bearer")
	}
	if err != nil {
		a.Failed(c.ip)
		c.s.opts.Logger.Info("websocket: authentication failed", "session", c.session, "ip", c.ip, "err", err)
		return authError(err)
	}
	if old := c.principal(); old != nil && principalKey(old) != principalKey(p) {
		return errf(codeForbidden, "auth: this connection is authenticated as %s; open a new connection for %s", userName(old), userName(p))
	}
	c.setSession(p)
	c.recheckSubscriptions()
	b := make([]byte, 0, 128)
	b = append(b, `{"type":"authenticated",`...)
	b = appendID(b, id)
	b = appendSessionFields(b, p)
	c.sendText(append(b, '}'))
	return nil
}

// appendSessionFields appends "user" and, when the token expires,
// "expires" (Unix ms) without a leading comma.
func appendSessionFields(b []byte, p *auth.Principal) []byte {
	b = append(b, `"user":`...)
	b = appendString(b, userName(p))
	if !p.Expires.IsZero() {
		b = append(b, `,"expires":`...)
		b = strconv.AppendInt(b, p.Expires.UnixMilli(), 10)
	}
	return b
}

// authError maps an error of the auth package to unauthorized; its text
// never holds secrets (the auth package's contract).
func authError(err error) *protoError {
	switch {
	case errors.Is(err, auth.ErrRateLimited):
		return errf(codeUnauthorized, "too many failed authentications from this address; retry later")
	case errors.Is(err, auth.ErrExpired):
		return errf(codeUnauthorized, "token expired")
	case errors.Is(err, auth.ErrRevoked):
		return errf(codeUnauthorized, "revoked")
	}
	if errors.Is(err, auth.ErrUnauthenticated) {
		return errf(codeUnauthorized, "%v", err) // "authentication failed: why"
	}
	return errf(codeUnauthorized, "authentication failed: %v", err)
}

// principalKey identifies a principal for re-authentication: its public
// key when it has one.
func principalKey(p *auth.Principal) string {
	if p.PublicKey != "" {
		return p.PublicKey
	}
	return p.Name
}

// setSession makes p the connection's identity and (re)arms its expiry.
func (c *conn) setSession(p *auth.Principal) {
	c.expMu.Lock()
	defer c.expMu.Unlock()
	c.sess.Store(&session{p: p})
	if c.expTimer != nil {
		c.expTimer.Stop()
		c.expTimer = nil
	}
	if c.authTimer != nil {
		c.authTimer.Stop()
		c.authTimer = nil
	}
	if !p.Expires.IsZero() {
		c.expTimer = time.AfterFunc(time.Until(p.Expires), func() {
			c.s.opts.Logger.Info("websocket: token expired, closing", "session", c.session, "user", userName(p))
			c.closeWith(CloseUnauthorized, "token expired")
		})
	}
}

// recheckSubscriptions ends (error forbidden with "sub") the
// subscriptions a refreshed token no longer allows.
func (c *conn) recheckSubscriptions() {
	c.mu.Lock()
	subs := make([]*subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	for _, s := range subs {
		perr := c.allow(auth.ConsumeTopic, s.topic)
		if perr == nil && s.grp != nil {
			perr = c.allow(auth.JoinGroup, s.grp.group)
		}
		if perr != nil {
			s.endWithError(perr)
		}
	}
}

// stopAuthTimers stops the expiry and authentication timers.
func (c *conn) stopAuthTimers() {
	c.expMu.Lock()
	defer c.expMu.Unlock()
	if c.expTimer != nil {
		c.expTimer.Stop()
	}
	if c.authTimer != nil {
		c.authTimer.Stop()
	}
}

// decodeSig accepts standard or URL-safe base64, padded or not.
func decodeSig(s string) ([]byte, error) {
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		var b []byte
		if b, err = enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, err
}

// revoke closes (4001) every connection whose identity id revokes: id is
// a user public key, a user name or the key of the issuer that signed
// the user's JWT (auth.Authenticator.OnRevoke).
func (s *Server) revoke(id string) {
	s.mu.Lock()
	var hit []*conn
	for c := range s.conns {
		if ss := c.sess.Load(); ss != nil && (ss.p.PublicKey == id || ss.p.Name == id || ss.p.Issuer == id) {
			hit = append(hit, c)
		}
	}
	s.mu.Unlock()
	for _, c := range hit {
		s.opts.Logger.Info("websocket: identity revoked, closing", "session", c.session, "user", userName(c.principal()), "revoked", id)
		c.closeWith(CloseUnauthorized, "revoked")
	}
}
