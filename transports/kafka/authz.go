package kafka

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/samsa-broker/samsa/auth"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Authorization: every handler asks allowed before acting on a topic, group
// or the cluster, and answers TOPIC_AUTHORIZATION_FAILED (29),
// GROUP_AUTHORIZATION_FAILED (30) or CLUSTER_AUTHORIZATION_FAILED (31)
// where Kafka does. With auth off everything is allowed.

// allowed reports whether the connection's principal may do a on resource.
func (c *conn) allowed(a auth.Action, resource string) bool {
	if !c.s.authOn() {
		return true
	}
	p := c.sasl.principal.Load()
	return p != nil && p.Allowed(a, resource)
}

var (
	codeTopicAuth   = kerr.TopicAuthorizationFailed.Code
	codeGroupAuth   = kerr.GroupAuthorizationFailed.Code
	codeClusterAuth = kerr.ClusterAuthorizationFailed.Code
)

// topicDenied is the error of a topic operation the principal may not do.
func topicDenied(a auth.Action, topic string) error {
	return codeErrorf(codeTopicAuth, "not authorized to %s topic %q", a, topic)
}

// clusterDenied is the error of a cluster operation without admin.
func clusterDenied(what string) error {
	return codeErrorf(codeClusterAuth, "not authorized to %s: needs admin", what)
}

// scramMechanism maps Kafka's ScramMechanism enum (1: SHA-256, 2: SHA-512).
func scramMechanism(m int8) (string, bool) {
	switch m {
	case 1:
		return auth.MechScramSHA256, true
	case 2:
		return auth.MechScramSHA512, true
	}
	return "", false
}

func scramMechanismCode(name string) int8 {
	switch name {
	case auth.MechScramSHA256:
		return 1
	case auth.MechScramSHA512:
		return 2
	}
	return 0
}

// scramCode maps an auth package SCRAM error to its Kafka code.
func scramCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, auth.ErrUnacceptableCredential):
		return kerr.UnacceptableCredential.Code
	case errors.Is(err, auth.ErrNoCredential):
		return kerr.ResourceNotFound.Code
	case errors.Is(err, auth.ErrUnsupportedMechanism):
		return kerr.UnsupportedSaslMechanism.Code
	}
	var ce *codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	return kerr.UnknownServerError.Code
}

// handleDescribeScram lists SCRAM credentials (mechanisms and iterations,
// never keys). Admin only.
func handleDescribeScram(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.DescribeUserSCRAMCredentialsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if !c.allowed(auth.ClusterAdmin, "") {
		resp.ErrorCode = codeClusterAuth
		resp.ErrorMessage = ptr("not authorized to describe SCRAM credentials: needs admin")
		return reply{resp: resp}
	}
	a := c.s.opts.Auth
	addResult := func(user string, infos []auth.ScramCredentialInfo, code int16, msg string) {
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User, r.ErrorCode = user, code
		if msg != "" {
			r.ErrorMessage = ptr(msg)
		}
		for _, in := range infos {
			ci := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
			ci.Mechanism, ci.Iterations = scramMechanismCode(in.Mechanism), int32(in.Iterations)
			r.CredentialInfos = append(r.CredentialInfos, ci)
		}
		resp.Results = append(resp.Results, r)
	}
	if len(req.Users) == 0 {
		// Null or empty: every user with credentials.
		all := a.DescribeScram()
		for _, user := range slices.Sorted(maps.Keys(all)) {
			addResult(user, all[user], 0, "")
		}
		return reply{resp: resp}
	}
	names := make([]string, 0, len(req.Users))
	count := map[string]int{}
	for _, u := range req.Users {
		names = append(names, u.Name)
		count[u.Name]++
	}
	found := a.DescribeScram(names...)
	reported := map[string]bool{}
	for _, user := range names {
		if reported[user] {
			continue
		}
		reported[user] = true
		switch {
		case count[user] > 1:
			addResult(user, nil, kerr.DuplicateResource.Code, "user listed more than once")
		case len(found[user]) == 0:
			addResult(user, nil, kerr.ResourceNotFound.Code, fmt.Sprintf("user %q has no SCRAM credentials", user))
		default:
			addResult(user, found[user], 0, "")
		}
	}
	return reply{resp: resp}
}

// handleAlterScram upserts and deletes SCRAM credentials (the client sends
// the salted password, never the password). Admin only. One result per
// user: the first error of its operations.
func handleAlterScram(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.AlterUserSCRAMCredentialsRequest)
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	var order []string
	errs := map[string]error{}
	seen := map[string]bool{}
	touch := func(user string) {
		if _, ok := errs[user]; !ok {
			errs[user] = nil
			order = append(order, user)
		}
	}
	// A user and mechanism may appear once over deletions and upsertions.
	dup := map[string]bool{}
	for _, d := range req.Deletions {
		k := fmt.Sprintf("%s\x00%d", d.Name, d.Mechanism)
		dup[k], seen[k] = seen[k], true
	}
	for _, u := range req.Upsertions {
		k := fmt.Sprintf("%s\x00%d", u.Name, u.Mechanism)
		dup[k], seen[k] = seen[k], true
	}
	admin := c.allowed(auth.ClusterAdmin, "")
	a := c.s.opts.Auth
	fail := func(user string, err error) {
		if errs[user] == nil {
			errs[user] = err
		}
	}
	// Validate everything first, then apply the operations of users
	// without an invalid one.
	type op struct {
		user, mech string
		del        bool
		up         kmsg.AlterUserSCRAMCredentialsRequestUpsertion
	}
	var ops []op
	check := func(user string, m int8) (string, bool) {
		touch(user)
		if !admin {
			fail(user, clusterDenied("alter SCRAM credentials"))
			return "", false
		}
		if user == "" {
			fail(user, codeErrorf(kerr.UnacceptableCredential.Code, "empty user name"))
			return "", false
		}
		if dup[fmt.Sprintf("%s\x00%d", user, m)] {
			fail(user, codeErrorf(kerr.DuplicateResource.Code, "user %q and mechanism %d appear more than once", user, m))
			return "", false
		}
		mech, ok := scramMechanism(m)
		if !ok {
			fail(user, codeErrorf(kerr.UnsupportedSaslMechanism.Code, "unknown SCRAM mechanism %d", m))
			return "", false
		}
		return mech, true
	}
	for _, d := range req.Deletions {
		if mech, ok := check(d.Name, d.Mechanism); ok {
			ops = append(ops, op{user: d.Name, mech: mech, del: true})
		}
	}
	for _, u := range req.Upsertions {
		if mech, ok := check(u.Name, u.Mechanism); ok {
			ops = append(ops, op{user: u.Name, mech: mech, up: u})
		}
	}
	for _, o := range ops {
		if errs[o.user] != nil {
			continue
		}
		var err error
		if o.del {
			err = a.DeleteScram(o.user, o.mech)
		} else {
			err = a.UpsertScram(o.user, o.mech, int(o.up.Iterations), o.up.Salt, o.up.SaltedPassword)
		}
		if err != nil {
			fail(o.user, err)
		} else {
			c.s.log.Info("SCRAM credential changed", "remote", c.remote, "by", c.principalName(), "user", o.user, "mechanism", o.mech, "deleted", o.del)
		}
	}
	for _, user := range order {
		r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		r.User = user
		if err := errs[user]; err != nil {
			r.ErrorCode = scramCode(err)
			r.ErrorMessage = errMessage(err)
		}
		resp.Results = append(resp.Results, r)
	}
	return reply{resp: resp}
}
