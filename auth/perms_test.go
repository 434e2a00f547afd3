package auth

import "testing"

func TestMatchPattern(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"a", "a", true},
		{"a", "b", false},
		{"a", "a.b", false},
		{"a.b", "a", false},
		{"a.b", "a.b", true},
		{"orders", "Orders", false}, // case-sensitive
		{"*", "a", true},
		{"*", "a.b", false},
		{"*", "", true}, // one (empty) token
		{"a.*", "a.b", true},
		{"a.*", "a", false},
		{"a.*", "a.b.c", false},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.b.d", false},
		{"*.*", "a.b", true},
		{">", "a", true},
		{">", "a.b.c", true},
		{">", "", true},
		{"a.>", "a", false}, // '>' needs at least one token
		{"a.>", "a.b", true},
		{"a.>", "a.b.c", true},
		{"a.>", "b.c", false},
		{"a.>", "ab.c", false},
		{"*.>", "a.b", true},
		{"*.>", "a", false},
		{"a.>.c", "a.b.c", false}, // invalid: '>' not last matches nothing
		{"a*", "a*", true},        // wildcards are whole tokens only
		{"a*", "ab", false},
		{"a>", "ab", false},
		{"app-*", "app-1", false},
		{"", "", true},
		{"", "a", false},
		{"a..b", "a..b", true},
		{"a..b", "a.x.b", false},
		{"a.*.b", "a..b", true}, // '*' matches an empty token
		{"a.", "a.", true},
		{"a.", "a", false},
		{"a.>", "a.", true},
	} {
		if got := MatchPattern(tc.pattern, tc.name); got != tc.want {
			t.Errorf("MatchPattern(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

func TestValidPattern(t *testing.T) {
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"a", true}, {"a.b", true}, {"*", true}, {">", true}, {"a.*.c", true}, {"a.>", true}, {"app-1_x", true},
		{"", false}, {"a.", false}, {".a", false}, {"a..b", false}, {"a.>.b", false}, {"a*", false}, {"a>", false}, {"a b", false},
	} {
		if got := ValidPattern(tc.p) == ""; got != tc.ok {
			t.Errorf("ValidPattern(%q) ok = %v, want %v (%s)", tc.p, got, tc.ok, ValidPattern(tc.p))
		}
	}
}

func TestAllowed(t *testing.T) {
	user := &Principal{Perms: Permissions{
		Produce:     []string{"sensors.>"},
		Consume:     []string{"sensors.>", "alerts"},
		ConsumeDeny: []string{"sensors.secret"},
		Groups:      []string{"dash.*"},
	}}
	producer := &Principal{Perms: Permissions{Produce: []string{"in"}}}
	admin := &Principal{Perms: Permissions{Admin: true}}
	filters := &Principal{Perms: Permissions{Filters: true}}
	var off *Principal
	for _, tc := range []struct {
		name string
		p    *Principal
		a    Action
		res  string
		want bool
	}{
		{"produce ok", user, ProduceTopic, "sensors.t1", true},
		{"produce other", user, ProduceTopic, "alerts", false},
		{"consume ok", user, ConsumeTopic, "alerts", true},
		{"consume denied", user, ConsumeTopic, "sensors.secret", false},
		{"describe via consume", user, DescribeTopic, "alerts", true},
		{"describe via produce", producer, DescribeTopic, "in", true},
		{"describe none", producer, DescribeTopic, "out", false},
		{"producer may not consume", producer, ConsumeTopic, "in", false},
		{"group ok", user, JoinGroup, "dash.a", true},
		{"group describe", user, DescribeGroup, "dash.b", true},
		{"group no", user, JoinGroup, "other", false},
		{"delete group needs admin", user, DeleteGroup, "dash.a", false},
		{"create topic needs admin", user, CreateTopic, "sensors.new", false},
		{"alter topic needs admin", user, AlterTopic, "sensors.t1", false},
		{"cluster admin no", user, ClusterAdmin, "", false},
		{"filters no", user, DeployFilter, "f", false},
		{"admin everything", admin, DeleteTopic, "x", true},
		{"admin produce", admin, ProduceTopic, "x", true},
		{"admin filters", admin, BindFilter, "b", true},
		{"admin cluster", admin, ClusterAdmin, "", true},
		{"admin unknown action", admin, Action(200), "", false},
		{"filters deploy", filters, DeployFilter, "f", true},
		{"filters bind", filters, BindFilter, "b", true},
		{"filters no admin", filters, ClusterAdmin, "", false},
		{"filters no produce", filters, ProduceTopic, "t", false},
		{"nil allows", off, ClusterAdmin, "", true},
		{"anonymous", Anonymous(), DeleteTopic, "x", true},
		{"anonymous group", Anonymous(), JoinGroup, "g", true},
		{"zero action", user, Action(0), "sensors.a", false},
	} {
		if got := tc.p.Allowed(tc.a, tc.res); got != tc.want {
			t.Errorf("%s: Allowed(%v, %q) = %v, want %v", tc.name, tc.a, tc.res, got, tc.want)
		}
	}
}
