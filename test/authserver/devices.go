package authserver

import (
	"fmt"
	"strings"
	"time"
)

// Status is the state of a device's auth set.
type Status string

// Auth set states, as the real server names them.
const (
	StatusPending  Status = "pending"
	StatusAccepted Status = "accepted"
	StatusRejected Status = "rejected"
)

// authSet is one (identity, public key) pair the server has seen.
type authSet struct {
	id          string
	deviceID    string
	identity    string // canonical id_data
	pubKey      string // PEM as received
	status      Status
	tenantToken string
	tier        string
	requests    int
	tokens      int
	lastAuth    time.Time
}

// Device describes one auth set: a device identity with one public key.
type Device struct {
	// ID is the device id, the sub claim of its tokens.
	ID string
	// AuthSetID is the id of this (identity, key) pair, the jti claim.
	AuthSetID string
	Status    Status
	// Identity is the canonical id_data (keys sorted).
	Identity string
	// PubKey is the PEM public key as the device sent it.
	PubKey      string
	TenantToken string
	Tier        string
	// AuthCount counts the auth requests with a valid signature; Tokens
	// counts the tokens issued.
	AuthCount int
	Tokens    int
	LastAuth  time.Time
}

func (a *authSet) device() Device {
	return Device{
		ID: a.deviceID, AuthSetID: a.id, Status: a.status, Identity: a.identity, PubKey: a.pubKey,
		TenantToken: a.tenantToken, Tier: a.tier, AuthCount: a.requests, Tokens: a.tokens, LastAuth: a.lastAuth,
	}
}

// Devices lists every auth set in the order first seen.
func (s *Server) Devices() []Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Device, 0, len(s.st.authSets))
	for _, a := range s.st.authSets {
		out = append(out, a.device())
	}
	return out
}

// Accept accepts the auth sets matching who: a device id, an auth set id,
// a public key PEM or a canonical identity. It fails when nothing matches.
func (s *Server) Accept(who string) error { return s.setStatus(who, StatusAccepted) }

// Reject rejects the auth sets matching who (see Accept). Tokens already
// issued to them stop working on the device APIs, as on the real server.
func (s *Server) Reject(who string) error { return s.setStatus(who, StatusRejected) }

func (s *Server) setStatus(who string, st Status) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.st.authSets {
		if matches(a, who) {
			if a.status != st {
				s.log.WithField(FieldDeviceID, a.deviceID).WithField(FieldIdentity, a.identity).Infof("device %s", st)
			}
			a.status = st
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("authserver: no device matches %q", abbreviate(who, 64))
	}
	return nil
}

// Preauthorize records an accepted auth set for an identity (the text of
// a JSON object) and a public key PEM before the device ever asks, as the
// management API's preauthorization does. The device gets a token at its
// first request, even without AutoAccept.
func (s *Server) Preauthorize(idData, pubKeyPEM string) (Device, error) {
	identity, err := canonicalIdentity(idData)
	if err != nil {
		return Device{}, fmt.Errorf("authserver: preauthorize: identity: %w", err)
	}
	if _, err := parsePublicKey(pubKeyPEM); err != nil {
		return Device{}, fmt.Errorf("authserver: preauthorize: public key: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, _ := s.lookupLocked(identity, pubKeyPEM)
	a.status = StatusAccepted
	return a.device(), nil
}

// Decommission forgets every auth set matching who (see Accept); their
// tokens stop working and a later request starts over as a new device.
func (s *Server) Decommission(who string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.st.authSets[:0]
	n := 0
	for _, a := range s.st.authSets {
		if matches(a, who) {
			delete(s.st.setIndex, a.identity+"\x00"+a.pubKey)
			delete(s.st.setByID, a.id)
			delete(s.st.deviceIDs, a.identity)
			n++
			continue
		}
		kept = append(kept, a)
	}
	s.st.authSets = kept
	if n == 0 {
		return fmt.Errorf("authserver: no device matches %q", abbreviate(who, 64))
	}
	return nil
}

func matches(a *authSet, who string) bool {
	return a.deviceID == who || a.id == who || a.identity == who ||
		(strings.TrimSpace(who) != "" && strings.TrimSpace(a.pubKey) == strings.TrimSpace(who))
}

// lookupLocked finds or creates the auth set of (identity, pubKey).
func (s *Server) lookupLocked(identity, pubKey string) (*authSet, bool) {
	if a, ok := s.st.setIndex[identity+"\x00"+pubKey]; ok {
		return a, false
	}
	devID, ok := s.st.deviceIDs[identity]
	if !ok {
		devID = newID()
		s.st.deviceIDs[identity] = devID
	}
	a := &authSet{id: newID(), deviceID: devID, identity: identity, pubKey: pubKey, status: StatusPending}
	if s.st.autoAccept {
		a.status = StatusAccepted
	}
	s.st.authSets = append(s.st.authSets, a)
	s.st.setIndex[identity+"\x00"+pubKey] = a
	s.st.setByID[a.id] = a
	return a, true
}

func (s *Server) authSetByID(id string) *authSet {
	return s.st.setByID[id]
}

func abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
