package authserver

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Issuer is the iss claim of issued tokens (the real server's default).
const Issuer = "Mender"

// Claims are the claims of a device token, close to the real server's
// (mender-protocol.md §3.1).
type Claims struct {
	ID       string  `json:"jti"`
	Subject  string  `json:"sub"`
	Expires  int64   `json:"exp"`
	IssuedAt int64   `json:"iat"`
	Issuer   string  `json:"iss"`
	Device   bool    `json:"mender.device"`
	Plan     string  `json:"mender.plan"`
	Addons   []Addon `json:"mender.addons"`
	Trial    bool    `json:"mender.trial"`
}

// Addon is one entry of the mender.addons claim.
type Addon struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","typ":"JWT"}`))

// issueToken mints a compact EdDSA JWT for a; the caller holds s.mu.
func (s *Server) issueToken(a *authSet, lifetime time.Duration) (string, int64) {
	now := s.now()
	c := Claims{
		ID:       a.id,
		Subject:  a.deviceID,
		IssuedAt: now.Unix(),
		Expires:  now.Add(lifetime).Unix(),
		Issuer:   Issuer,
		Device:   true,
		Plan:     "enterprise",
		Addons: []Addon{
			{Name: "configure", Enabled: true},
			{Name: "monitor", Enabled: true},
			{Name: "troubleshoot", Enabled: true},
		},
	}
	payload, _ := json.Marshal(c) // plain struct: cannot fail
	signed := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig := ed25519.Sign(s.key, []byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), c.Expires
}

// ParseToken verifies a token issued by a server with signing key pub and
// returns its claims. It checks the signature, the issuer and the device
// claim, and that the token has not expired at now.
func ParseToken(jwt string, pub ed25519.PublicKey, now time.Time) (*Claims, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, errors.New("token is not a compact JWT")
	}
	if parts[0] != jwtHeader {
		return nil, errors.New("token header is not EdDSA")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
		return nil, errors.New("token signature does not verify")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("token payload is not base64url")
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("token payload: %v", err)
	}
	if c.Issuer != Issuer || !c.Device {
		return nil, errors.New("not a device token")
	}
	if now.Unix() >= c.Expires {
		return nil, errors.New("token expired")
	}
	return &c, nil
}

// authorize checks the request's bearer token: issued by this server,
// unexpired, and of an auth set that is still accepted. It returns the
// device id.
func (s *Server) authorize(authz string) (string, error) {
	jwt, ok := strings.CutPrefix(authz, "Bearer ")
	if !ok || jwt == "" {
		return "", errors.New("missing bearer token")
	}
	c, err := ParseToken(jwt, s.SigningPublicKey(), s.now())
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.authSetByID(c.ID)
	if a == nil || a.status != StatusAccepted || a.deviceID != c.Subject {
		return "", errors.New("device is not accepted")
	}
	return a.deviceID, nil
}
