package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// FuzzVerifyJWT feeds arbitrary tokens to the verifiers: they never panic,
// and nothing but the exact tokens the issuer signed ever verifies.
func FuzzVerifyJWT(f *testing.F) {
	fx := newFixture(f)
	u := newUser(f)
	valid := map[string]bool{}
	add := func(tok string) {
		valid[tok] = true
		f.Add(tok, []byte("nonce"), []byte{})
	}
	add(fx.issue(f, u.pub, Permissions{Produce: []string{"a.>"}, Groups: []string{"g"}, Admin: true}, time.Hour, true))
	add(fx.issue(f, u.pub, Permissions{Consume: []string{"*"}}, 0, false))
	acct, _ := nkeys.FromSeed([]byte(fx.issuerSeed))
	add(encodeWith(f, acct, u.pub, func(uc *jwt.UserClaims) { uc.Tags = append(uc.Tags, "samsa:group:x") }))
	nonce := []byte("0123456789")
	sig, _ := u.kp.Sign(nonce)
	for tok := range valid {
		f.Add(tok, nonce, sig)
		parts := strings.Split(tok, ".")
		f.Add(parts[0]+"."+parts[1]+".", nonce, sig)
		f.Add(tok+"=", nonce, sig)
		f.Add(strings.ToUpper(tok), nonce, sig)
	}
	f.Add("", []byte{}, []byte{})
	f.Add("a.b.c", []byte("x"), []byte("y"))
	f.Add(u.pub, nonce, sig)
	f.Add("eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.", []byte("x"), []byte("y"))
	f.Fuzz(func(t *testing.T, tok string, nonce, sig []byte) {
		p1, err1 := fx.a.VerifyJWT(tok)
		p2, err2 := fx.a.VerifyBearer(tok)
		_, err3 := fx.a.VerifyNonce(tok, nonce, sig)
		if valid[tok] {
			if err1 != nil {
				t.Fatalf("a signed token failed: %v", err1)
			}
			return
		}
		if err1 == nil || err2 == nil {
			t.Fatalf("an unsigned token verified: %q: %+v %+v", tok, p1, p2)
		}
		if err3 == nil {
			t.Fatalf("VerifyNonce accepted %q", tok)
		}
		for _, err := range []error{err1, err2, err3} {
			if err != nil && len(tok) > 40 && !nkeys.IsValidPublicKey(tok) && strings.Contains(err.Error(), tok) {
				t.Fatalf("the error quotes the token: %v", err)
			}
		}
	})
}
