// Package auth authenticates and authorizes samsa clients.
//
// Identities are nkeys (ed25519 keys in NATS encoding). A user proves who it
// is with a user JWT (nats-io/jwt/v2 UserClaims) signed by a trusted issuer,
// either by signing a server nonce with its seed (VerifyNonce) or by
// presenting a bearer JWT (VerifyBearer, and OAUTHBEARER over Kafka via
// VerifyJWT). Conventional clients use passwords: static users with a
// PBKDF2-SHA256 hash (Plain) and SCRAM-SHA-256/512 users whose credentials
// live in a JSON file (ScramServer, Plain). Permissions are topic and group
// patterns in NATS subject syntax plus the admin and filters flags.
//
// No secret (seed, password, token, salted key) ever appears in a log line
// or in an error string: errors name the user or public key only.
package auth

import (
	"strings"
	"time"
)

// Permissions say what a principal may do. Topic and group patterns use
// NATS subject syntax on '.'-separated tokens: '*' matches exactly one
// token, '>' (only as the last token) matches one or more trailing tokens,
// and any other token matches itself exactly ("app-*" is the literal name
// "app-*"). An empty list allows nothing.
type Permissions struct {
	Produce []string `json:"produce,omitempty"` // topic patterns
	Consume []string `json:"consume,omitempty"` // topic patterns (consume implies describe)
	Groups  []string `json:"groups,omitempty"`  // consumer group patterns
	Admin   bool     `json:"admin,omitempty"`   // cluster admin: topics, configs, users, DeleteRecords, DeleteGroups; implies every other permission
	Filters bool     `json:"filters,omitempty"` // deploy/remove filters, bind/unbind

	// ProduceDeny and ConsumeDeny come from the Deny lists of a JWT's pub and
	// sub permissions (NATS tooling can write them): a topic matching one is
	// refused even when an allow pattern matches. Static users leave them
	// empty.
	ProduceDeny []string `json:"produce_deny,omitempty"`
	ConsumeDeny []string `json:"consume_deny,omitempty"`
}

// Action is something a principal may be allowed to do on a resource.
type Action uint8

// The actions. The resource of topic actions is the topic name, of group
// actions the group id, of DeployFilter the filter name, of BindFilter the
// binding; ClusterAdmin ignores it.
const (
	ProduceTopic    Action = iota + 1 // Produce patterns
	ConsumeTopic                      // Consume patterns
	DescribeTopic                     // Produce or Consume patterns (a producer needs the topic's metadata)
	CreateTopic                       // Admin (CreateTopics)
	AutoCreateTopic                   // Produce patterns: a topic is created on first use by whoever may write to it
	DeleteTopic                       // Admin
	AlterTopic                        // Admin (configs, partitions, DeleteRecords)
	JoinGroup                         // Groups patterns: join, sync, heartbeat, leave, commit, fetch offsets
	DescribeGroup                     // Groups patterns
	DeleteGroup                       // Admin
	DeployFilter                      // Filters
	BindFilter                        // Filters
	ClusterAdmin                      // Admin: users, broker configs, everything
)

var actionNames = [...]string{
	ProduceTopic: "produce", ConsumeTopic: "consume", DescribeTopic: "describe topic",
	CreateTopic: "create topic", AutoCreateTopic: "auto-create topic", DeleteTopic: "delete topic", AlterTopic: "alter topic",
	JoinGroup: "join group", DescribeGroup: "describe group", DeleteGroup: "delete group",
	DeployFilter: "deploy filter", BindFilter: "bind filter", ClusterAdmin: "cluster admin",
}

func (a Action) String() string {
	if int(a) < len(actionNames) && actionNames[a] != "" {
		return actionNames[a]
	}
	return "unknown action"
}

// The mechanisms a Principal may carry.
const (
	MechPlain       = "PLAIN"
	MechScramSHA256 = "SCRAM-SHA-256"
	MechScramSHA512 = "SCRAM-SHA-512"
	MechOAuthBearer = "OAUTHBEARER" // VerifyJWT
	MechNKey        = "NKEY"        // VerifyNonce
	MechBearer      = "BEARER"      // VerifyBearer
	MechAnonymous   = "ANONYMOUS"
)

// Principal is an authenticated identity.
type Principal struct {
	Name      string // user name (static users, SCRAM/PLAIN) or the user's public nkey (JWT)
	PublicKey string // "U..." nkey when known
	Perms     Permissions
	Expires   time.Time // zero: never (static users); JWT exp otherwise
	Bearer    bool      // the JWT was a bearer token
	Mechanism string    // "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "NKEY", "BEARER", "ANONYMOUS"

	// Issuer is the public key that signed the JWT ("" for static and
	// SCRAM users); JWTName is the JWT's name claim, for display only.
	Issuer  string
	JWTName string
}

// Anonymous is the principal of a connection when auth is off: it may do
// everything.
func Anonymous() *Principal {
	return &Principal{
		Name:      "anonymous",
		Mechanism: MechAnonymous,
		Perms: Permissions{
			Produce: []string{">"}, Consume: []string{">"}, Groups: []string{">"},
			Admin: true, Filters: true,
		},
	}
}

// Allowed reports whether p may do a on resource. A nil Principal (auth
// off) allows everything. Allowed does not look at Expires: transports
// close connections whose principal expired.
func (p *Principal) Allowed(a Action, resource string) bool {
	if p == nil {
		return true
	}
	return p.Perms.Allows(a, resource)
}

// Allows reports whether the permissions allow a on resource.
func (ps *Permissions) Allows(a Action, resource string) bool {
	if ps.Admin {
		return a >= ProduceTopic && a <= ClusterAdmin
	}
	switch a {
	case ProduceTopic, AutoCreateTopic:
		return matchList(ps.Produce, ps.ProduceDeny, resource)
	case ConsumeTopic:
		return matchList(ps.Consume, ps.ConsumeDeny, resource)
	case DescribeTopic:
		return matchList(ps.Consume, ps.ConsumeDeny, resource) || matchList(ps.Produce, ps.ProduceDeny, resource)
	case JoinGroup, DescribeGroup:
		return matchList(ps.Groups, nil, resource)
	case DeployFilter, BindFilter:
		return ps.Filters
	}
	return false
}

func matchList(allow, deny []string, s string) bool {
	for _, d := range deny {
		if MatchPattern(d, s) {
			return false
		}
	}
	for _, a := range allow {
		if MatchPattern(a, s) {
			return true
		}
	}
	return false
}

// MatchPattern reports whether name matches pattern. Both are split on '.';
// a pattern token '*' matches any one token, a last pattern token '>'
// matches one or more remaining tokens, every other token must be equal.
// A pattern with '>' before its last token (invalid) matches nothing.
func MatchPattern(pattern, name string) bool {
	for {
		pt, prest, pmore := strings.Cut(pattern, ".")
		nt, nrest, nmore := strings.Cut(name, ".")
		switch {
		case pt == ">":
			return !pmore // matches this token and everything after it
		case pt != "*" && pt != nt:
			return false
		}
		if pmore != nmore {
			return false
		}
		if !pmore {
			return true
		}
		pattern, name = prest, nrest
	}
}

// ValidPattern returns a description of what is wrong with pattern, or ""
// when it is valid: non-empty, no empty tokens, '*' and '>' only as whole
// tokens, '>' only last, no whitespace.
func ValidPattern(pattern string) string {
	if pattern == "" {
		return "empty pattern"
	}
	toks := strings.Split(pattern, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return "empty token (a leading, trailing or doubled '.')"
		case t == ">" && i != len(toks)-1:
			return "'>' must be the last token"
		case t != "*" && t != ">" && strings.ContainsAny(t, "*> \t\r\n"):
			return "'*' and '>' must be whole tokens; no whitespace"
		}
	}
	return ""
}

func (ps *Permissions) validate() (string, string) {
	for _, l := range []struct {
		what string
		pats []string
	}{{"produce", ps.Produce}, {"consume", ps.Consume}, {"groups", ps.Groups}, {"produce deny", ps.ProduceDeny}, {"consume deny", ps.ConsumeDeny}} {
		for _, p := range l.pats {
			if msg := ValidPattern(p); msg != "" {
				return l.what + " pattern " + quote(p), msg
			}
		}
	}
	return "", ""
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return "\"" + strings.ToValidUTF8(s, "?") + "\""
}

// showKey quotes a value given where a public key belongs, unless it looks
// like a seed ("S..."), which must never be echoed.
func showKey(s string) string {
	if strings.HasPrefix(strings.TrimSpace(s), "S") {
		return "(a value that looks like a seed, not shown)"
	}
	return quote(s)
}
