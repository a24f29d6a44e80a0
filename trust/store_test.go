package trust_test

import (
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/test/testpki"
	"github.com/mender-agent/mender-agent/trust"
)

func TestBundleOfManyCertificates(t *testing.T) {
	tests := []struct {
		name string
		n    int
	}{
		{name: "one certificate", n: 1},
		{name: "two certificates", n: 2},
		{name: "five certificates", n: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cas []*testpki.CA
			for i := range tt.n {
				cas = append(cas, newCA(fmt.Sprintf("CA %d", i+1)))
			}
			log, _ := newLogger()
			s, err := trust.New(baseConfig(bundleFile(t, cas...), log))
			require.NoError(t, err)
			assert.Len(t, s.TrustedCertificates(), tt.n)
			client := s.HTTPClient(10 * time.Second)
			defer client.CloseIdleConnections()

			// A server under any CA of the bundle verifies, one outside fails.
			for i, ca := range cas {
				srv := startServer(t, serverCert(ca), serverOptions{})
				assert.NoError(t, get(t, client, srv.URL), "server under CA %d", i+1)
			}
			other := startServer(t, serverCert(newCA("other")), serverOptions{})
			err = get(t, client, other.URL)
			var ua x509.UnknownAuthorityError
			assert.ErrorAs(t, err, &ua)
		})
	}
}

func TestCARotationWithoutRestart(t *testing.T) {
	caA, caB := newCA("CA A"), newCA("CA B")
	path := bundleFile(t, caA)
	log, hook := newLogger()
	s, err := trust.New(baseConfig(path, log))
	require.NoError(t, err)
	client := s.HTTPClient(10 * time.Second)
	defer client.CloseIdleConnections()
	srvA := startServer(t, serverCert(caA), serverOptions{})

	// 1. Bundle holds A, server under A.
	require.NoError(t, get(t, client, srvA.URL))

	// 2. The update adds B next to A; nothing breaks.
	writeFile(t, path, append(caA.CertPEM(), caB.CertPEM()...))
	client.CloseIdleConnections()
	require.NoError(t, get(t, client, srvA.URL))
	assert.Len(t, s.TrustedCertificates(), 2)

	// 3. The server switches to a certificate under B while the agent runs.
	srvA.SetCert(serverCert(caB))
	client.CloseIdleConnections()
	require.NoError(t, get(t, client, srvA.URL), "A+B bundle must accept the B-signed server")

	// 4. The bundle drops A: A-signed servers now fail with the hint.
	writeFile(t, path, caB.CertPEM())
	client.CloseIdleConnections()
	require.NoError(t, get(t, client, srvA.URL))
	oldServer := startServer(t, serverCert(caA), serverOptions{})
	err = get(t, client, oldServer.URL)
	require.Error(t, err)
	var ua x509.UnknownAuthorityError
	require.ErrorAs(t, err, &ua)
	leaf := serverCertOf(t, err)
	want := fmt.Sprintf("server %s presented certificate %q issued by %q, which is not a trusted CA: ServerCertificate (%s) or the system roots must hold the CA that issued it; if that issuer is an intermediate CA, configure the server to send its full certificate chain",
		oldServer.URL, leaf.Subject.String(), caA.Cert.Subject.String(), path)
	assert.Equal(t, want, s.Explain(err, oldServer.URL))
	assert.Empty(t, entries(hook, logrus.ErrorLevel))
}

// serverCertOf returns the leaf of the VerifyError in err.
func serverCertOf(t *testing.T, err error) *x509.Certificate {
	t.Helper()
	var ve *trust.VerifyError
	require.ErrorAs(t, err, &ve)
	require.NotEmpty(t, ve.Certificates)
	return ve.Certificates[0]
}

func TestBrokenBundleKeepsLastGood(t *testing.T) {
	caA, caB := newCA("CA A"), newCA("CA B")
	path := bundleFile(t, caA)
	log, hook := newLogger()
	s, err := trust.New(baseConfig(path, log))
	require.NoError(t, err)
	client := s.HTTPClient(10 * time.Second)
	defer client.CloseIdleConnections()
	srv := startServer(t, serverCert(caA), serverOptions{})

	writeFile(t, path, []byte("-----BEGIN CERTIFICATE-----\nnot base64 at all\n"))
	for range 3 {
		client.CloseIdleConnections()
		require.NoError(t, get(t, client, srv.URL), "the last good bundle stays in force")
	}
	errs := entries(hook, logrus.ErrorLevel)
	require.Len(t, errs, 1, "a broken file version is reported once")
	assert.Equal(t, "ServerCertificate "+path+" changed but cannot be used (no usable certificate: block 1: a PEM block is truncated or malformed; it is ignored); keeping the 1 certificate(s) loaded before", errs[0])

	// Reload (SIGHUP) also keeps the last good set and says why.
	err = s.Reload()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ServerCertificate "+path)
	assert.Len(t, s.TrustedCertificates(), 1)

	// A fixed file is picked up.
	writeFile(t, path, caB.CertPEM())
	srv.SetCert(serverCert(caB))
	client.CloseIdleConnections()
	require.NoError(t, get(t, client, srv.URL))
}

func TestBundleWarnings(t *testing.T) {
	ca := newCA("CA")
	leaf := serverCert(ca)
	data := append(ca.CertPEM(), leaf.KeyPEM()...)
	data = append(data, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\ntrailing words\n")...)
	path := writeFile(t, filepath.Join(t.TempDir(), "server.crt"), data)
	log, hook := newLogger()
	s, err := trust.New(baseConfig(path, log))
	require.NoError(t, err)
	assert.Len(t, s.TrustedCertificates(), 1)

	warns := entries(hook, logrus.WarnLevel)
	require.Len(t, warns, 3)
	assert.Equal(t, "ServerCertificate "+path+": block 2 (PRIVATE KEY): not a certificate; only CERTIFICATE blocks are used", warns[0])
	assert.True(t, strings.HasPrefix(warns[1], "ServerCertificate "+path+": block 3 (CERTIFICATE): x509: "), warns[1])
	assert.Equal(t, "ServerCertificate "+path+": block 4: text after the last PEM block is not PEM; it is ignored", warns[2])
	keyBody := strings.Split(string(leaf.KeyPEM()), "\n")[1]
	for _, e := range hook.AllEntries() {
		assert.NotContains(t, e.Message, keyBody, "key material must never be logged")
	}
}

func TestRoots(t *testing.T) {
	ca := newCA("CA")
	systemWith := func() (*x509.CertPool, error) { return testpki.Pool(ca), nil }
	tests := []struct {
		name     string
		bundle   func(t *testing.T) string
		system   func() (*x509.CertPool, error)
		wantErr  error
		wantWarn string
	}{
		{
			name:    "no roots at all",
			bundle:  func(*testing.T) string { return "" },
			system:  emptySystem,
			wantErr: trust.ErrNoRoots,
		},
		{
			name:    "bundle missing and system empty",
			bundle:  func(t *testing.T) string { return filepath.Join(t.TempDir(), "missing.crt") },
			system:  emptySystem,
			wantErr: trust.ErrNoRoots,
		},
		{
			name:     "bundle missing, system roots used",
			bundle:   func(t *testing.T) string { return filepath.Join(t.TempDir(), "missing.crt") },
			system:   systemWith,
			wantWarn: "does not exist; using the system roots only",
		},
		{
			name:     "bundle empty, system roots used",
			bundle:   func(t *testing.T) string { return writeFile(t, filepath.Join(t.TempDir(), "empty.crt"), nil) },
			system:   systemWith,
			wantWarn: "file is empty; expected one or more PEM certificates; using the system roots only",
		},
		{
			name:   "system roots only",
			bundle: func(*testing.T) string { return "" },
			system: systemWith,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, hook := newLogger()
			cfg := baseConfig(tt.bundle(t), log)
			cfg.SystemRoots = tt.system
			s, err := trust.New(cfg)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Nil(t, s)
				return
			}
			require.NoError(t, err)
			if tt.wantWarn != "" {
				warns := entries(hook, logrus.WarnLevel)
				require.Len(t, warns, 1)
				assert.Contains(t, warns[0], cfg.ServerCertificate)
				assert.Contains(t, warns[0], tt.wantWarn)
			}
			srv := startServer(t, serverCert(ca), serverOptions{})
			client := s.HTTPClient(10 * time.Second)
			defer client.CloseIdleConnections()
			assert.NoError(t, get(t, client, srv.URL), "system roots are trusted")
		})
	}
}

func TestVerificationHints(t *testing.T) {
	ca := newCA("Fleet CA")
	inter := ca.Intermediate("Fleet Issuing CA")
	early := time.Date(2024, time.March, 1, 0, 0, 0, 0, time.UTC)
	expired := ca.Issue(testpki.Options{NotBefore: now.AddDate(0, -3, 0), NotAfter: now.AddDate(0, 0, -1)})
	future := ca.Issue(testpki.Options{NotBefore: now.AddDate(0, 0, 2), NotAfter: now.AddDate(1, 0, 0)})
	oldCA := testpki.NewCAValid("Old CA", early.AddDate(-1, 0, 0), early.AddDate(5, 0, 0))
	notYetFor2024 := oldCA.Issue(testpki.Options{NotBefore: early.AddDate(0, 1, 0), NotAfter: early.AddDate(2, 0, 0)})
	wrongHost := ca.Issue(testpki.Options{DNSNames: []string{"mender.example.com", "eu.mender.example.com"}, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 1, 0)})
	unknown := serverCert(newCA("Rogue CA"))
	leafOnly := inter.Issue(testpki.Options{NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 1, 0)})
	leafOnly.Chain = nil // the server forgets to send its intermediate

	tests := []struct {
		name    string
		cert    *testpki.Cert
		bundle  []*testpki.CA
		now     time.Time
		errType any
		want    func(server, path string, c *x509.Certificate) string
	}{
		{
			name: "expired", cert: expired, bundle: []*testpki.CA{ca}, now: now, errType: &x509.CertificateInvalidError{},
			want: func(server, _ string, _ *x509.Certificate) string {
				return fmt.Sprintf("server %s presented certificate %q that has expired (valid from 2026-03-01T12:00:00Z to 2026-05-31T12:00:00Z, the device time is 2026-06-01T12:00:00Z); renew the certificate on the server",
					server, expired.Cert.Subject.String())
			},
		},
		{
			name: "not yet valid", cert: future, bundle: []*testpki.CA{ca}, now: now, errType: &x509.CertificateInvalidError{},
			want: func(server, _ string, _ *x509.Certificate) string {
				return fmt.Sprintf("server %s presented certificate %q that is not valid yet (valid from 2026-06-03T12:00:00Z to 2027-06-01T12:00:00Z, the device time is 2026-06-01T12:00:00Z); check the device clock and the certificate's start date",
					server, future.Cert.Subject.String())
			},
		},
		{
			name: "not yet valid because the clock is unset", cert: notYetFor2024, bundle: []*testpki.CA{oldCA}, now: early, errType: &x509.CertificateInvalidError{},
			want: func(server, _ string, _ *x509.Certificate) string {
				return fmt.Sprintf("server %s presented certificate %q that is not valid yet (valid from 2024-04-01T00:00:00Z to 2026-03-01T00:00:00Z, the device time is 2024-03-01T00:00:00Z); the device clock looks wrong (earlier than 2025-01-01T00:00:00Z): check the device clock (NTP, RTC)",
					server, notYetFor2024.Cert.Subject.String())
			},
		},
		{
			name: "wrong host", cert: wrongHost, bundle: []*testpki.CA{ca}, now: now, errType: &x509.HostnameError{},
			want: func(server, _ string, _ *x509.Certificate) string {
				return fmt.Sprintf("host name mismatch: expected \"127.0.0.1\", but certificate %q is for mender.example.com, eu.mender.example.com; use a server URL with one of those names or reissue the server certificate",
					wrongHost.Cert.Subject.String())
			},
		},
		{
			name: "unknown CA", cert: unknown, bundle: []*testpki.CA{ca}, now: now, errType: &x509.UnknownAuthorityError{},
			want: func(server, path string, c *x509.Certificate) string {
				return fmt.Sprintf("server %s presented certificate %q issued by \"CN=Rogue CA,O=mender-agent tests\", which is not a trusted CA: ServerCertificate (%s) or the system roots must hold the CA that issued it; if that issuer is an intermediate CA, configure the server to send its full certificate chain",
					server, c.Subject.String(), path)
			},
		},
		{
			name: "intermediate missing", cert: leafOnly, bundle: []*testpki.CA{ca}, now: now, errType: &x509.UnknownAuthorityError{},
			want: func(server, path string, c *x509.Certificate) string {
				return fmt.Sprintf("server %s presented certificate %q issued by \"CN=Fleet Issuing CA,O=mender-agent tests\", which is not a trusted CA: ServerCertificate (%s) or the system roots must hold the CA that issued it; if that issuer is an intermediate CA, configure the server to send its full certificate chain",
					server, c.Subject.String(), path)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, _ := newLogger()
			path := bundleFile(t, tt.bundle...)
			cfg := baseConfig(path, log)
			devTime := tt.now
			cfg.Now = func() time.Time { return devTime }
			s, err := trust.New(cfg)
			require.NoError(t, err)
			srv := startServer(t, tt.cert, serverOptions{})
			client := s.HTTPClient(10 * time.Second)
			defer client.CloseIdleConnections()

			err = get(t, client, srv.URL)
			require.Error(t, err)
			switch tt.errType.(type) {
			case *x509.CertificateInvalidError:
				var e x509.CertificateInvalidError
				require.ErrorAs(t, err, &e)
				assert.Equal(t, x509.Expired, e.Reason)
			case *x509.HostnameError:
				var e x509.HostnameError
				require.ErrorAs(t, err, &e)
			case *x509.UnknownAuthorityError:
				var e x509.UnknownAuthorityError
				require.ErrorAs(t, err, &e)
			}
			assert.Equal(t, tt.want(srv.URL, path, tt.cert.Cert), s.Explain(err, srv.URL))
			assert.Equal(t, tt.want("127.0.0.1", path, tt.cert.Cert), trust.Hint(err), "the error carries everything the hint needs")

			// The intermediate added to the bundle fixes the missing-chain case.
			if tt.name == "intermediate missing" {
				writeFile(t, path, append(ca.CertPEM(), inter.CertPEM()...))
				client.CloseIdleConnections()
				assert.NoError(t, get(t, client, srv.URL))
			}
		})
	}
}

func TestSkipVerify(t *testing.T) {
	log, hook := newLogger()
	cfg := baseConfig("", log)
	cfg.SystemRoots = func() (*x509.CertPool, error) { return testpki.Pool(newCA("some root")), nil }
	cfg.SkipVerify = true
	s, err := trust.New(cfg)
	require.NoError(t, err)
	warns := entries(hook, logrus.WarnLevel)
	require.Len(t, warns, 1)
	assert.Contains(t, warns[0], "SkipVerify is set: server certificates are NOT verified")

	srv := startServer(t, serverCert(newCA("Rogue CA")), serverOptions{})
	client := s.HTTPClient(10 * time.Second)
	defer client.CloseIdleConnections()
	require.NoError(t, get(t, client, srv.URL))

	hook.Reset()
	assert.True(t, s.WarnIfInsecure(srv.URL))
	warns = entries(hook, logrus.WarnLevel)
	require.Len(t, warns, 1)
	assert.Equal(t, "authenticating without verifying the server certificate (SkipVerify is set)", warns[0])
	assert.Equal(t, srv.URL, hook.LastEntry().Data[trust.FieldServer])

	secure, err := trust.New(baseConfig(bundleFile(t, newCA("CA")), log))
	require.NoError(t, err)
	hook.Reset()
	assert.False(t, secure.WarnIfInsecure(srv.URL))
	assert.Empty(t, hook.AllEntries())
}

func TestTLSConfig(t *testing.T) {
	ca := newCA("CA")
	log, _ := newLogger()
	s, err := trust.New(baseConfig(bundleFile(t, ca), log))
	require.NoError(t, err)
	srv := startServer(t, serverCert(ca), serverOptions{})

	cfg := s.TLSConfig()
	assert.Equal(t, uint16(0x0303), cfg.MinVersion, "TLS 1.2 at least")

	t.Run("by name", func(t *testing.T) {
		cfg := s.TLSConfig()
		cfg.ServerName = "localhost"
		conn, err := tlsDial(srv.Host(), cfg)
		require.NoError(t, err)
		assert.Equal(t, "localhost", conn.ConnectionState().ServerName, "SNI is sent")
		conn.Close()
	})
	t.Run("IP address without ServerName fails closed", func(t *testing.T) {
		_, err := tlsDial(srv.Host(), s.TLSConfig())
		require.ErrorIs(t, err, trust.ErrNoServerName)
	})
	t.Run("ClientConfig for an IP address", func(t *testing.T) {
		conn, err := tlsDial(srv.Host(), s.ClientConfig("127.0.0.1"))
		require.NoError(t, err)
		conn.Close()
	})
	t.Run("ClientConfig rejects the wrong name", func(t *testing.T) {
		_, err := tlsDial(srv.Host(), s.ClientConfig("mender.example.com"))
		var he x509.HostnameError
		require.ErrorAs(t, err, &he)
		assert.Equal(t, "mender.example.com", he.Host)
	})
}

func TestExplainOtherErrors(t *testing.T) {
	assert.Empty(t, trust.Hint(nil))
	assert.Empty(t, trust.Hint(errors.New("connection refused")))
}

func TestExpiredCAInBundleIsReported(t *testing.T) {
	old := testpki.NewCAValid("Retired CA", now.AddDate(-6, 0, 0), now.AddDate(0, -1, 0))
	current := newCA("Current CA")
	path := bundleFile(t, old, current)
	log, hook := newLogger()
	s, err := trust.New(baseConfig(path, log))
	require.NoError(t, err)
	assert.Len(t, s.TrustedCertificates(), 2)
	warns := entries(hook, logrus.WarnLevel)
	require.Len(t, warns, 1)
	assert.Equal(t, "ServerCertificate "+path+": certificate 1 (CN=Retired CA,O=mender-agent tests) expired at 2026-05-01T12:00:00Z; it no longer verifies any server", warns[0])
}
