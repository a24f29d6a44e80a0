package forwarder

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// With a ServerURL that has a path (a server behind a gateway at /mender),
// the client's path is joined after it: "/../mender/api/.../authentication"
// must not climb out of the prefix past the authentication check.
func TestDotSegmentsCannotEscapeTheServerPrefix(t *testing.T) {
	p := newPKI(t)
	var reached atomic.Int64
	up := p.upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	f := startForwarder(t, p, Config{})
	require.NoError(t, f.SetUpstream(up.URL+"/mender"))

	tests := []struct {
		name   string
		target string
		want   int
	}{
		{name: "climb out of the prefix", target: "/../mender/api/devices/v1/authentication/auth_requests", want: http.StatusBadRequest},
		{name: "encoded climb", target: "/%2e%2e/mender/api/devices/v1/authentication/auth_requests", want: http.StatusBadRequest},
		{name: "double encoded climb", target: "/%252e%252e/mender/api/devices/v1/authentication/auth_requests", want: http.StatusBadRequest},
		{name: "single dot", target: "/api/devices/v1/./inventory", want: http.StatusBadRequest},
		{name: "ordinary path passes", target: "/api/devices/v1/inventory/device/attributes", want: http.StatusOK},
		{name: "dots inside a name pass", target: "/api/devices/v1/deployments/device/deployments/a..b/log", want: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := reached.Load()
			status, body := rawRequest(t, f, "POST "+tt.target+" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
			assert.Equal(t, tt.want, status, body)
			if tt.want == http.StatusOK {
				assert.Equal(t, before+1, reached.Load())
			} else {
				assert.Equal(t, before, reached.Load(), "a refused request never reaches the server")
			}
		})
	}
}

// A 401 from the server for a request that carried a bearer token is
// reported, so the agent re-authenticates for consumers that never ask.
func TestReportsUnauthorizedBearer(t *testing.T) {
	p := newPKI(t)
	up := p.upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer revoked" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	var mu sync.Mutex
	var reported []string
	f := startForwarder(t, p, Config{Unauthorized: func(bearer string) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, bearer)
	}})
	require.NoError(t, f.SetUpstream(up.URL))
	c := newClient(t)
	for _, bearer := range []string{"good", "revoked", ""} {
		req, err := http.NewRequest(http.MethodGet, f.URL()+"/api/devices/v1/inventory/device/attributes", nil)
		require.NoError(t, err)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"revoked"}, reported, "only the 401 with a bearer token is reported, with that token")
}
