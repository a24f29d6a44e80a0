package trust

import (
	"crypto/x509"
	"path/filepath"
	"testing"

	"github.com/mender-agent/mender-agent/test/testpki"
)

// BenchmarkVerify measures what every new server connection costs the
// store: the stat of the bundle (unchanged) and a chain verification
// against a pool of system-sized roots plus a two-CA bundle.
func BenchmarkVerify(b *testing.B) {
	caA, caB := testpki.NewCA("A"), testpki.NewCA("B")
	inter := caB.Intermediate("B issuing")
	leaf := inter.Issue(testpki.Options{})
	path := testpki.WriteFile(filepath.Join(b.TempDir(), "server.crt"), append(caA.CertPEM(), caB.CertPEM()...))
	system := x509.NewCertPool()
	for range 140 { // about the size of a distribution's CA store
		system.AddCert(testpki.NewCA("system root").Cert)
	}
	s, err := New(Config{ServerCertificate: path, SystemRoots: func() (*x509.CertPool, error) { return system, nil }, Env: func(string) string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	chain := []*x509.Certificate{leaf.Cert, inter.Cert}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.verify("localhost", chain); err != nil {
			b.Fatal(err)
		}
	}
}
