package authapi_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/agent"
	"github.com/mender-agent/mender-agent/agent/authapi"
	"github.com/mender-agent/mender-agent/test/authserver"
	"github.com/mender-agent/mender-agent/test/testpki"
)

func TestPendingThenAcceptedForEveryKeyType(t *testing.T) {
	for _, kt := range keyTypes {
		t.Run(kt.name, func(t *testing.T) {
			srv := startServer(t, authserver.Options{TokenLifetime: 90 * time.Minute})
			key := kt.key(t)
			c := newClient(t, key, []string{srv.URL()}, func(c *authapi.Config) { c.TenantToken = " tenant-secret-1 " })

			_, err := c.Authenticate(t.Context())
			require.ErrorIs(t, err, agent.ErrUnauthorized, "a new device is pending")
			assert.Contains(t, err.Error(), srv.URL())
			assert.Contains(t, err.Error(), "request_id ")

			devs := srv.Devices()
			require.Len(t, devs, 1)
			assert.Equal(t, authserver.StatusPending, devs[0].Status)
			assert.Equal(t, `{"mac":"02:12:61:13:6c:42","serial":"SN-1"}`, devs[0].Identity)
			assert.Equal(t, c.PublicKeyPEM(), devs[0].PubKey)
			assert.Equal(t, "tenant-secret-1", devs[0].TenantToken, "the tenant token travels trimmed in the body")
			assert.Equal(t, 1, devs[0].AuthCount, "the signature verified")

			require.NoError(t, srv.Accept(devs[0].ID))
			tok, err := c.Authenticate(t.Context())
			require.NoError(t, err)
			assert.Equal(t, srv.URL(), tok.ServerURL)
			assert.Equal(t, devs[0].ID, tok.Subject)
			assert.Equal(t, 90*time.Minute, tok.Expires.Sub(tok.IssuedAt))
			claims, err := authserver.ParseToken(tok.JWT(), srv.SigningPublicKey(), time.Now())
			require.NoError(t, err, "the token is the server's, byte for byte")
			assert.Equal(t, devs[0].AuthSetID, claims.ID)

			reqs := authRequests(srv)
			require.Len(t, reqs, 2)
			for _, r := range reqs {
				assert.Equal(t, http.MethodPost, r.Method)
				assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
				assert.Equal(t, "application/json", r.Header.Get("Accept"))
				assert.Equal(t, "mender-agent/1.2.3-test", r.Header.Get("User-Agent"))
				assert.Empty(t, r.Header.Get("Authorization"), "the endpoint does not read Authorization")
				assert.NotEmpty(t, r.Signature)
			}
			assert.Equal(t, reqs[0].Body, reqs[1].Body, "the same identity and key give the same bytes")
		})
	}
}

func TestResponses(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name        string
		fault       authserver.Fault
		wantIs      error
		wantAfter   time.Duration // >0: a *agent.RetryAfterError with this delay
		wantStatus  int           // >0: a *authapi.StatusError with this code
		wantMessage string
	}{
		{name: "400 carries the server's message", fault: authserver.Fault{Status: 400, Body: []byte(`{"error":"id_data: bad","request_id":"r-400"}`)},
			wantIs: agent.ErrBadRequest, wantMessage: `server says "id_data: bad"`},
		{name: "401 names the request id", fault: authserver.Fault{Status: 401},
			wantIs: agent.ErrUnauthorized, wantMessage: "request_id "},
		{name: "429 with delay-seconds", fault: authserver.Fault{Status: 429, RetryAfter: "7"}, wantAfter: 7 * time.Second},
		{name: "503 with an HTTP date", fault: authserver.Fault{Status: 503, RetryAfter: now.Add(90 * time.Second).Format(http.TimeFormat)}, wantAfter: 90 * time.Second},
		{name: "503 with a date in the past", fault: authserver.Fault{Status: 503, RetryAfter: now.Add(-time.Hour).Format(http.TimeFormat)}, wantAfter: 0},
		{name: "503 without Retry-After", fault: authserver.Fault{Status: 503}, wantStatus: 503},
		{name: "429 with a malformed Retry-After", fault: authserver.Fault{Status: 429, RetryAfter: "soon"}, wantStatus: 429},
		{name: "500", fault: authserver.Fault{Status: 500}, wantStatus: 500, wantMessage: "injected fault"},
		{name: "302 is unexpected", fault: authserver.Fault{Status: 302, Body: []byte("x")}, wantStatus: 302},
		{name: "200 with garbage", fault: authserver.Fault{Status: 200, Body: []byte("<html>hello</html>")},
			wantIs: agent.ErrMalformedToken, wantMessage: "dot-separated parts"},
		{name: "200 empty", fault: authserver.Fault{Status: 200, Body: []byte{}}, wantIs: agent.ErrMalformedToken, wantMessage: "empty"},
		{name: "200 oversized", fault: authserver.Fault{Status: 200, Body: bytes.Repeat([]byte("a"), agent.MaxTokenSize+1)},
			wantIs: agent.ErrMalformedToken, wantMessage: "larger than 65536 bytes"},
		{name: "200 quoted token with a broken quote", fault: authserver.Fault{Status: 200, Body: []byte(`"a.b.c`)},
			wantIs: agent.ErrMalformedToken, wantMessage: "malformed JSON string"},
		{name: "200 JWT without exp", fault: authserver.Fault{Status: 200, Body: []byte("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln")},
			wantIs: agent.ErrMalformedToken, wantMessage: "no exp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, authserver.Options{AutoAccept: true})
			c := newClient(t, edKey(), []string{srv.URL()}, func(c *authapi.Config) { c.Now = func() time.Time { return now } })
			srv.SetFault(tt.fault)
			tok, err := c.Authenticate(t.Context())
			require.Error(t, err)
			assert.True(t, tok.IsZero())
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
			}
			var ra *agent.RetryAfterError
			if tt.wantAfter > 0 || strings.Contains(tt.name, "past") {
				require.ErrorAs(t, err, &ra)
				assert.Equal(t, tt.wantAfter, ra.After)
			} else {
				assert.False(t, errors.As(err, &ra), "no Retry-After: %v", err)
			}
			if tt.wantStatus > 0 {
				var se *authapi.StatusError
				require.ErrorAs(t, err, &se)
				assert.Equal(t, tt.wantStatus, se.Code)
				assert.Equal(t, authRequests(srv)[0].RequestID, se.RequestID)
			}
			assert.Contains(t, err.Error(), tt.wantMessage)
			assert.False(t, errors.Is(err, agent.ErrUnauthorized) && tt.wantIs != agent.ErrUnauthorized)

			srv.ClearFault()
			_, err = c.Authenticate(t.Context())
			require.NoError(t, err, "the next attempt succeeds once the fault is gone")
		})
	}
}

func TestQuotedTokenIsUnquoted(t *testing.T) {
	srv := startServer(t, authserver.Options{AutoAccept: true})
	c := newClient(t, edKey(), []string{srv.URL()}, nil)
	tok, err := c.Authenticate(t.Context())
	require.NoError(t, err)
	srv.SetFault(authserver.Fault{Status: 200, ContentType: "application/json", Body: []byte(`"` + tok.JWT() + `"` + "\n")})
	quoted, err := c.Authenticate(t.Context())
	require.NoError(t, err)
	assert.Equal(t, tok.JWT(), quoted.JWT(), "the quotes are not part of the token")
}

func TestFailoverTriesServersInOrder(t *testing.T) {
	down := startServer(t, authserver.Options{AutoAccept: true})
	pending := startServer(t, authserver.Options{})
	good := startServer(t, authserver.Options{AutoAccept: true})
	down.SetFault(authserver.Fault{Status: 503})
	c := newClient(t, edKey(), []string{down.URL(), pending.URL(), good.URL()}, nil)

	tok, err := c.Authenticate(t.Context())
	require.NoError(t, err)
	assert.Equal(t, good.URL(), tok.ServerURL, "the first server that answers 200 wins")
	first, second, third := authRequests(down), authRequests(pending), authRequests(good)
	require.Len(t, first, 1)
	require.Len(t, second, 1)
	require.Len(t, third, 1)
	assert.Equal(t, 503, first[0].Status)
	assert.Equal(t, 401, second[0].Status)
	assert.Equal(t, 200, third[0].Status)
	assert.False(t, second[0].Time.Before(first[0].Time), "second server after the first")
	assert.False(t, third[0].Time.Before(second[0].Time), "third server after the second")
	assert.Equal(t, first[0].Body, third[0].Body, "one body, signed once, sent to every server")
	assert.Equal(t, first[0].Signature, third[0].Signature)

	// The first server recovers: it wins the next attempt and nothing else
	// is asked.
	down.ClearFault()
	tok, err = c.Authenticate(t.Context())
	require.NoError(t, err)
	assert.Equal(t, down.URL(), tok.ServerURL)
	assert.Len(t, authRequests(pending), 1)
	assert.Len(t, authRequests(good), 1)
}

func TestEveryServerFails(t *testing.T) {
	tests := []struct {
		name       string
		faults     []authserver.Fault
		wantUnauth bool
		wantBad    bool
		wantAfter  time.Duration
	}{
		{name: "all 401", faults: []authserver.Fault{{Status: 401}, {Status: 401}, {Status: 401}}, wantUnauth: true},
		{name: "401 and 500 is not unauthorized", faults: []authserver.Fault{{Status: 401}, {Status: 500}, {Status: 401}}},
		{name: "all 400", faults: []authserver.Fault{{Status: 400}, {Status: 400}, {Status: 400}}, wantBad: true},
		{name: "longest Retry-After wins", faults: []authserver.Fault{{Status: 429, RetryAfter: "5"}, {Status: 401}, {Status: 503, RetryAfter: "30"}}, wantAfter: 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var urls []string
			for _, f := range tt.faults {
				srv := startServer(t, authserver.Options{AutoAccept: true})
				srv.SetFault(f)
				urls = append(urls, srv.URL())
			}
			c := newClient(t, edKey(), urls, nil)
			_, err := c.Authenticate(t.Context())
			require.Error(t, err)
			var se *authapi.ServersError
			require.ErrorAs(t, err, &se)
			require.Len(t, se.Failures, len(urls))
			for i, f := range se.Failures {
				assert.Equal(t, urls[i], f.Server, "failures are listed in the order tried")
				assert.Contains(t, err.Error(), urls[i])
			}
			assert.Equal(t, tt.wantUnauth, errors.Is(err, agent.ErrUnauthorized))
			assert.Equal(t, tt.wantBad, errors.Is(err, agent.ErrBadRequest))
			var ra *agent.RetryAfterError
			if assert.Equal(t, tt.wantAfter > 0, errors.As(err, &ra)) && ra != nil {
				assert.Equal(t, tt.wantAfter, ra.After)
			}
		})
	}
}

func TestOutageAndRecovery(t *testing.T) {
	srv := startServer(t, authserver.Options{AutoAccept: true})
	c := newClient(t, edKey(), []string{srv.URL()}, nil)
	_, err := c.Authenticate(t.Context())
	require.NoError(t, err)

	srv.SetOutage(true)
	_, err = c.Authenticate(t.Context())
	require.Error(t, err)
	assert.NotErrorIs(t, err, agent.ErrUnauthorized, "an outage is not a rejection")
	var ra *agent.RetryAfterError
	assert.False(t, errors.As(err, &ra))
	assert.Contains(t, err.Error(), srv.URL())
	reqs := authRequests(srv)
	require.NotEmpty(t, reqs)
	for _, r := range reqs[1:] {
		assert.Equal(t, 0, r.Status, "the server dropped the connection")
	}

	srv.SetOutage(false)
	tok, err := c.Authenticate(t.Context())
	require.NoError(t, err)
	assert.Equal(t, srv.URL(), tok.ServerURL)
}

func TestTLSFailures(t *testing.T) {
	t.Run("unknown authority stays classifiable", func(t *testing.T) {
		other := testpki.NewCA("someone else")
		leaf := other.Issue(testpki.Options{})
		srv := authserver.New(authserver.Options{TLS: tlsConfig(leaf), AutoAccept: true})
		require.NoError(t, srv.Start(""))
		t.Cleanup(func() { _ = srv.Close() })
		c := newClient(t, edKey(), []string{srv.URL()}, nil)
		_, err := c.Authenticate(t.Context())
		var ua x509.UnknownAuthorityError
		require.ErrorAs(t, err, &ua)
		var ce *agent.ClockError
		assert.False(t, errors.As(err, &ce))
	})

	future := time.Now().Add(48 * time.Hour)
	leaf := pki().Issue(testpki.Options{NotBefore: future, NotAfter: future.Add(24 * time.Hour)})
	srv := authserver.New(authserver.Options{TLS: tlsConfig(leaf), AutoAccept: true})
	require.NoError(t, srv.Start(""))
	t.Cleanup(func() { _ = srv.Close() })

	t.Run("not yet valid while the clock is before the build time", func(t *testing.T) {
		c := newClient(t, edKey(), []string{srv.URL()}, func(c *authapi.Config) { c.BuildTime = time.Now().Add(time.Hour) })
		_, err := c.Authenticate(t.Context())
		var ce *agent.ClockError
		require.ErrorAs(t, err, &ce)
		assert.Contains(t, err.Error(), "waiting for a valid system time")
		assert.Contains(t, err.Error(), "before the build time")
		var ci x509.CertificateInvalidError
		require.ErrorAs(t, err, &ci, "the x509 cause stays reachable")
		assert.Equal(t, x509.Expired, ci.Reason)
	})
	t.Run("not yet valid with a sane clock is no clock error", func(t *testing.T) {
		c := newClient(t, edKey(), []string{srv.URL()}, func(c *authapi.Config) { c.BuildTime = time.Now().Add(-time.Hour) })
		_, err := c.Authenticate(t.Context())
		var ce *agent.ClockError
		assert.False(t, errors.As(err, &ce))
		var ci x509.CertificateInvalidError
		require.ErrorAs(t, err, &ci)
	})
}

// cancelTransport cancels the attempt's context as the first request
// leaves, standing in for a shutdown in the middle of an attempt.
type cancelTransport struct {
	inner  http.RoundTripper
	cancel context.CancelFunc
}

func (c cancelTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.cancel()
	return c.inner.RoundTrip(r)
}

func TestCancelledContext(t *testing.T) {
	first := startServer(t, authserver.Options{AutoAccept: true})
	second := startServer(t, authserver.Options{AutoAccept: true})
	ctx, cancel := context.WithCancel(t.Context())
	c := newClient(t, edKey(), []string{first.URL(), second.URL()}, func(c *authapi.Config) {
		c.HTTPClient = &http.Client{Transport: cancelTransport{inner: httpClient(t).Transport, cancel: cancel}}
	})
	_, err := c.Authenticate(ctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), first.URL())
	assert.Empty(t, authRequests(second), "a cancelled attempt does not move on to the next server")
}

func TestIdentityErrors(t *testing.T) {
	srv := startServer(t, authserver.Options{AutoAccept: true})
	c := newClient(t, edKey(), []string{srv.URL()}, func(c *authapi.Config) {
		c.Identity = func(context.Context) (string, error) { return "", errors.New("script exited 1") }
	})
	_, err := c.Authenticate(t.Context())
	require.ErrorContains(t, err, "read device identity: script exited 1")

	c = newClient(t, edKey(), []string{srv.URL()}, func(c *authapi.Config) { c.Identity = staticIdentity(`["not","an","object"]`) })
	_, err = c.Authenticate(t.Context())
	require.ErrorContains(t, err, "is not a JSON object")
	assert.Empty(t, srv.RequestLog(), "a broken identity never reaches the server")
}

func TestNoSecretsInLogsOrErrors(t *testing.T) {
	const tenant = "TENANT-TOKEN-SECRET-42"
	var logs bytes.Buffer
	logger := logrus.New()
	logger.SetOutput(&logs)
	logger.SetLevel(logrus.TraceLevel)
	srv := startServer(t, authserver.Options{})
	failing := startServer(t, authserver.Options{})
	failing.SetFault(authserver.Fault{Status: 500})
	c := newClient(t, edKey(), []string{failing.URL(), srv.URL()}, func(c *authapi.Config) {
		c.TenantToken = tenant
		c.Logger = logger
	})
	_, err := c.Authenticate(t.Context())
	require.Error(t, err)
	errText := err.Error()
	require.NoError(t, srv.Accept(srv.Devices()[0].ID))
	tok, err := c.Authenticate(t.Context())
	require.NoError(t, err)

	require.Contains(t, logs.String(), "request_id=", "debug lines were written")
	require.Contains(t, logs.String(), "status=500")
	for _, out := range []string{logs.String(), errText, fmt.Sprintf("%v %+v", tok, tok)} {
		assert.NotContains(t, out, tenant)
		assert.NotContains(t, out, tok.JWT())
		assert.NotContains(t, out, strings.Split(tok.JWT(), ".")[1])
	}
}

func TestNewValidatesConfig(t *testing.T) {
	good := func() authapi.Config {
		return authapi.Config{Servers: []string{"https://s.example"}, Signer: edKey(), Identity: staticIdentity("{}"), HTTPClient: &http.Client{}}
	}
	tests := []struct {
		name    string
		mod     func(*authapi.Config)
		wantErr string
	}{
		{name: "valid", mod: func(*authapi.Config) {}},
		{name: "no servers", mod: func(c *authapi.Config) { c.Servers = nil }, wantErr: "no server configured"},
		{name: "no scheme", mod: func(c *authapi.Config) { c.Servers = []string{"s.example"} }, wantErr: `server URL "s.example"`},
		{name: "ftp", mod: func(c *authapi.Config) { c.Servers = []string{"ftp://s.example"} }, wantErr: "not an http(s) URL"},
		{name: "no signer", mod: func(c *authapi.Config) { c.Signer = nil }, wantErr: "no device key"},
		{name: "no identity", mod: func(c *authapi.Config) { c.Identity = nil }, wantErr: "no identity source"},
		{name: "no http client", mod: func(c *authapi.Config) { c.HTTPClient = nil }, wantErr: "no HTTP client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.mod(&cfg)
			c, err := authapi.New(cfg)
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.True(t, strings.HasPrefix(c.PublicKeyPEM(), "-----BEGIN PUBLIC KEY-----\n"))
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			assert.Nil(t, c)
		})
	}
}
