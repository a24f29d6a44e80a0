package tokencache

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/agent/agenttest"
)

// FuzzParse feeds arbitrary file content to the cache file parser: it must
// never panic, and whatever it accepts is a valid token from a configured
// server.
func FuzzParse(f *testing.F) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	const server = "https://mender.example.com"
	b := NewBinding([]string{server}, "tenant", "fp")
	c, err := New(Options{Path: "/nonexistent/" + FileName, Binding: b, Now: func() time.Time { return now }})
	require.NoError(f, err)
	tok := agenttest.NewToken(server, now.Add(-time.Hour), now.Add(time.Hour))
	good, err := json.Marshal(file{JWT: tok.JWT(), ServerURL: server, Binding: b, SavedAt: now})
	require.NoError(f, err)
	bj, err := json.Marshal(b)
	require.NoError(f, err)
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"jwt":"a.b.c","server_url":"` + server + `","binding":` + string(bj) + `}`))
	f.Add([]byte(`{"binding":{"server_urls":null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := c.parse(data)
		if err != nil {
			assert.True(t, got.IsZero())
			return
		}
		assert.True(t, got.Valid(now))
		assert.True(t, c.configured(got.ServerURL))
	})
}
