package agent

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// MaxTokenSize bounds the size of a JWT the agent accepts from a server.
const MaxTokenSize = 64 << 10

// ErrMalformedToken means a server answered with something that is not a
// compact JWT with a readable exp claim.
var ErrMalformedToken = errors.New("malformed token")

// Token is a server-issued device JWT together with the URL of the server
// that issued it. The zero Token means "no token".
//
// fmt and logrus print a Token redacted; call JWT only at the edge that hands
// the token to a consumer.
type Token struct {
	jwt string
	// ServerURL is the base URL of the server that issued the token.
	ServerURL string
	// IssuedAt is the iat claim, or the time the token was received when the
	// claim is absent.
	IssuedAt time.Time
	// Expires is the exp claim.
	Expires time.Time
	// Subject is the sub claim (the device ID on the server); it is not
	// secret.
	Subject string
}

// ParseToken checks that jwt is a compact JWT (three base64url parts) with a
// readable exp claim and returns it as a Token issued by serverURL. received
// stands in for a missing iat claim. The signature is not verified: the
// token is opaque to the device and only the server can check it.
func ParseToken(jwt, serverURL string, received time.Time) (Token, error) {
	if len(jwt) > MaxTokenSize {
		return Token{}, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformedToken, len(jwt), MaxTokenSize)
	}
	jwt = strings.TrimSpace(jwt)
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return Token{}, fmt.Errorf("%w: %d dot-separated parts, want 3", ErrMalformedToken, len(parts))
	}
	for i, p := range parts[:2] {
		if p == "" {
			return Token{}, fmt.Errorf("%w: part %d is empty", ErrMalformedToken, i+1)
		}
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return Token{}, fmt.Errorf("%w: payload is not base64url: %v", ErrMalformedToken, err)
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
		Iat *json.Number `json:"iat"`
		Sub string       `json:"sub"`
	}
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return Token{}, fmt.Errorf("%w: payload is not a JSON object: %v", ErrMalformedToken, err)
	}
	if claims.Exp == nil {
		return Token{}, fmt.Errorf("%w: no exp claim", ErrMalformedToken)
	}
	exp, err := numericDate(*claims.Exp)
	if err != nil {
		return Token{}, fmt.Errorf("%w: exp claim: %v", ErrMalformedToken, err)
	}
	iat := received
	if claims.Iat != nil {
		if iat, err = numericDate(*claims.Iat); err != nil {
			return Token{}, fmt.Errorf("%w: iat claim: %v", ErrMalformedToken, err)
		}
	}
	return Token{jwt: jwt, ServerURL: serverURL, IssuedAt: iat, Expires: exp, Subject: claims.Sub}, nil
}

func numericDate(n json.Number) (time.Time, error) {
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, fmt.Errorf("%q is not a NumericDate", n.String())
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// JWT returns the raw token. Only edges that hand the token to a consumer
// (D-Bus, the forwarder, the token cache) may call it; never log it.
func (t Token) JWT() string { return t.jwt }

// IsZero reports whether t holds no token.
func (t Token) IsZero() bool { return t.jwt == "" }

// Valid reports whether t holds a token that has not expired at now.
func (t Token) Valid(now time.Time) bool { return !t.IsZero() && now.Before(t.Expires) }

// String describes the token without revealing it.
func (t Token) String() string {
	if t.IsZero() {
		return "jwt(none)"
	}
	return "jwt(expires " + t.Expires.UTC().Format(time.RFC3339) + ")"
}

// GoString keeps %#v from printing the raw token.
func (t Token) GoString() string { return t.String() }

// Format makes every fmt verb print the redacted form.
func (t Token) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(t.String())) }
