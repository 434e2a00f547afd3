package http

// Authentication of the HTTP listener when [auth] is on: the admin API
// (/api/v1) and /debug/pprof take
//
//	Authorization: Bearer <bearer JWT>
//	Authorization: Basic <user:password>   (a static or SCRAM user)
//
// A request without valid credentials gets 401 {"error", "code":
// "unauthorized"} with WWW-Authenticate; one whose principal lacks the
// permission gets 403 {"error", "code": "forbidden"}. The filter and
// binding reads need the filters or admin permission, their writes the
// filters permission (admin implies it), /debug/pprof admin. /healthz and
// /ws (which authenticates its own way) stay open.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/samsa-broker/samsa/auth"
)

// WithAuth requires authentication on the admin API and /debug/pprof
// when a is enabled (nil or disabled: everything is open, as with auth
// off).
func WithAuth(a *auth.Authenticator) Option {
	return func(o *handlerOptions) { o.auth = a }
}

type principalKey struct{}

// PrincipalFrom returns the authenticated principal of an admin API
// request; nil when auth is off.
func PrincipalFrom(ctx context.Context) *auth.Principal {
	p, _ := ctx.Value(principalKey{}).(*auth.Principal)
	return p
}

// gate authenticates requests.
type gate struct {
	a      *auth.Authenticator
	logger *slog.Logger
}

func newGate(a *auth.Authenticator, logger *slog.Logger) *gate {
	if a == nil || !a.Enabled() {
		return nil
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &gate{a: a, logger: logger}
}

// authenticate returns the principal of r's credentials, or answers 401
// and returns nil (also when the client IP is over its failed-attempt
// limit, with Retry-After).
func (g *gate) authenticate(w http.ResponseWriter, r *http.Request) *auth.Principal {
	ip := remoteIP(r)
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	if h == "" || cred == "" {
		unauthorized(w, "authentication required: send Authorization: Bearer with a bearer JWT, or HTTP Basic credentials")
		return nil
	}
	if err := g.a.RateLimit(ip); err != nil {
		w.Header().Set("Retry-After", "60")
		unauthorized(w, "too many failed authentications from this address; retry later")
		return nil
	}
	var p *auth.Principal
	var err error
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		p, err = g.a.VerifyBearer(cred)
	case strings.EqualFold(scheme, "Basic"):
		user, pw, ok := r.BasicAuth()
		if !ok {
			unauthorized(w, "malformed Basic credentials")
			return nil
		}
		p, err = g.a.Plain(user, pw)
	default:
		unauthorized(w, fmt.Sprintf("unsupported authorization scheme %q: use Bearer or Basic", scheme))
		return nil
	}
	if err != nil {
		g.a.Failed(ip)
		g.logger.Info("authentication failed", "method", r.Method, "path", r.URL.Path, "ip", ip, "err", err)
		msg := err.Error() // "authentication failed: why", never a secret
		if !errors.Is(err, auth.ErrUnauthenticated) {
			msg = "authentication failed: " + msg
		}
		unauthorized(w, msg)
		return nil
	}
	return p
}

// require wraps h: authenticated, and allowed when check says so (what
// names the permission in the 403).
func (g *gate) require(what string, check func(p *auth.Principal, r *http.Request) bool, h http.Handler) http.Handler {
	if g == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := PrincipalFrom(r.Context())
		if p == nil {
			if p = g.authenticate(w, r); p == nil {
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		}
		if check != nil && !check(p, r) {
			writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("%s lacks the %s permission", principalName(p), what))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Add("WWW-Authenticate", `Bearer realm="samsa"`)
	w.Header().Add("WWW-Authenticate", `Basic realm="samsa", charset="UTF-8"`)
	writeError(w, http.StatusUnauthorized, "unauthorized", msg)
}

func principalName(p *auth.Principal) string {
	if p.Name != "" {
		return p.Name
	}
	return p.PublicKey
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Permission checks of the admin API.

func canReadFilters(p *auth.Principal, _ *http.Request) bool {
	return p.Allowed(auth.ClusterAdmin, "") || p.Allowed(auth.DeployFilter, "") || p.Allowed(auth.BindFilter, "")
}

func canDeployFilter(p *auth.Principal, r *http.Request) bool {
	return p.Allowed(auth.DeployFilter, r.PathValue("name"))
}

func canBind(p *auth.Principal, r *http.Request) bool {
	return p.Allowed(auth.BindFilter, r.PathValue("id"))
}

func isAdmin(p *auth.Principal, _ *http.Request) bool { return p.Allowed(auth.ClusterAdmin, "") }
