package artifact

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mender-agent/mender-agent/trust/artifact/artifacttest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadKeys(t *testing.T) {
	dir := t.TempDir()
	ec, _, rk := goKeys(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o600))
		return p
	}
	ecPath := writePub(t, dir, "ec.pem", ec.pub.Public())
	rsaPath := writePub(t, dir, "rsa.pem", rk.pub.Public())
	pkcs1 := write("rsa1.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(rk.pub.Public().(*rsa.PublicKey))}))

	keys, err := LoadKeys(ecPath, rsaPath, pkcs1)
	require.NoError(t, err)
	require.Len(t, keys, 3)
	assert.Equal(t, ecPath, keys[0].Path)
	assert.Equal(t, "ECDSA P-256 SHA-256", keys[0].Algorithm())
	assert.Equal(t, "RSA-2048 PKCS#1 v1.5 SHA-256", keys[1].Algorithm())
	assert.True(t, keys[2].Public().(*rsa.PublicKey).Equal(rk.pub.Public()))

	privDER, err := x509.MarshalECPrivateKey(ec.priv.(*ecdsa.PrivateKey))
	require.NoError(t, err)
	ecPEM, err := os.ReadFile(ecPath)
	require.NoError(t, err)
	tests := []struct {
		name   string
		path   string
		want   string
		prefix bool // the rest of the message is the standard library's
	}{
		{name: "missing", path: filepath.Join(dir, "nope.pem"), want: "open " + filepath.Join(dir, "nope.pem") + ": no such file or directory"},
		{name: "not pem", path: write("junk", []byte("hello")), want: `no PEM block found; expected a PEM "PUBLIC KEY"`},
		{name: "private key", path: write("priv.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: privDER})), want: `PEM block "EC PRIVATE KEY" is a private key; give the public key (openssl pkey -pubout)`},
		{name: "certificate", path: write("cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})), want: `PEM block "CERTIFICATE" is not a public key; expected "PUBLIC KEY"`},
		{name: "two keys", path: write("two.pem", append(append([]byte{}, ecPEM...), ecPEM...)), want: "data after the first PEM block; give one public key per file"},
		{name: "p384", path: writePub(t, dir, "p384.pem", p384.Public()), want: "ECDSA key on curve P-384 is not supported; Mender Artifacts are signed with P-256 only"},
		{name: "ed25519", path: writePub(t, dir, "ed.pem", edPub), want: "Ed25519 keys are not supported by the Mender Artifact format; use RSA or ECDSA P-256"},
		{name: "rsa1024", path: writePub(t, dir, "rsa1024.pem", rsa1024.Public()), want: "RSA key of 1024 bits is too small; at least 2048 bits are required"},
		{name: "bad der", path: write("bad.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}})), want: "parse PUBLIC KEY: asn1: structure error", prefix: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := LoadKeys(rsaPath, tt.path)
			assert.Nil(t, keys)
			require.Error(t, err)
			if tt.prefix {
				assert.True(t, strings.HasPrefix(err.Error(), "verification key "+tt.path+": "+tt.want), err.Error())
			} else {
				assert.EqualError(t, err, "verification key "+tt.path+": "+tt.want)
			}
			assert.Equal(t, ExitUsage, ExitCode(err))
		})
	}
}

func TestSignatureSchemes(t *testing.T) {
	ec, _, rk := goKeys(t)
	tests := []struct {
		name string
		key  testKeyPair
		opts artifacttest.SignOptions
		want string // "" means valid
	}{
		{name: "rsa pkcs1v15 sha256", key: rk},
		{name: "ecdsa raw", key: ec},
		{name: "ecdsa der", key: ec, opts: artifacttest.SignOptions{DER: true}},
		{name: "rsa pss", key: rk, opts: artifacttest.SignOptions{PSS: true}, want: "manifest.sig: signature does not verify (it is RSA-PSS; only PKCS#1 v1.5 is accepted)"},
		{name: "rsa sha512", key: rk, opts: artifacttest.SignOptions{Hash: crypto.SHA512}, want: "manifest.sig: signature does not verify (it is PKCS#1 v1.5 over SHA-512; only SHA-256 is accepted)"},
		{name: "rsa sha384", key: rk, opts: artifacttest.SignOptions{Hash: crypto.SHA384}, want: "manifest.sig: signature does not verify (it is PKCS#1 v1.5 over SHA-384; only SHA-256 is accepted)"},
		{name: "ecdsa sha384", key: ec, opts: artifacttest.SignOptions{Hash: crypto.SHA384}, want: "manifest.sig: signature does not verify (it is over SHA-384; only SHA-256 is accepted)"},
		{name: "ecdsa sha512 der", key: ec, opts: artifacttest.SignOptions{Hash: crypto.SHA512, DER: true}, want: "manifest.sig: signature does not verify (it is over SHA-512; only SHA-256 is accepted)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := rootfs(tt.key.priv, "gzip", pattern(100))
			a.Sign = tt.opts
			_, err := verifyBytes(build(t, a), Options{Keys: []PublicKey{tt.key.pub}})
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, ErrBadSignature)
			assert.EqualError(t, err, tt.want)
		})
	}
}

func TestECDSASignatureEncodings(t *testing.T) {
	ec, _, _ := goKeys(t)
	msg := []byte("manifest bytes\n")
	raw, err := artifacttest.SignManifest(msg, ec.priv, artifacttest.SignOptions{})
	require.NoError(t, err)
	sig := decodeB64(t, raw)
	require.Len(t, sig, 64)
	assert.NoError(t, ec.pub.Verify(msg, sig))
	// High-S (r, n-s) is accepted, like every Mender verifier.
	n := elliptic.P256().Params().N
	s := new(big.Int).SetBytes(sig[32:])
	hs := make([]byte, 64)
	copy(hs, sig[:32])
	new(big.Int).Sub(n, s).FillBytes(hs[32:])
	assert.NoError(t, ec.pub.Verify(msg, hs))
	// Little-endian r||s (the C++ client's fallback) is not.
	le := make([]byte, 64)
	for i := range 32 {
		le[i], le[32+i] = sig[31-i], sig[63-i]
	}
	assert.ErrorIs(t, ec.pub.Verify(msg, le), ErrBadSignature)
	assert.EqualError(t, ec.pub.Verify(msg, sig[:63]), "signature does not verify (63 bytes is neither a 64-byte r||s nor an ASN.1 DER ECDSA signature)")
	assert.ErrorIs(t, ec.pub.Verify(msg, nil), ErrBadSignature)
}
