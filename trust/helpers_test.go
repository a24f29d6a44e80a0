package trust_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/internal/atomicfile"
	"github.com/mender-agent/mender-agent/test/testpki"
	"github.com/mender-agent/mender-agent/trust"
)

// now is the fixed device time of these tests.
var now = time.Date(2026, time.June, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return now }

// newCA makes a root CA valid a year either side of now.
func newCA(name string) *testpki.CA {
	return testpki.NewCAValid(name, now.AddDate(-1, 0, 0), now.AddDate(5, 0, 0))
}

// serverCert issues a localhost/127.0.0.1 server certificate valid around now.
func serverCert(ca *testpki.CA) *testpki.Cert {
	return ca.Issue(testpki.Options{NotBefore: now.Add(-24 * time.Hour), NotAfter: now.AddDate(0, 3, 0)})
}

func clientCert(ca *testpki.CA, name string, notAfter time.Time) *testpki.Cert {
	return ca.Issue(testpki.Options{CommonName: name, Client: true, NotBefore: now.Add(-24 * time.Hour), NotAfter: notAfter})
}

// testServer is an HTTPS server on 127.0.0.1 whose certificate can be
// switched while it runs.
type testServer struct {
	*httptest.Server
	cert       atomic.Pointer[tls.Certificate]
	lastClient atomic.Pointer[x509.Certificate]
	chainLen   atomic.Int32
}

type serverOptions struct {
	clientCAs  *testpki.CA // non-nil: require and verify a client certificate
	maxVersion uint16
}

func startServer(t *testing.T, c *testpki.Cert, o serverOptions) *testServer {
	t.Helper()
	ts := &testServer{}
	ts.SetCert(c)
	ts.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			ts.lastClient.Store(r.TLS.PeerCertificates[0])
		}
		if len(r.TLS.VerifiedChains) > 0 {
			ts.chainLen.Store(int32(len(r.TLS.VerifiedChains[0])))
		}
		_, _ = io.WriteString(w, "ok")
	}))
	base := &tls.Config{Time: fixedNow, MaxVersion: o.maxVersion}
	if o.clientCAs != nil {
		base.ClientAuth = tls.RequireAndVerifyClientCert
		base.ClientCAs = testpki.Pool(o.clientCAs)
	}
	ts.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cfg := base.Clone()
		cfg.Certificates = []tls.Certificate{*ts.cert.Load()}
		return cfg, nil
	}}
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

func (ts *testServer) SetCert(c *testpki.Cert) {
	tc := c.TLSCertificate()
	ts.cert.Store(&tc)
}

func (ts *testServer) Host() string {
	u, _ := url.Parse(ts.URL)
	return u.Host
}

// newLogger returns a logger whose entries the hook records.
func newLogger() (*logrus.Logger, *logtest.Hook) {
	l, hook := logtest.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	return l, hook
}

// emptySystem is a system root pool with nothing in it, so tests trust only
// what they configure.
func emptySystem() (*x509.CertPool, error) { return x509.NewCertPool(), nil }

func noEnv(string) string { return "" }

// baseConfig trusts only the bundle at path.
func baseConfig(path string, log logrus.FieldLogger) trust.Config {
	return trust.Config{
		ServerCertificate: path,
		Now:               fixedNow,
		Logger:            log,
		Env:               noEnv,
		SystemRoots:       emptySystem,
	}
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	require.NoError(t, atomicfile.WriteFile(path, data, 0o600))
	return path
}

func bundleFile(t *testing.T, cas ...*testpki.CA) string {
	t.Helper()
	var data []byte
	for _, ca := range cas {
		data = append(data, ca.CertPEM()...)
	}
	return writeFile(t, filepath.Join(t.TempDir(), "server.crt"), data)
}

// get performs a GET with client and returns the error, if any.
func get(t *testing.T, client *http.Client, u string) error {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "ok", string(body))
	return nil
}

// entries returns the messages logged at level.
func entries(hook *logtest.Hook, level logrus.Level) []string {
	var out []string
	for _, e := range hook.AllEntries() {
		if e.Level == level {
			out = append(out, e.Message)
		}
	}
	return out
}

func tlsDial(addr string, cfg *tls.Config) (*tls.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
}
