package samsa

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	gws "github.com/gorilla/websocket"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Credentials authenticate a connection (PROTOCOL.md §9). Set one of three
// forms:
//
//   - JWT and Seed: nonce signing. JWT is a user JWT (not a bearer one) and
//     Seed the user's nkey seed ("SU..."), which signs the nonce of each
//     connection's hello; the seed never leaves the process.
//   - Seed alone: a static nkey user of broker.toml ([[auth.users]] with an
//     nkey); the connection sends the seed's public key and the signature.
//   - Bearer: a bearer JWT, sent as is (for processes that hold no seed).
type Credentials struct {
	JWT    string
	Seed   string
	Bearer string
}

// AuthInfo is the identity a connection authenticated as.
type AuthInfo struct {
	// User is the user's public key, or a static user's name.
	User string
	// Expires is when the token expires (the server closes the
	// connection then, unless it was refreshed); zero: never.
	Expires time.Time
}

// ErrInvalidCredentials: the Credentials are malformed (no form set,
// several forms, a seed that is not a user seed). Dial fails with it
// before anything is sent.
var ErrInvalidCredentials = errors.New("samsa: invalid credentials")

// ParseCreds reads a NATS credentials file (the decorated JWT and seed
// that nsc writes) into nonce-signing Credentials.
func ParseCreds(data []byte) (Credentials, error) {
	tok, err := jwt.ParseDecoratedJWT(data)
	if err != nil {
		return Credentials{}, fmt.Errorf("%w: creds file: %w", ErrInvalidCredentials, err)
	}
	kp, err := jwt.ParseDecoratedNKey(data)
	if err != nil {
		return Credentials{}, fmt.Errorf("%w: creds file: %w", ErrInvalidCredentials, err)
	}
	defer kp.Wipe()
	seed, err := kp.Seed()
	if err != nil {
		return Credentials{}, fmt.Errorf("%w: creds file: %w", ErrInvalidCredentials, err)
	}
	return Credentials{JWT: tok, Seed: string(seed)}, nil
}

// authFrame appends the auth op for cr, signing nonce when cr holds a seed.
// Its errors never quote the credentials.
func (cr *Credentials) authFrame(b []byte, id uint32, nonce []byte) ([]byte, error) {
	tok, seed, bearer := strings.TrimSpace(cr.JWT), strings.TrimSpace(cr.Seed), strings.TrimSpace(cr.Bearer)
	b = append(b, `{"op":"auth","id":`...)
	b = strconv.AppendUint(b, uint64(id), 10)
	switch {
	case bearer != "" && (tok != "" || seed != ""):
		return nil, fmt.Errorf("%w: give a bearer JWT, or a JWT and its seed, or a static user's seed, not several", ErrInvalidCredentials)
	case bearer != "":
		b = append(b, `,"bearer":`...)
		b = appendJSONString(b, bearer)
		return append(b, '}'), nil
	case seed == "" && tok != "":
		return nil, fmt.Errorf("%w: a (non-bearer) JWT needs the user's seed to sign the nonce; a bearer JWT goes in Bearer", ErrInvalidCredentials)
	case seed == "":
		return nil, fmt.Errorf("%w: no JWT, seed or bearer JWT given", ErrInvalidCredentials)
	}
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return nil, fmt.Errorf("%w: the seed is not a valid nkey seed", ErrInvalidCredentials)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, fmt.Errorf("%w: the seed is not a user seed (SU...)", ErrInvalidCredentials)
	}
	if len(nonce) == 0 {
		return nil, errors.New("samsa: the server's hello has no nonce to sign")
	}
	sig, err := kp.Sign(nonce)
	if err != nil {
		return nil, fmt.Errorf("samsa: signing the nonce: %w", err)
	}
	if tok != "" {
		b = append(b, `,"jwt":`...)
		b = appendJSONString(b, tok)
	} else {
		b = append(b, `,"nkey":`...)
		b = appendJSONString(b, pub)
	}
	b = append(b, `,"sig":"`...)
	b = base64.StdEncoding.AppendEncode(b, sig)
	return append(b, `"}`...), nil
}

// credentials returns the credentials of a new authentication: from
// CredentialsFunc when set (bounded by ctx), else the static ones (nil:
// none).
func (c *Client) credentials(ctx context.Context) (*Credentials, error) {
	if fn := c.opts.CredentialsFunc; fn != nil {
		cr, err := fn(ctx)
		if err != nil {
			return nil, fmt.Errorf("samsa: getting credentials: %w", err)
		}
		return &cr, nil
	}
	return c.opts.Credentials, nil
}

// authTerminal reports whether err, from authenticating, means that
// trying again with the same means cannot help: the server refused the
// credentials (unauthorized, forbidden, bad_request) or they are
// malformed.
func authTerminal(err error) bool {
	return errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrForbidden) ||
		errors.Is(err, ErrBadRequest) || errors.Is(err, ErrInvalidCredentials)
}

// authenticateWS sends the auth op on a connection whose reader has not
// started (right after hello) and reads until its reply. Frames without
// the op's id (a cookie's "authenticated" or error) are skipped.
func (c *Client) authenticateWS(ctx context.Context, ws *gws.Conn, nonce []byte, deadline time.Time) (AuthInfo, error) {
	fctx, cancel := context.WithDeadline(ctx, deadline)
	cr, err := c.credentials(fctx)
	cancel()
	if err != nil || cr == nil {
		return AuthInfo{}, err
	}
	id := c.nextID.Add(1)
	frame, err := cr.authFrame(make([]byte, 0, 512), id, nonce)
	if err != nil {
		return AuthInfo{}, err
	}
	_ = ws.SetWriteDeadline(deadline)
	if err := ws.WriteMessage(gws.TextMessage, frame); err != nil {
		return AuthInfo{}, fmt.Errorf("sending auth: %w", closeErr(err))
	}
	_ = ws.SetReadDeadline(deadline)
	for {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			return AuthInfo{}, fmt.Errorf("waiting for the auth reply: %w", closeErr(err))
		}
		if mt != gws.TextMessage {
			continue
		}
		var e envelope
		if err := json.Unmarshal(data, &e); err != nil {
			return AuthInfo{}, fmt.Errorf("bad JSON from the server: %w", err)
		}
		if got, ok := parseID(e.ID); !ok || got != id {
			continue
		}
		switch e.Type {
		case "authenticated":
			return authInfoOf(&e), nil
		case "error":
			return AuthInfo{}, &Error{Code: Code(e.Code), Message: e.Message}
		}
		return AuthInfo{}, fmt.Errorf("reply %q to auth", e.Type)
	}
}

func authInfoOf(e *envelope) AuthInfo {
	ai := AuthInfo{User: e.User}
	if e.Expires > 0 {
		ai.Expires = time.UnixMilli(e.Expires)
	}
	return ai
}

// AuthInfo is the identity of the current connection (zero while
// disconnected, or when the server does not require authentication).
func (c *Client) AuthInfo() AuthInfo {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return AuthInfo{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auth
}

// refreshFraction is the part of a token's lifetime after which the client
// asks CredentialsFunc for a fresh one.
const refreshFraction = 0.9

// refreshLoop re-authenticates s with fresh credentials at 90% of each
// token's lifetime (lifetime counted from the authentication, on the
// local clock) until s ends. A failed refresh is retried at half of the
// time left; when the token runs out the server closes the connection
// with 4001 and the client reconnects through CredentialsFunc.
func (s *session) refreshLoop(authAt time.Time) {
	c := s.c
	for {
		s.mu.Lock()
		exp := s.auth.Expires
		s.mu.Unlock()
		if exp.IsZero() {
			return
		}
		wait := time.Duration(float64(exp.Sub(authAt)) * refreshFraction)
		wait -= time.Since(authAt)
		for {
			if !s.sleep(wait) {
				return
			}
			now := time.Now()
			err := s.refresh(exp)
			if err == nil {
				authAt = now
				break
			}
			left := time.Until(exp)
			c.log.Warn("samsa: refreshing the credentials failed", "err", err, "session", s.id, "expires_in", left)
			if left < 20*time.Millisecond {
				return // the server closes with 4001; the client reconnects
			}
			wait = left / 2
		}
	}
}

// sleep waits d, or returns false when the session or the client ends.
func (s *session) sleep(d time.Duration) bool {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	case <-s.c.ctx.Done():
		return false
	}
}

// refresh sends an auth op with fresh credentials on the live connection,
// waiting at most until the token expires.
func (s *session) refresh(exp time.Time) error {
	ctx, cancel := context.WithDeadline(s.c.ctx, exp)
	defer cancel()
	cr, err := s.c.credentials(ctx)
	if err != nil {
		return err
	}
	if cr == nil {
		return errors.New("samsa: CredentialsFunc returned no credentials")
	}
	var ferr error
	e, err := s.request(ctx, func(b []byte, id uint32) []byte {
		f, err := cr.authFrame(b, id, s.nonce)
		if err != nil {
			ferr = err
			return nil
		}
		return f
	})
	if ferr != nil {
		return ferr
	}
	if err != nil {
		return err
	}
	if e.Type != "authenticated" {
		return fmt.Errorf("reply %q to auth", e.Type)
	}
	ai := authInfoOf(e)
	s.mu.Lock()
	s.auth = ai
	s.mu.Unlock()
	s.c.log.Debug("samsa: credentials refreshed", "session", s.id, "user", ai.User, "expires", ai.Expires)
	return nil
}

// request sends the request built by build on s (a nil frame sends
// nothing) and waits for its reply, without retrying on another
// connection.
func (s *session) request(ctx context.Context, build func(b []byte, id uint32) []byte) (*envelope, error) {
	ch := make(chan reply, 1)
	id := s.c.nextID.Add(1)
	frame := build(nil, id)
	if frame == nil {
		return nil, nil
	}
	if !s.register(id, &call{fn: func(e *envelope, err error) { ch <- reply{e, err} }}) {
		return nil, ErrDisconnected
	}
	_ = s.writeText(frame) // on failure the reader fails the call
	select {
	case r := <-ch:
		return r.env, r.err
	case <-ctx.Done():
		s.unregister(id)
		return nil, ctx.Err()
	}
}
