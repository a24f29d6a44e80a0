package trust_test

import (
	"crypto"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/test/testpki"
	"github.com/mender-agent/mender-agent/trust"
)

// clientFiles writes c's certificate (with chain) and key into dir.
func clientFiles(t *testing.T, dir string, c *testpki.Cert) (certPath, keyPath string) {
	t.Helper()
	return writeFile(t, filepath.Join(dir, "client.crt"), c.CertPEM()),
		writeFile(t, filepath.Join(dir, "client.key"), c.KeyPEM())
}

func mtlsConfig(t *testing.T, bundle string, c *testpki.Cert, log logrus.FieldLogger) trust.Config {
	t.Helper()
	cfg := baseConfig(bundle, log)
	cfg.ClientCertificate, cfg.ClientKey = clientFiles(t, t.TempDir(), c)
	return cfg
}

var versions = []struct {
	name string
	max  uint16
}{
	{name: "TLS 1.2", max: tls.VersionTLS12},
	{name: "TLS 1.3", max: tls.VersionTLS13},
}

func TestMutualTLSRequiredAndMissing(t *testing.T) {
	serverCA, clientCA := newCA("Server CA"), newCA("Device CA")
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			log, _ := newLogger()
			s, err := trust.New(baseConfig(bundleFile(t, serverCA), log))
			require.NoError(t, err)
			srv := startServer(t, serverCert(serverCA), serverOptions{clientCAs: clientCA, maxVersion: v.max})
			client := s.HTTPClient(10 * time.Second)
			defer client.CloseIdleConnections()

			err = get(t, client, srv.URL)
			require.Error(t, err)
			alert := map[uint16]string{tls.VersionTLS12: "handshake_failure", tls.VersionTLS13: "certificate_required"}[v.max]
			assert.Equal(t, fmt.Sprintf("mutual TLS failed: server %s requires a client certificate (tls alert %s) but none is configured; set HttpsClient.Certificate and HttpsClient.Key",
				srv.URL, alert), s.Explain(err, srv.URL))
		})
	}
}

func TestMutualTLSWithChain(t *testing.T) {
	serverCA, deviceRoot := newCA("Server CA"), newCA("Device Root CA")
	deviceIssuing := deviceRoot.Intermediate("Device Issuing CA")
	cert := clientCert(deviceIssuing, "device-0001", now.AddDate(1, 0, 0))
	require.Len(t, cert.Chain, 1, "the client file carries the intermediate")

	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			log, hook := newLogger()
			s, err := trust.New(mtlsConfig(t, bundleFile(t, serverCA), cert, log))
			require.NoError(t, err)
			srv := startServer(t, serverCert(serverCA), serverOptions{clientCAs: deviceRoot, maxVersion: v.max})
			client := s.HTTPClient(10 * time.Second)
			defer client.CloseIdleConnections()

			require.NoError(t, get(t, client, srv.URL))
			got := srv.lastClient.Load()
			require.NotNil(t, got)
			assert.Equal(t, cert.Cert.SerialNumber, got.SerialNumber)
			assert.Equal(t, int32(3), srv.chainLen.Load(), "leaf, intermediate from the file, root on the server")
			assert.Empty(t, entries(hook, logrus.WarnLevel))
		})
	}
}

func TestMutualTLSRejected(t *testing.T) {
	serverCA, trustedCA := newCA("Server CA"), newCA("Device CA")
	stranger := clientCert(newCA("Unknown Device CA"), "device-0002", now.AddDate(1, 0, 0))
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			log, _ := newLogger()
			cfg := mtlsConfig(t, bundleFile(t, serverCA), stranger, log)
			s, err := trust.New(cfg)
			require.NoError(t, err)
			srv := startServer(t, serverCert(serverCA), serverOptions{clientCAs: trustedCA, maxVersion: v.max})
			client := s.HTTPClient(10 * time.Second)
			defer client.CloseIdleConnections()

			err = get(t, client, srv.URL)
			require.Error(t, err)
			c := stranger.Cert
			assert.Equal(t, fmt.Sprintf("mutual TLS failed: server %s rejected the client certificate (tls alert unknown_certificate_authority); sent %s subject %q serial %x issued by %q, valid until 2027-06-01T12:00:00Z; the server must trust its issuer",
				srv.URL, cfg.ClientCertificate, c.Subject.String(), c.SerialNumber, c.Issuer.String()), s.Explain(err, srv.URL))
		})
	}
}

func TestClientCertificateExpiry(t *testing.T) {
	ca := newCA("Device CA")
	tests := []struct {
		name     string
		notAfter time.Time
		window   time.Duration
		level    logrus.Level
		want     string // "" means nothing logged at warning level or above
	}{
		{
			name: "about to expire", notAfter: now.AddDate(0, 0, 10), level: logrus.WarnLevel,
			want: "client certificate %s expires at 2026-06-11T12:00:00Z (in 10 days); renew it before then",
		},
		{
			name: "outside a shorter window", notAfter: now.AddDate(0, 0, 10), window: 7 * 24 * time.Hour,
		},
		{
			name: "inside a longer window", notAfter: now.AddDate(0, 2, 0), window: 90 * 24 * time.Hour, level: logrus.WarnLevel,
			want: "client certificate %s expires at 2026-08-01T12:00:00Z (in 61 days); renew it before then",
		},
		{
			name: "expired", notAfter: now.AddDate(0, 0, -1), level: logrus.ErrorLevel,
			want: "client certificate %s expired at 2026-05-31T12:00:00Z (device time 2026-06-01T12:00:00Z); servers requiring mutual TLS will reject it: renew it",
		},
		{
			name: "valid for long", notAfter: now.AddDate(1, 0, 0),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, hook := newLogger()
			cert := ca.Issue(testpki.Options{CommonName: "device", Client: true, NotBefore: now.AddDate(0, -6, 0), NotAfter: tt.notAfter})
			cfg := mtlsConfig(t, bundleFile(t, ca), cert, log)
			cfg.CertExpiryWarning = tt.window
			_, err := trust.New(cfg)
			require.NoError(t, err)
			var got []*logrus.Entry
			for _, e := range hook.AllEntries() {
				if e.Level <= logrus.WarnLevel {
					got = append(got, e)
				}
			}
			if tt.want == "" {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			assert.Equal(t, tt.level, got[0].Level)
			assert.Equal(t, fmt.Sprintf(tt.want, cfg.ClientCertificate), got[0].Message)
			assert.Equal(t, tt.notAfter.Format(time.RFC3339), got[0].Data[trust.FieldExpires])
		})
	}
}

func TestClientCertificateConfigErrors(t *testing.T) {
	ca := newCA("Device CA")
	good := clientCert(ca, "device", now.AddDate(1, 0, 0))
	other := clientCert(ca, "other", now.AddDate(1, 0, 0))
	dir := t.TempDir()
	certPath, keyPath := clientFiles(t, dir, good)
	otherKey := writeFile(t, filepath.Join(dir, "other.key"), other.KeyPEM())
	encrypted := writeFile(t, filepath.Join(dir, "enc.key"), pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}}))
	tss2 := writeFile(t, filepath.Join(dir, "tpm.key"), pem.EncodeToMemory(&pem.Block{Type: "TSS2 PRIVATE KEY", Bytes: []byte{1, 2, 3}}))
	missing := filepath.Join(dir, "missing.crt")

	tests := []struct {
		name string
		cert string
		key  string
		want string
	}{
		{name: "certificate without key", cert: certPath,
			want: "client certificate unusable: HttpsClient.Certificate is set to " + certPath + " but HttpsClient.Key is empty; set both for mutual TLS or neither"},
		{name: "key without certificate", key: keyPath,
			want: "client certificate unusable: HttpsClient.Key is set but HttpsClient.Certificate is empty; set both for mutual TLS or neither"},
		{name: "key of another certificate", cert: certPath, key: otherKey,
			want: fmt.Sprintf("client certificate unusable: HttpsClient.Certificate %s (%s) does not belong to the key HttpsClient.Key %s; install the matching pair", certPath, good.Cert.Subject, otherKey)},
		{name: "missing certificate file", cert: missing, key: keyPath,
			want: "client certificate unusable: HttpsClient.Certificate " + missing + ": open " + missing + ": no such file or directory"},
		{name: "encrypted key", cert: certPath, key: encrypted,
			want: "client certificate unusable: HttpsClient.Key " + encrypted + ": the key is encrypted; the mutual-TLS key must be unencrypted (protect it with file permissions or a TPM)"},
		{name: "TPM key without the TPM backend", cert: certPath, key: tss2,
			want: "client certificate unusable: HttpsClient.Key " + tss2 + ": the key is a TPM key; it needs the TPM key backend"},
		{name: "key file is a certificate", cert: certPath, key: certPath,
			want: "client certificate unusable: HttpsClient.Key " + certPath + ": no PEM private key found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, _ := newLogger()
			cfg := baseConfig(bundleFile(t, ca), log)
			cfg.ClientCertificate, cfg.ClientKey = tt.cert, tt.key
			s, err := trust.New(cfg)
			require.ErrorIs(t, err, trust.ErrClientCertificate)
			assert.Nil(t, s)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

func TestClientKeyHooks(t *testing.T) {
	serverCA, deviceCA := newCA("Server CA"), newCA("Device CA")
	cert := clientCert(deviceCA, "tpm-device", now.AddDate(1, 0, 0))
	srv := startServer(t, serverCert(serverCA), serverOptions{clientCAs: deviceCA})

	t.Run("ClientSigner", func(t *testing.T) {
		log, _ := newLogger()
		cfg := baseConfig(bundleFile(t, serverCA), log)
		cfg.ClientCertificate, _ = clientFiles(t, t.TempDir(), cert)
		cfg.ClientSigner = cert.Key
		s, err := trust.New(cfg)
		require.NoError(t, err)
		client := s.HTTPClient(10 * time.Second)
		defer client.CloseIdleConnections()
		require.NoError(t, get(t, client, srv.URL))
		assert.Equal(t, cert.Cert.SerialNumber, srv.lastClient.Load().SerialNumber)
	})
	t.Run("LoadClientKey", func(t *testing.T) {
		log, _ := newLogger()
		cfg := baseConfig(bundleFile(t, serverCA), log)
		cfg.ClientCertificate, cfg.ClientKey = clientFiles(t, t.TempDir(), cert)
		var loaded []string
		cfg.LoadClientKey = func(path string) (crypto.Signer, error) {
			loaded = append(loaded, path)
			return cert.Key, nil
		}
		s, err := trust.New(cfg)
		require.NoError(t, err)
		assert.Equal(t, []string{cfg.ClientKey}, loaded)
		client := s.HTTPClient(10 * time.Second)
		defer client.CloseIdleConnections()
		require.NoError(t, get(t, client, srv.URL))
	})
}

func TestClientCertificateRotation(t *testing.T) {
	serverCA, deviceCA := newCA("Server CA"), newCA("Device CA")
	first := clientCert(deviceCA, "device", now.AddDate(0, 0, 20))
	second := clientCert(deviceCA, "device", now.AddDate(1, 0, 0))
	log, hook := newLogger()
	cfg := mtlsConfig(t, bundleFile(t, serverCA), first, log)
	s, err := trust.New(cfg)
	require.NoError(t, err)
	srv := startServer(t, serverCert(serverCA), serverOptions{clientCAs: deviceCA})
	client := s.HTTPClient(10 * time.Second)
	defer client.CloseIdleConnections()

	require.NoError(t, get(t, client, srv.URL))
	assert.Equal(t, first.Cert.SerialNumber, srv.lastClient.Load().SerialNumber)

	// Half-way through an update the new certificate sits next to the old
	// key: the old pair stays in use and the mismatch is reported once.
	hook.Reset()
	writeFile(t, cfg.ClientCertificate, second.CertPEM())
	for range 2 {
		client.CloseIdleConnections()
		require.NoError(t, get(t, client, srv.URL))
		assert.Equal(t, first.Cert.SerialNumber, srv.lastClient.Load().SerialNumber)
	}
	assert.Len(t, entries(hook, logrus.ErrorLevel), 1)

	// The new key completes the pair: it is presented without a restart.
	writeFile(t, cfg.ClientKey, second.KeyPEM())
	client.CloseIdleConnections()
	require.NoError(t, get(t, client, srv.URL))
	assert.Equal(t, second.Cert.SerialNumber, srv.lastClient.Load().SerialNumber)
	assert.Equal(t, second.Cert.SerialNumber, s.ClientCertificate().SerialNumber)
}

func TestClientCertificateExpiryReportedWhileRunning(t *testing.T) {
	serverCA, deviceCA := newCA("Server CA"), newCA("Device CA")
	cert := clientCert(deviceCA, "device", now.AddDate(0, 0, 40))
	log, hook := newLogger()
	cfg := mtlsConfig(t, bundleFile(t, serverCA), cert, log)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	cfg.Now = func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	s, err := trust.New(cfg)
	require.NoError(t, err)
	srv := startServer(t, serverCert(serverCA), serverOptions{clientCAs: deviceCA})
	client := s.HTTPClient(10 * time.Second)
	defer client.CloseIdleConnections()

	connect := func() {
		client.CloseIdleConnections()
		require.NoError(t, get(t, client, srv.URL))
	}
	connect()
	assert.Empty(t, entries(hook, logrus.WarnLevel), "40 days left: outside the 30-day window")

	clock.Store(now.AddDate(0, 0, 15).UnixNano()) // 25 days left
	connect()
	connect()
	want := fmt.Sprintf("client certificate %s expires at 2026-07-11T12:00:00Z (in 25 days); renew it before then", cfg.ClientCertificate)
	assert.Equal(t, []string{want}, entries(hook, logrus.WarnLevel), "reported once a day, not per connection")

	clock.Store(now.AddDate(0, 0, 16).UnixNano()) // a day later
	connect()
	assert.Len(t, entries(hook, logrus.WarnLevel), 2)
	assert.Equal(t, "client certificate "+cfg.ClientCertificate+" expires at 2026-07-11T12:00:00Z (in 24 days); renew it before then", hook.LastEntry().Message)
}

func TestHintFromHandshakeErrorAlone(t *testing.T) {
	serverCA, trustedCA := newCA("Server CA"), newCA("Device CA")
	stranger := clientCert(newCA("Unknown Device CA"), "device-0003", now.AddDate(1, 0, 0))
	log, _ := newLogger()
	s, err := trust.New(mtlsConfig(t, bundleFile(t, serverCA), stranger, log))
	require.NoError(t, err)
	srv := startServer(t, serverCert(serverCA), serverOptions{clientCAs: trustedCA, maxVersion: tls.VersionTLS12})
	client := s.HTTPClient(10 * time.Second)
	defer client.CloseIdleConnections()

	err = get(t, client, srv.URL)
	var he *trust.HandshakeError
	require.ErrorAs(t, err, &he)
	assert.True(t, he.ClientCertificateRequested)
	require.NotNil(t, he.ClientCertificate)
	assert.Equal(t, stranger.Cert.SerialNumber, he.ClientCertificate.SerialNumber)
	c := stranger.Cert
	assert.Equal(t, fmt.Sprintf(`mutual TLS failed: server %s rejected the client certificate (tls alert unknown_certificate_authority); sent subject %q serial %x issued by %q, valid until 2027-06-01T12:00:00Z; the server must trust its issuer`,
		srv.Host(), c.Subject.String(), c.SerialNumber, c.Issuer.String()), trust.Hint(err))
}
