// Package testpki makes certificate authorities and certificates inside
// tests, so no certificate that can expire is ever committed. It serves the
// trust, forwarder, authapi and end-to-end tests and the local test server.
//
// It is test infrastructure: shipped code must not import it. It imports the
// standard library only.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"sync/atomic"
	"time"
)

var serial atomic.Int64

// CA is a certificate authority that can issue leaf and intermediate
// certificates. It is safe for concurrent use.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Chain holds the CA's own issuers, nearest first (empty for a root).
	Chain []*x509.Certificate
}

// Options describe a certificate to issue. Zero times mean "valid from an
// hour ago for a day".
type Options struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	NotBefore  time.Time
	NotAfter   time.Time
	// Client makes a client-authentication certificate instead of a server
	// one.
	Client bool
}

// Cert is an issued certificate with its private key.
type Cert struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Chain holds the intermediates between Cert and the root, nearest
	// first.
	Chain []*x509.Certificate
}

func newKey() crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("testpki: generate key: %v", err))
	}
	return k
}

func window(nb, na time.Time) (time.Time, time.Time) {
	if nb.IsZero() {
		nb = time.Now().Add(-time.Hour)
	}
	if na.IsZero() {
		na = nb.Add(25 * time.Hour)
	}
	return nb, na
}

// NewCA makes a self-signed root CA named name, valid from an hour ago for
// ten years.
func NewCA(name string) *CA {
	return NewCAValid(name, time.Now().Add(-time.Hour), time.Now().Add(10*365*24*time.Hour))
}

// NewCAValid makes a self-signed root CA with the given validity window.
func NewCAValid(name string, notBefore, notAfter time.Time) *CA {
	key := newKey()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"mender-agent tests"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		panic(fmt.Sprintf("testpki: create CA %s: %v", name, err))
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return &CA{Cert: cert, Key: key}
}

// Intermediate issues an intermediate CA under ca.
func (ca *CA) Intermediate(name string) *CA {
	key := newKey()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"mender-agent tests"}},
		NotBefore:             ca.Cert.NotBefore,
		NotAfter:              ca.Cert.NotAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		panic(fmt.Sprintf("testpki: create intermediate %s: %v", name, err))
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	chain := append([]*x509.Certificate{ca.Cert}, ca.Chain...)
	return &CA{Cert: cert, Key: key, Chain: chain}
}

// Issue issues a leaf certificate. A server certificate without names gets
// "localhost", 127.0.0.1 and ::1.
func (ca *CA) Issue(o Options) *Cert {
	key := newKey()
	nb, na := window(o.NotBefore, o.NotAfter)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: o.CommonName, Organization: []string{"mender-agent tests"}},
		NotBefore:    nb,
		NotAfter:     na,
		DNSNames:     o.DNSNames,
		IPAddresses:  o.IPs,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if o.Client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		if len(o.DNSNames) == 0 && len(o.IPs) == 0 {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
	}
	if tmpl.Subject.CommonName == "" && len(tmpl.DNSNames) > 0 {
		tmpl.Subject.CommonName = tmpl.DNSNames[0]
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		panic(fmt.Sprintf("testpki: issue %s: %v", o.CommonName, err))
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	var chain []*x509.Certificate
	if len(ca.Chain) > 0 { // ca is an intermediate: send it along
		chain = []*x509.Certificate{ca.Cert}
	}
	return &Cert{Cert: cert, Key: key, Chain: chain}
}

// CertPEM returns the CA certificate as PEM.
func (ca *CA) CertPEM() []byte { return CertsPEM(ca.Cert) }

// CertsPEM encodes certificates as one PEM bundle.
func CertsPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// CertPEM returns the leaf followed by its chain as PEM.
func (c *Cert) CertPEM() []byte {
	return CertsPEM(append([]*x509.Certificate{c.Cert}, c.Chain...)...)
}

// KeyPEM returns the private key as PKCS#8 PEM.
func (c *Cert) KeyPEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// TLSCertificate returns the certificate, chain and key for a tls.Config.
func (c *Cert) TLSCertificate() tls.Certificate {
	tc := tls.Certificate{PrivateKey: c.Key, Leaf: c.Cert, Certificate: [][]byte{c.Cert.Raw}}
	for _, ch := range c.Chain {
		tc.Certificate = append(tc.Certificate, ch.Raw)
	}
	return tc
}

// Pool returns a cert pool holding the given CAs.
func Pool(cas ...*CA) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.Cert)
	}
	return p
}

// WriteFile writes data to path with mode 0600, panicking on failure (test
// setup only).
func WriteFile(path string, data []byte) string {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		panic(err)
	}
	return path
}
