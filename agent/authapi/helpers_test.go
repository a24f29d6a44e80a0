package authapi_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/agent/authapi"
	"github.com/mender-agent/mender-agent/test/authserver"
	"github.com/mender-agent/mender-agent/test/testpki"
)

const identity = `{"mac":"02:12:61:13:6c:42","serial":"SN-1"}`

// keyTypes are the device key types the server accepts.
var keyTypes = []struct {
	name string
	key  func(t *testing.T) crypto.Signer
}{
	{"ed25519", func(*testing.T) crypto.Signer { _, k, _ := ed25519.GenerateKey(rand.Reader); return k }},
	{"ecdsa-p256", func(*testing.T) crypto.Signer { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k }},
	{"ecdsa-p384", func(*testing.T) crypto.Signer { k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader); return k }},
	{"rsa-2048", func(*testing.T) crypto.Signer { return rsaKey() }},
}

// rsaKey is generated once: RSA generation is slow.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func edKey() crypto.Signer {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	return k
}

// pki is one CA per test binary; servers get leaves from it.
var pki = sync.OnceValue(func() *testpki.CA { return testpki.NewCA("authapi test CA") })

// startServer starts a TLS test server on 127.0.0.1 signed by pki().
func startServer(t *testing.T, opts authserver.Options) *authserver.Server {
	t.Helper()
	leaf := pki().Issue(testpki.Options{})
	opts.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}, MinVersion: tls.VersionTLS12}
	srv := authserver.New(opts)
	require.NoError(t, srv.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// httpClient trusts pki() only.
func httpClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: testpki.Pool(pki()), MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func staticIdentity(s string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return s, nil }
}

// newClient builds a client for servers with key, adjusted by mod.
func newClient(t *testing.T, key crypto.Signer, servers []string, mod func(*authapi.Config)) *authapi.Client {
	t.Helper()
	cfg := authapi.Config{
		Servers:    servers,
		Signer:     key,
		Identity:   staticIdentity(identity),
		HTTPClient: httpClient(t),
		UserAgent:  "mender-agent/1.2.3-test",
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := authapi.New(cfg)
	require.NoError(t, err)
	return c
}

// authRequests returns the auth requests a server logged.
func authRequests(srv *authserver.Server) []authserver.Request {
	var out []authserver.Request
	for _, r := range srv.RequestLog() {
		if r.Path == authserver.PathAuth {
			out = append(out, r)
		}
	}
	return out
}

func tlsConfig(c *testpki.Cert) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.TLSCertificate()}, MinVersion: tls.VersionTLS12}
}
