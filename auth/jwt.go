package auth

import (
	"crypto/sha512"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// User JWTs are nats-io/jwt/v2 UserClaims, so NATS tooling (nsc) can issue
// them too:
//
//   - sub: the user's public nkey ("U...");
//   - iss: a trusted issuer (Config.Issuers); nats.issuer_account, when set
//     (a JWT signed by an account signing key), must be trusted as well;
//   - nats.pub.allow / nats.pub.deny: produce topic patterns;
//   - nats.sub.allow / nats.sub.deny: consume topic patterns;
//   - nats.tags: "samsa:group:<pattern>", "samsa:admin", "samsa:filters"
//     (the "samsa:..." prefix is matched case-insensitively; the pattern
//     keeps its case, but note that nsc lowercases tags);
//   - nats.bearer_token: a bearer token (no nonce signing);
//   - exp, nbf: as usual; name: for display.
//
// Unlike NATS, an empty allow list allows nothing.

const (
	tagGroup   = "samsa:group:"
	tagAdmin   = "samsa:admin"
	tagFilters = "samsa:filters"

	algNKey = jwt.AlgorithmNkey // "ed25519-nkey": v2, signs header.payload
	// maxTokenLen bounds the size of a token we look at.
	maxTokenLen = 64 << 10
)

var b64url = base64.RawURLEncoding

// VerifyJWT verifies a user JWT: its signature by a trusted issuer, exp and
// nbf, and that neither the user nor the issuer is revoked. It accepts
// bearer and non-bearer tokens alike (Kafka OAUTHBEARER); the principal's
// Mechanism is "OAUTHBEARER".
func (a *Authenticator) VerifyJWT(token string) (*Principal, error) {
	p, err := a.verifyJWT(token)
	if err != nil {
		return nil, err
	}
	p.Mechanism = MechOAuthBearer
	return p, nil
}

// VerifyBearer verifies a bearer JWT (nats.bearer_token set) as VerifyJWT
// does, and refuses a non-bearer one: its holder must prove its key with
// VerifyNonce.
func (a *Authenticator) VerifyBearer(token string) (*Principal, error) {
	p, err := a.verifyJWT(token)
	if err != nil {
		return nil, err
	}
	if !p.Bearer {
		return nil, unauth("user %s: the token is not a bearer token; sign the nonce with the user's key instead", p.PublicKey)
	}
	p.Mechanism = MechBearer
	return p, nil
}

// VerifyNonce verifies that sig is the ed25519 signature of nonce by the
// user's key. token is the user's (non-bearer) JWT, whose sub names the
// key; or the public key ("U...") of a static user with an nkey, whose
// permissions then come from the configuration.
func (a *Authenticator) VerifyNonce(token string, nonce, sig []byte) (*Principal, error) {
	if len(nonce) == 0 {
		return nil, unauth("no nonce to verify")
	}
	var p *Principal
	if nkeys.IsValidPublicUserKey(token) {
		u := a.byNKey[token]
		if u == nil {
			return nil, unauth("user %s is not a configured user; present a JWT", token)
		}
		p = staticPrincipal(u, MechNKey)
		if a.revokedPrincipal(p) {
			return nil, fmt.Errorf("%w: user %s", ErrRevoked, token)
		}
	} else {
		var err error
		if p, err = a.verifyJWT(token); err != nil {
			return nil, err
		}
		if p.Bearer {
			return nil, unauth("user %s: a bearer token cannot be used with nonce signing", p.PublicKey)
		}
		p.Mechanism = MechNKey
	}
	kp, err := nkeys.FromPublicKey(p.PublicKey)
	if err != nil {
		return nil, unauth("user %s: bad public key", p.PublicKey)
	}
	if err := kp.Verify(nonce, sig); err != nil {
		return nil, unauth("user %s: the nonce signature does not verify", p.PublicKey)
	}
	return p, nil
}

type jwtHeader struct {
	Type string `json:"typ"`
	Alg  string `json:"alg"`
}

// verifyJWT checks token and returns its principal, without Mechanism.
func (a *Authenticator) verifyJWT(token string) (*Principal, error) {
	if len(token) > maxTokenLen {
		return nil, unauth("token too large")
	}
	h64, rest, ok1 := strings.Cut(token, ".")
	c64, s64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s64, ".") {
		return nil, unauth("not a JWT")
	}
	hb, err := decodeB64URL(h64)
	if err != nil {
		return nil, unauth("not a JWT: bad header encoding")
	}
	var h jwtHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, unauth("not a JWT: bad header")
	}
	if !strings.EqualFold(h.Type, "JWT") || !strings.EqualFold(h.Alg, algNKey) {
		return nil, unauth("unsupported JWT type or algorithm (want a nats v2 user JWT, alg %s)", algNKey)
	}
	cb, err := decodeB64URL(c64)
	if err != nil {
		return nil, unauth("not a JWT: bad claims encoding")
	}
	sig, err := decodeB64URL(s64)
	if err != nil {
		return nil, unauth("not a JWT: bad signature encoding")
	}
	var uc jwt.UserClaims
	if err := json.Unmarshal(cb, &uc); err != nil {
		return nil, unauth("not a JWT: bad claims")
	}
	if uc.User.Type != jwt.UserClaim || uc.User.Version != 2 {
		return nil, unauth("not a nats v2 user JWT")
	}
	iss := uc.Issuer
	if !nkeys.IsValidPublicOperatorKey(iss) && !nkeys.IsValidPublicAccountKey(iss) {
		return nil, unauth("the issuer is not an operator or account public key")
	}
	if !a.issuers[iss] {
		return nil, unauth("untrusted issuer %s", iss)
	}
	if acc := uc.IssuerAccount; acc != "" && !a.issuers[acc] {
		return nil, unauth("untrusted issuer account %s", showKey(acc))
	}
	kp, err := nkeys.FromPublicKey(iss)
	if err != nil {
		return nil, unauth("the issuer is not a public key")
	}
	if err := kp.Verify([]byte(token[:len(h64)+1+len(c64)]), sig); err != nil {
		return nil, unauth("the JWT signature does not verify")
	}
	sub := uc.Subject
	if !nkeys.IsValidPublicUserKey(sub) {
		return nil, unauth("the JWT subject is not a user public key")
	}
	now := a.now()
	if uc.Expires > 0 && now.Unix() >= uc.Expires {
		return nil, fmt.Errorf("%w: user %s", ErrExpired, sub)
	}
	if uc.NotBefore > 0 && now.Unix() < uc.NotBefore {
		return nil, unauth("user %s: the token is not valid yet", sub)
	}
	p := &Principal{
		Name:      sub,
		PublicKey: sub,
		Bearer:    uc.BearerToken,
		Issuer:    iss,
		JWTName:   uc.Name,
		Perms:     permsFromClaims(&uc),
	}
	if uc.Expires > 0 {
		p.Expires = time.Unix(uc.Expires, 0)
	}
	if what, msg := p.Perms.validate(); what != "" {
		return nil, unauth("user %s: %s: %s", sub, what, msg)
	}
	if a.Revoked(sub) || a.Revoked(iss) || (uc.IssuerAccount != "" && a.Revoked(uc.IssuerAccount)) {
		return nil, fmt.Errorf("%w: user %s", ErrRevoked, sub)
	}
	return p, nil
}

// decodeB64URL decodes unpadded base64url strictly (no padding, no line
// breaks, no stray bits), so that a token has one encoding only.
func decodeB64URL(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n=") {
		return nil, errors.New("non-canonical base64")
	}
	return b64url.Strict().DecodeString(s)
}

func permsFromClaims(uc *jwt.UserClaims) Permissions {
	var p Permissions
	p.Produce = append(p.Produce, uc.Pub.Allow...)
	p.ProduceDeny = append(p.ProduceDeny, uc.Pub.Deny...)
	p.Consume = append(p.Consume, uc.Sub.Allow...)
	p.ConsumeDeny = append(p.ConsumeDeny, uc.Sub.Deny...)
	for _, t := range uc.Tags {
		t = strings.TrimSpace(t)
		lt := strings.ToLower(t)
		switch {
		case lt == tagAdmin:
			p.Admin = true
		case lt == tagFilters:
			p.Filters = true
		case strings.HasPrefix(lt, tagGroup):
			p.Groups = append(p.Groups, t[len(tagGroup):])
		}
	}
	return p
}

// NewIssuer creates an issuer key pair: an account key ("A..."), which
// signs user JWTs exactly as NATS accounts do. List pub in Config.Issuers
// and keep seed secret.
func NewIssuer() (seed, pub string, err error) {
	return newPair(nkeys.CreateAccount)
}

// NewOperatorIssuer creates an operator key pair ("O..."). User JWTs signed
// directly by an operator key are samsa's extension of the NATS format
// (NATS itself wants account-signed user JWTs).
func NewOperatorIssuer() (seed, pub string, err error) {
	return newPair(nkeys.CreateOperator)
}

// NewUserKey creates a user key pair ("U...").
func NewUserKey() (seed, pub string, err error) {
	return newPair(nkeys.CreateUser)
}

func newPair(create func() (nkeys.KeyPair, error)) (string, string, error) {
	kp, err := create()
	if err != nil {
		return "", "", fmt.Errorf("creating a key pair: %w", err)
	}
	defer kp.Wipe()
	s, err := kp.Seed()
	if err != nil {
		return "", "", fmt.Errorf("creating a key pair: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", "", fmt.Errorf("creating a key pair: %w", err)
	}
	return string(s), pub, nil
}

// PublicKeyOf returns the public key of a seed ("S..."); decorated NATS
// credential files are accepted too.
func PublicKeyOf(seed string) (string, error) {
	kp, err := keyPairFromSeed(seed)
	if err != nil {
		return "", err
	}
	defer kp.Wipe()
	return kp.PublicKey()
}

// keyPairFromSeed parses a seed, plain or in a decorated creds file. Its
// errors never quote the input.
func keyPairFromSeed(seed string) (nkeys.KeyPair, error) {
	s := strings.TrimSpace(seed)
	if strings.Contains(s, "-----") {
		kp, err := jwt.ParseDecoratedNKey([]byte(s))
		if err != nil || kp == nil {
			return nil, errors.New("no nkey seed found in the decorated file")
		}
		return kp, nil
	}
	kp, err := nkeys.FromSeed([]byte(s))
	if err != nil {
		return nil, errors.New("not a valid nkey seed")
	}
	return kp, nil
}

// IssueUserJWT signs a user JWT for userPub with the issuer's seed (an
// account or operator seed). expires <= 0 issues a token that never
// expires; name is for display.
func IssueUserJWT(issuerSeed string, userPub string, perms Permissions, expires time.Duration, bearer bool, name string) (string, error) {
	if !nkeys.IsValidPublicUserKey(userPub) {
		return "", fmt.Errorf("the user key %s is not a user public nkey (U...)", showKey(userPub))
	}
	if what, msg := perms.validate(); what != "" {
		return "", fmt.Errorf("%s: %s", what, msg)
	}
	kp, err := keyPairFromSeed(issuerSeed)
	if err != nil {
		return "", fmt.Errorf("issuer seed: %w", err)
	}
	defer kp.Wipe()
	issPub, err := kp.PublicKey()
	if err != nil {
		return "", fmt.Errorf("issuer seed: %w", err)
	}
	uc := jwt.NewUserClaims(userPub)
	uc.Name = name
	if expires > 0 {
		uc.Expires = time.Now().Add(expires).Unix()
	}
	uc.BearerToken = bearer
	uc.Pub.Allow = append(jwt.StringList(nil), perms.Produce...)
	uc.Pub.Deny = append(jwt.StringList(nil), perms.ProduceDeny...)
	uc.Sub.Allow = append(jwt.StringList(nil), perms.Consume...)
	uc.Sub.Deny = append(jwt.StringList(nil), perms.ConsumeDeny...)
	// Appended rather than TagList.Add, which lowercases: topic and group
	// names are case-sensitive.
	for _, g := range perms.Groups {
		uc.Tags = append(uc.Tags, tagGroup+g)
	}
	if perms.Admin {
		uc.Tags = append(uc.Tags, tagAdmin)
	}
	if perms.Filters {
		uc.Tags = append(uc.Tags, tagFilters)
	}
	switch {
	case nkeys.IsValidPublicAccountKey(issPub):
		tok, err := uc.Encode(kp)
		if err != nil {
			return "", fmt.Errorf("signing the JWT: %w", err)
		}
		return tok, nil
	case nkeys.IsValidPublicOperatorKey(issPub):
		return encodeOperatorSigned(uc, kp, issPub)
	}
	return "", errors.New("the issuer seed is not an operator or account seed")
}

// encodeOperatorSigned encodes uc as jwt.UserClaims.Encode would, signed by
// an operator key (which that library refuses for user claims).
func encodeOperatorSigned(uc *jwt.UserClaims, kp nkeys.KeyPair, issPub string) (string, error) {
	uc.Issuer = issPub
	uc.IssuedAt = time.Now().Unix()
	uc.ID = ""
	cd, err := json.Marshal(&uc.ClaimsData)
	if err != nil {
		return "", err
	}
	sum := sha512.Sum512_256(cd)
	uc.ID = base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:])
	uc.User.Type = jwt.UserClaim
	uc.User.Version = 2
	hb, err := json.Marshal(jwtHeader{Type: "JWT", Alg: algNKey})
	if err != nil {
		return "", err
	}
	cb, err := json.Marshal(uc)
	if err != nil {
		return "", err
	}
	toSign := b64url.EncodeToString(hb) + "." + b64url.EncodeToString(cb)
	sig, err := kp.Sign([]byte(toSign))
	if err != nil {
		return "", fmt.Errorf("signing the JWT: %w", err)
	}
	return toSign + "." + b64url.EncodeToString(sig), nil
}
