package group

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"
)

type syncResult struct {
	assignment []byte
	err        error
}

// member is a member of a group. Its fields are guarded by the group's mu.
type member struct {
	id         string
	instanceID string
	clientID   string
	clientHost string
	protocols  []Protocol
	session    time.Duration
	rebalance  time.Duration
	assignment []byte
	seq        uint64 // join order, for choosing a leader

	// joinCh is set while the member waits for the rebalance to complete,
	// syncCh while it waits for the leader's assignment. Both have a
	// buffer of one and are answered exactly once.
	joinCh chan JoinResult
	syncCh chan syncResult

	deadline time.Time   // session expiry, pushed back by every heartbeat
	timer    *time.Timer // checks the deadline
}

func (m *member) metadata(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

func (m *member) supports(protocol string) bool {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return true
		}
	}
	return false
}

func sameProtocols(a, b []Protocol) bool {
	return slices.EqualFunc(a, b, func(x, y Protocol) bool {
		return x.Name == y.Name && bytes.Equal(x.Metadata, y.Metadata)
	})
}

func cloneProtocols(ps []Protocol) []Protocol {
	out := make([]Protocol, len(ps))
	for i, p := range ps {
		out[i] = Protocol{Name: p.Name, Metadata: bytes.Clone(p.Metadata)}
	}
	return out
}

// group is one consumer group's membership state machine. Everything is
// guarded by mu; timers lock it and check that what they were armed for
// still holds.
type group struct {
	c  *Coordinator
	id string

	mu           sync.Mutex
	emptySince   time.Time // when the group last became Empty
	state        State
	generation   int32
	protocolType string
	protocol     string
	leader       string
	members      map[string]*member
	static       map[string]string      // instance id -> member id
	pending      map[string]*time.Timer // member ids handed out with ErrMemberIDRequired
	pendingSync  map[string]bool        // members that have not synced this generation
	nextSeq      uint64

	// A rebalance timer: the initial delay or the rebalance timeout while
	// PreparingRebalance, the pending sync timeout after. timerSeq
	// invalidates a timer that fires after it was replaced.
	timer        *time.Timer
	timerSeq     uint64
	initialPhase bool          // waiting out RebalanceDelay: do not complete early
	initialLeft  time.Duration // rebalance timeout left after the current delay
	newJoined    bool          // a new member joined during the current delay
}

func newGroup(c *Coordinator, id string) *group {
	g := &group{
		c:           c,
		id:          id,
		state:       Empty,
		members:     map[string]*member{},
		static:      map[string]string{},
		pending:     map[string]*time.Timer{},
		pendingSync: map[string]bool{},
		emptySince:  c.opts.Now(),
	}
	g.armTimer(c.opts.EmptyGroupRetention, g.expireEmpty)
	return g
}

// expireEmpty forgets a group that stayed empty, with no committed offsets,
// for EmptyGroupRetention.
func (g *group) expireEmpty() {
	if g.state != Empty {
		return
	}
	if len(g.members) > 0 || len(g.pending) > 0 || g.c.store.hasOffsets(g.id) {
		g.armTimer(g.c.opts.EmptyGroupRetention, g.expireEmpty)
		return
	}
	g.state = Dead
	go g.c.forget(g)
}

// fenced reports whether instanceID belongs to a static member whose
// current member id is not memberID.
func (g *group) fenced(memberID, instanceID string) bool {
	if instanceID == "" {
		return false
	}
	cur, ok := g.static[instanceID]
	return ok && cur != memberID
}

func (g *group) touch(m *member) {
	m.deadline = time.Now().Add(m.session)
}

// sessionCheck runs when a member's session timer fires.
func (g *group) sessionCheck(m *member) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.members[m.id] != m {
		return
	}
	if m.joinCh != nil || m.syncCh != nil {
		// Waiting on us: the rebalance or the pending sync timeout
		// bounds the wait.
		m.timer.Reset(m.session)
		return
	}
	if d := time.Until(m.deadline); d > 0 {
		m.timer.Reset(d)
		return
	}
	g.c.logger.Info("group: member session expired", "group", g.id, "member", m.id, "timeout", m.session)
	g.removeMember(m, ErrUnknownMemberID)
}

// dropMember removes m without rebalancing. A waiting Join or Sync of m is
// answered with err.
func (g *group) dropMember(m *member, err error) {
	m.timer.Stop()
	if m.joinCh != nil {
		m.joinCh <- JoinResult{MemberID: m.id, Err: err}
		m.joinCh = nil
	}
	if m.syncCh != nil {
		m.syncCh <- syncResult{err: err}
		m.syncCh = nil
	}
	delete(g.members, m.id)
	delete(g.pendingSync, m.id)
	if m.instanceID != "" && g.static[m.instanceID] == m.id {
		delete(g.static, m.instanceID)
	}
}

// removeMember removes m and rebalances the rest of the group.
func (g *group) removeMember(m *member, err error) {
	g.dropMember(m, err)
	switch g.state {
	case Stable, CompletingRebalance:
		g.prepareRebalance()
	case PreparingRebalance:
		g.maybeCompleteJoin()
	}
}

func (g *group) stopTimer() {
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	g.timerSeq++
}

func (g *group) armTimer(d time.Duration, fn func()) {
	g.stopTimer()
	seq := g.timerSeq
	g.timer = time.AfterFunc(d, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.timerSeq == seq && g.state != Dead {
			g.timer = nil
			fn()
		}
	})
}

func (g *group) rebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalance)
	}
	return d
}

// prepareRebalance moves the group to PreparingRebalance: members learn it
// from Heartbeat (ErrRebalanceInProgress) and rejoin.
func (g *group) prepareRebalance() {
	if g.state == CompletingRebalance {
		for _, m := range g.members {
			if m.syncCh != nil {
				m.syncCh <- syncResult{err: ErrRebalanceInProgress}
				m.syncCh = nil
			}
		}
	}
	clear(g.pendingSync)
	initial := g.state == Empty
	g.state = PreparingRebalance
	timeout := g.rebalanceTimeout()
	if delay := g.c.opts.RebalanceDelay; initial && delay > 0 {
		delay = min(delay, timeout)
		g.initialPhase = true
		g.newJoined = false
		g.initialLeft = timeout - delay
		g.armTimer(delay, g.initialDelayDone)
		return
	}
	g.initialPhase = false
	g.armTimer(timeout, g.completeJoin)
	g.maybeCompleteJoin()
}

// initialDelayDone extends the initial delay while new members keep
// joining, as Kafka's InitialDelayedJoin does, then completes the join.
func (g *group) initialDelayDone() {
	if g.state != PreparingRebalance {
		return
	}
	if g.newJoined && g.initialLeft > 0 {
		delay := min(g.c.opts.RebalanceDelay, g.initialLeft)
		g.initialLeft -= delay
		g.newJoined = false
		g.armTimer(delay, g.initialDelayDone)
		return
	}
	// Every member of a group that was empty is new and waiting; one that
	// left meanwhile is gone. Complete now, as Kafka does.
	g.completeJoin()
}

func (g *group) allJoined() bool {
	if len(g.pending) > 0 {
		return false
	}
	for _, m := range g.members {
		if m.joinCh == nil {
			return false
		}
	}
	return true
}

func (g *group) maybeCompleteJoin() {
	if g.state == PreparingRebalance && !g.initialPhase && g.allJoined() {
		g.completeJoin()
	}
}

// completeJoin ends the join phase: members that did not rejoin are
// removed, the next generation starts and every member gets its answer.
func (g *group) completeJoin() {
	if g.state != PreparingRebalance {
		return
	}
	g.stopTimer()
	g.initialPhase = false
	for _, m := range g.members {
		if m.joinCh == nil {
			g.c.logger.Info("group: member did not rejoin in time", "group", g.id, "member", m.id)
			g.dropMember(m, ErrUnknownMemberID)
		}
	}
	g.generation++
	if len(g.members) == 0 {
		g.state = Empty
		g.emptySince = g.c.opts.Now()
		g.protocol = ""
		g.leader = ""
		g.armTimer(g.c.opts.EmptyGroupRetention, g.expireEmpty)
		g.c.logger.Debug("group: empty", "group", g.id, "generation", g.generation)
		return
	}
	ms := g.sortedMembers()
	if g.members[g.leader] == nil {
		g.leader = ms[0].id
	}
	g.protocol = g.selectProtocol()
	g.state = CompletingRebalance
	for _, m := range ms {
		g.pendingSync[m.id] = true
	}
	g.armTimer(g.rebalanceTimeout(), g.syncTimeout)
	for _, m := range ms {
		m.assignment = nil
		m.joinCh <- g.joinResult(m)
		m.joinCh = nil
		g.touch(m)
	}
	g.c.logger.Debug("group: rebalance complete", "group", g.id, "generation", g.generation,
		"members", len(ms), "protocol", g.protocol, "leader", g.leader)
}

// joinResult is the current generation as m should see it.
func (g *group) joinResult(m *member) JoinResult {
	r := JoinResult{
		Generation:   g.generation,
		ProtocolType: g.protocolType,
		ProtocolName: g.protocol,
		LeaderID:     g.leader,
		MemberID:     m.id,
	}
	if m.id == g.leader {
		for _, o := range g.sortedMembers() {
			r.Members = append(r.Members, JoinMember{MemberID: o.id, InstanceID: o.instanceID, Metadata: o.metadata(g.protocol)})
		}
	}
	return r
}

// syncTimeout removes the members that did not sync within the rebalance
// timeout after the join completed, and rebalances.
func (g *group) syncTimeout() {
	if (g.state != CompletingRebalance && g.state != Stable) || len(g.pendingSync) == 0 {
		return
	}
	for id := range g.pendingSync {
		if m := g.members[id]; m != nil {
			g.c.logger.Info("group: member did not sync in time", "group", g.id, "member", id)
			g.dropMember(m, ErrUnknownMemberID)
		}
	}
	g.prepareRebalance()
}

func (g *group) sortedMembers() []*member {
	ms := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *member) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return ms
}

// selectProtocol picks the protocol by vote, as Kafka does: among the
// protocols every member supports, each member votes for the first of its
// own preference; ties go to the leader's preference.
func (g *group) selectProtocol() string {
	lead := g.members[g.leader]
	var candidates []string
	for _, p := range lead.protocols {
		all := true
		for _, m := range g.members {
			if !m.supports(p.Name) {
				all = false
				break
			}
		}
		if all {
			candidates = append(candidates, p.Name)
		}
	}
	if len(candidates) == 0 {
		// Joins check consistency, so this does not happen; the
		// leader's first choice is the best guess.
		return lead.protocols[0].Name
	}
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if slices.Contains(candidates, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best := candidates[0]
	for _, name := range candidates[1:] {
		if votes[name] > votes[best] {
			best = name
		}
	}
	return best
}

// supportsProtocols reports whether a member (other than self) can join
// with protocolType and protocols: every other member must support one of
// them.
func (g *group) supportsProtocols(self, protocolType string, protocols []Protocol) bool {
	others := 0
	for id := range g.members {
		if id != self {
			others++
		}
	}
	if others == 0 {
		return true
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range protocols {
		all := true
		for id, m := range g.members {
			if id != self && !m.supports(p.Name) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// shutdown ends the group (deleted, or the coordinator closed).
func (g *group) shutdown(err error) {
	g.stopTimer()
	for _, m := range g.members {
		g.dropMember(m, err)
	}
	for id, t := range g.pending {
		t.Stop()
		delete(g.pending, id)
	}
	g.state = Dead
}

// join handles a JoinGroup. It returns either an answer or a channel that
// will carry it.
func (g *group) join(req JoinRequest) (JoinResult, chan JoinResult) {
	if req.ProtocolType == "" || len(req.Protocols) == 0 ||
		!g.supportsProtocols(req.MemberID, req.ProtocolType, req.Protocols) {
		return JoinResult{MemberID: req.MemberID, Err: ErrInconsistentProtocol}, nil
	}
	if req.MemberID == "" {
		return g.joinNew(req)
	}
	if t, ok := g.pending[req.MemberID]; ok {
		t.Stop()
		delete(g.pending, req.MemberID)
		return g.addMember(req.MemberID, req)
	}
	if g.fenced(req.MemberID, req.InstanceID) {
		return JoinResult{MemberID: req.MemberID, Err: ErrFencedInstanceID}, nil
	}
	m := g.members[req.MemberID]
	if m == nil {
		return JoinResult{MemberID: req.MemberID, Err: ErrUnknownMemberID}, nil
	}
	g.touch(m)
	switch g.state {
	case CompletingRebalance:
		if sameProtocols(m.protocols, req.Protocols) {
			// It lost our answer: give it again.
			return g.joinResult(m), nil
		}
	case Stable:
		if m.id != g.leader && sameProtocols(m.protocols, req.Protocols) {
			// Nothing changes: no rebalance. Only the leader's
			// rejoin forces one (to reassign).
			r := g.joinResult(m)
			r.Members = nil
			return r, nil
		}
	}
	return g.updateMember(m, req)
}

func (g *group) joinNew(req JoinRequest) (JoinResult, chan JoinResult) {
	if req.InstanceID != "" {
		id := newMemberID(req.InstanceID)
		if old, ok := g.static[req.InstanceID]; ok {
			return g.replaceStatic(g.members[old], id, req)
		}
		return g.addMember(id, req)
	}
	prefix := req.ClientID
	if prefix == "" {
		prefix = "member"
	}
	id := newMemberID(prefix)
	if req.RequireKnownMemberID {
		session := req.SessionTimeout
		g.pending[id] = time.AfterFunc(session, func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if _, ok := g.pending[id]; ok {
				delete(g.pending, id)
				g.maybeCompleteJoin()
			}
		})
		return JoinResult{MemberID: id, Err: ErrMemberIDRequired}, nil
	}
	return g.addMember(id, req)
}

func rebalanceTimeoutOf(req JoinRequest) time.Duration {
	if req.RebalanceTimeout > 0 {
		return req.RebalanceTimeout
	}
	return req.SessionTimeout
}

// addMember adds a new member awaiting the join and rebalances.
func (g *group) addMember(id string, req JoinRequest) (JoinResult, chan JoinResult) {
	if len(g.members) == 0 {
		g.protocolType = req.ProtocolType
	}
	g.nextSeq++
	m := &member{
		id:         id,
		instanceID: req.InstanceID,
		clientID:   req.ClientID,
		clientHost: req.ClientHost,
		protocols:  cloneProtocols(req.Protocols),
		session:    req.SessionTimeout,
		rebalance:  rebalanceTimeoutOf(req),
		seq:        g.nextSeq,
		joinCh:     make(chan JoinResult, 1),
	}
	g.touch(m)
	m.timer = time.AfterFunc(m.session, func() { g.sessionCheck(m) })
	g.members[id] = m
	if m.instanceID != "" {
		g.static[m.instanceID] = id
	}
	if g.leader == "" || g.members[g.leader] == nil {
		g.leader = id
	}
	g.newJoined = true
	ch := m.joinCh
	if g.state == PreparingRebalance {
		g.maybeCompleteJoin()
	} else {
		g.prepareRebalance()
	}
	return JoinResult{}, ch
}

// updateMember records a rejoining member's protocols and rebalances.
func (g *group) updateMember(m *member, req JoinRequest) (JoinResult, chan JoinResult) {
	m.protocols = cloneProtocols(req.Protocols)
	m.clientID, m.clientHost = req.ClientID, req.ClientHost
	m.session, m.rebalance = req.SessionTimeout, rebalanceTimeoutOf(req)
	if m.joinCh != nil {
		// A second join while the first waits: the first caller has
		// most likely gone away.
		m.joinCh <- JoinResult{MemberID: m.id, Err: ErrRebalanceInProgress}
	}
	m.joinCh = make(chan JoinResult, 1)
	ch := m.joinCh
	if g.state == PreparingRebalance {
		g.maybeCompleteJoin()
	} else {
		g.prepareRebalance()
	}
	return JoinResult{}, ch
}

// replaceStatic gives a static member's instance a new member id: the old
// id is fenced. A stable group whose protocol would not change keeps its
// generation and assignment, with no rebalance.
func (g *group) replaceStatic(old *member, newID string, req JoinRequest) (JoinResult, chan JoinResult) {
	formerLeader, oldID := g.leader, old.id
	old.timer.Stop()
	if old.joinCh != nil {
		old.joinCh <- JoinResult{MemberID: oldID, Err: ErrFencedInstanceID}
		old.joinCh = nil
	}
	if old.syncCh != nil {
		old.syncCh <- syncResult{err: ErrFencedInstanceID}
		old.syncCh = nil
	}
	delete(g.members, oldID)
	m := &member{
		id:         newID,
		instanceID: old.instanceID,
		clientID:   req.ClientID,
		clientHost: req.ClientHost,
		protocols:  old.protocols,
		session:    req.SessionTimeout,
		rebalance:  rebalanceTimeoutOf(req),
		assignment: old.assignment,
		seq:        old.seq,
	}
	g.members[newID] = m
	g.static[req.InstanceID] = newID
	if g.pendingSync[oldID] {
		delete(g.pendingSync, oldID)
		g.pendingSync[newID] = true
	}
	if g.leader == oldID {
		g.leader = newID
	}
	g.touch(m)
	m.timer = time.AfterFunc(m.session, func() { g.sessionCheck(m) })
	g.c.logger.Info("group: static member rejoined with a new member id", "group", g.id,
		"instance", req.InstanceID, "old", oldID, "new", newID)
	if g.state == Stable {
		prev := m.protocols
		m.protocols = cloneProtocols(req.Protocols)
		if g.selectProtocol() == g.protocol {
			// As Kafka: answer with the former leader id, so that
			// this member does not assign while the group is stable.
			return JoinResult{
				Generation:   g.generation,
				ProtocolType: g.protocolType,
				ProtocolName: g.protocol,
				LeaderID:     formerLeader,
				MemberID:     newID,
			}, nil
		}
		m.protocols = prev
	}
	return g.updateMember(m, req)
}

// sync handles a SyncGroup, returning the assignment, an error, or a
// channel that will carry them.
func (g *group) sync(req SyncRequest) ([]byte, error, chan syncResult) {
	if g.fenced(req.MemberID, req.InstanceID) {
		return nil, ErrFencedInstanceID, nil
	}
	m := g.members[req.MemberID]
	if m == nil {
		return nil, ErrUnknownMemberID, nil
	}
	if req.Generation != g.generation {
		return nil, ErrIllegalGeneration, nil
	}
	if (req.ProtocolType != "" && req.ProtocolType != g.protocolType) ||
		(req.ProtocolName != "" && req.ProtocolName != g.protocol) {
		return nil, ErrInconsistentProtocol, nil
	}
	switch g.state {
	case PreparingRebalance:
		return nil, ErrRebalanceInProgress, nil
	case CompletingRebalance:
		g.touch(m)
		g.synced(m)
		if m.syncCh != nil {
			m.syncCh <- syncResult{err: ErrRebalanceInProgress}
		}
		m.syncCh = make(chan syncResult, 1)
		ch := m.syncCh
		if m.id == g.leader {
			assign := make(map[string][]byte, len(req.Assignments))
			for _, a := range req.Assignments {
				assign[a.MemberID] = a.Assignment
			}
			for _, o := range g.members {
				o.assignment = bytes.Clone(assign[o.id])
				if o.assignment == nil {
					o.assignment = []byte{}
				}
			}
			g.state = Stable
			for _, o := range g.members {
				if o.syncCh != nil {
					o.syncCh <- syncResult{assignment: o.assignment}
					o.syncCh = nil
				}
			}
			g.c.logger.Debug("group: stable", "group", g.id, "generation", g.generation)
		}
		return nil, nil, ch
	case Stable:
		g.touch(m)
		g.synced(m)
		return m.assignment, nil, nil
	}
	return nil, ErrUnknownMemberID, nil
}

// synced notes that m has synced this generation.
func (g *group) synced(m *member) {
	if g.pendingSync[m.id] {
		delete(g.pendingSync, m.id)
		if len(g.pendingSync) == 0 && g.timer != nil {
			g.stopTimer()
		}
	}
}

func (g *group) heartbeat(generation int32, memberID, instanceID string) error {
	if g.fenced(memberID, instanceID) {
		return ErrFencedInstanceID
	}
	m := g.members[memberID]
	if m == nil {
		return ErrUnknownMemberID
	}
	if generation != g.generation {
		return ErrIllegalGeneration
	}
	g.touch(m)
	if g.state == PreparingRebalance {
		return ErrRebalanceInProgress
	}
	return nil
}

func (g *group) leave(lm LeaveMember) error {
	id := lm.MemberID
	if lm.InstanceID != "" {
		cur, ok := g.static[lm.InstanceID]
		switch {
		case !ok:
			return ErrUnknownMemberID
		case id != "" && id != cur:
			return ErrFencedInstanceID
		}
		id = cur
	}
	if t, ok := g.pending[id]; ok {
		t.Stop()
		delete(g.pending, id)
		g.maybeCompleteJoin()
		return nil
	}
	m := g.members[id]
	if m == nil {
		return ErrUnknownMemberID
	}
	g.c.logger.Debug("group: member left", "group", g.id, "member", id)
	g.removeMember(m, ErrUnknownMemberID)
	return nil
}

func (g *group) describe() GroupDescription {
	d := GroupDescription{Group: g.id, State: g.state, ProtocolType: g.protocolType}
	stable := g.state == Stable
	if stable {
		d.Protocol = g.protocol
	}
	for _, m := range g.sortedMembers() {
		md := MemberDescription{MemberID: m.id, InstanceID: m.instanceID, ClientID: m.clientID, ClientHost: m.clientHost}
		if stable {
			md.Metadata = m.metadata(g.protocol)
			md.Assignment = m.assignment
		}
		d.Members = append(d.Members, md)
	}
	return d
}

// Join handles a JoinGroup: it blocks until the rebalance completes (or
// ctx ends) and returns the member's view of the new generation. See
// JoinResult for how errors come back.
func (c *Coordinator) Join(ctx context.Context, req JoinRequest) JoinResult {
	switch {
	case req.Group == "":
		return JoinResult{MemberID: req.MemberID, Err: ErrInvalidGroupID}
	case req.SessionTimeout < c.opts.MinSessionTimeout || req.SessionTimeout > c.opts.MaxSessionTimeout:
		return JoinResult{MemberID: req.MemberID, Err: ErrInvalidSessionTimeout}
	}
	g, err := c.acquire(req.Group, true)
	if err != nil {
		return JoinResult{MemberID: req.MemberID, Err: err}
	}
	r, ch := g.join(req)
	g.mu.Unlock()
	if ch == nil {
		return r
	}
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		return JoinResult{MemberID: req.MemberID, Err: ctx.Err()}
	}
}

// Sync handles a SyncGroup: the leader's call carries every member's
// assignment; followers block until it arrives (or a new rebalance starts:
// ErrRebalanceInProgress). It returns the member's assignment.
func (c *Coordinator) Sync(ctx context.Context, req SyncRequest) ([]byte, error) {
	if req.Group == "" {
		return nil, ErrInvalidGroupID
	}
	g, err := c.acquire(req.Group, false)
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, ErrUnknownMemberID
	}
	a, err, ch := g.sync(req)
	g.mu.Unlock()
	if ch == nil {
		return a, err
	}
	select {
	case r := <-ch:
		return r.assignment, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Heartbeat handles a Heartbeat: nil while the member's generation is
// current, ErrRebalanceInProgress when it must rejoin, ErrUnknownMemberID,
// ErrIllegalGeneration or ErrFencedInstanceID when it was fenced.
func (c *Coordinator) Heartbeat(group string, generation int32, memberID, instanceID string) error {
	if group == "" {
		return ErrInvalidGroupID
	}
	g, err := c.acquire(group, false)
	if err != nil {
		return err
	}
	if g == nil {
		return ErrUnknownMemberID
	}
	defer g.mu.Unlock()
	return g.heartbeat(generation, memberID, instanceID)
}

// Leave handles a LeaveGroup: it removes members (each by member id, or by
// instance id for static members) and rebalances the rest. It returns an
// error per member, and a group-level error (an invalid group id, a closed
// coordinator) that then applies to all of them.
func (c *Coordinator) Leave(group string, members []LeaveMember) ([]error, error) {
	if group == "" {
		return nil, ErrInvalidGroupID
	}
	g, err := c.acquire(group, false)
	if err != nil {
		return nil, err
	}
	errs := make([]error, len(members))
	if g == nil {
		for i := range errs {
			errs[i] = ErrUnknownMemberID
		}
		return errs, nil
	}
	defer g.mu.Unlock()
	for i, lm := range members {
		errs[i] = g.leave(lm)
	}
	return errs, nil
}
