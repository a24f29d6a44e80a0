package agent

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func jwtWith(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"EdDSA","typ":"JWT"}`)) + "." + enc([]byte(payload)) + ".c2ln"
}

func TestParseToken(t *testing.T) {
	received := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		jwt     string
		wantExp time.Time
		wantIat time.Time
		wantSub string
		wantErr string
	}{
		{name: "full claims", jwt: jwtWith(`{"exp":1800000000,"iat":1700000000,"sub":"dev-1"}`),
			wantExp: time.Unix(1800000000, 0).UTC(), wantIat: time.Unix(1700000000, 0).UTC(), wantSub: "dev-1"},
		{name: "no iat uses receive time", jwt: jwtWith(`{"exp":1800000000}`),
			wantExp: time.Unix(1800000000, 0).UTC(), wantIat: received},
		{name: "fractional exp", jwt: jwtWith(`{"exp":1800000000.5}`),
			wantExp: time.Unix(1800000000, 5e8).UTC(), wantIat: received},
		{name: "trailing newline trimmed", jwt: jwtWith(`{"exp":1800000000}`) + "\n",
			wantExp: time.Unix(1800000000, 0).UTC(), wantIat: received},
		{name: "two parts", jwt: "a.b", wantErr: "2 dot-separated parts, want 3"},
		{name: "empty", jwt: "", wantErr: "1 dot-separated parts"},
		{name: "no exp", jwt: jwtWith(`{"iat":1}`), wantErr: "no exp claim"},
		{name: "exp string", jwt: jwtWith(`{"exp":"soon"}`), wantErr: "payload is not a JSON object"},
		{name: "negative exp", jwt: jwtWith(`{"exp":-5}`), wantErr: "not a NumericDate"},
		{name: "payload not base64", jwt: "e30.!!!.sig", wantErr: "not base64url"},
		{name: "payload not json", jwt: "e30." + base64.RawURLEncoding.EncodeToString([]byte("[1]")) + ".s", wantErr: "not a JSON object"},
		{name: "oversized", jwt: strings.Repeat("a", MaxTokenSize+1), wantErr: "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := ParseToken(tt.jwt, "https://s", received)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, ErrMalformedToken)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.True(t, tok.IsZero())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantExp, tok.Expires)
			assert.Equal(t, tt.wantIat, tok.IssuedAt)
			assert.Equal(t, tt.wantSub, tok.Subject)
			assert.Equal(t, "https://s", tok.ServerURL)
			assert.Equal(t, strings.TrimSpace(tt.jwt), tok.JWT())
		})
	}
}

func TestTokenNeverPrintsJWT(t *testing.T) {
	jwt := jwtWith(`{"exp":1800000000}`)
	tok, err := ParseToken(jwt, "https://s", time.Now())
	require.NoError(t, err)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		out := fmt.Sprintf(verb, tok)
		assert.NotContains(t, out, jwt, verb)
		assert.NotContains(t, out, strings.Split(jwt, ".")[1], verb)
	}
	assert.Equal(t, "jwt(expires 2027-01-15T08:00:00Z)", tok.String())
	assert.Equal(t, "jwt(none)", Token{}.String())
	// Nested in a struct, as in a log field.
	out := fmt.Sprintf("%+v", struct{ T Token }{tok})
	assert.NotContains(t, out, jwt)
}

func TestTokenValid(t *testing.T) {
	tok, err := ParseToken(jwtWith(`{"exp":1800000000}`), "u", time.Now())
	require.NoError(t, err)
	assert.True(t, tok.Valid(time.Unix(1799999999, 0)))
	assert.False(t, tok.Valid(time.Unix(1800000000, 0)))
	assert.False(t, Token{}.Valid(time.Unix(0, 0)))
}
