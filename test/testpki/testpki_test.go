package testpki

import (
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIssuedCertificatesVerify(t *testing.T) {
	root := NewCA("root")
	inter := root.Intermediate("inter")
	leaf := inter.Issue(Options{DNSNames: []string{"server.test"}})

	inters := x509.NewCertPool()
	for _, c := range leaf.Chain {
		inters.AddCert(c)
	}
	_, err := leaf.Cert.Verify(x509.VerifyOptions{DNSName: "server.test", Roots: Pool(root), Intermediates: inters})
	require.NoError(t, err)

	_, err = leaf.Cert.Verify(x509.VerifyOptions{DNSName: "server.test", Roots: Pool(root)})
	assert.Error(t, err, "without the intermediate the chain must not verify")

	_, err = leaf.Cert.Verify(x509.VerifyOptions{DNSName: "server.test", Roots: Pool(NewCA("other")), Intermediates: inters})
	assert.Error(t, err)

	block, rest := pem.Decode(leaf.CertPEM())
	require.NotNil(t, block)
	assert.Equal(t, leaf.Cert.Raw, block.Bytes)
	block, _ = pem.Decode(rest)
	require.NotNil(t, block, "the chain follows the leaf")
	assert.Equal(t, inter.Cert.Raw, block.Bytes)
}

func TestDefaultServerNames(t *testing.T) {
	c := NewCA("r").Issue(Options{})
	assert.Equal(t, []string{"localhost"}, c.Cert.DNSNames)
	assert.Len(t, c.Cert.IPAddresses, 2)
	cl := NewCA("r").Issue(Options{Client: true, CommonName: "device"})
	assert.Empty(t, cl.Cert.DNSNames)
	assert.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, cl.Cert.ExtKeyUsage)
}
