package artifact

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mender-agent/mender-agent/trust/artifact/artifacttest"
	"github.com/stretchr/testify/require"
)

// testKeyPair is a signing key and its verification key.
type testKeyPair struct {
	priv crypto.Signer
	pub  PublicKey
}

var (
	ecOnce  sync.Once
	rsaOnce sync.Once
	ecKey   testKeyPair
	ecKey2  testKeyPair
	rsaKey  testKeyPair
)

func mkPair(s crypto.Signer) testKeyPair {
	p, err := NewPublicKey(s.Public())
	if err != nil {
		panic(err)
	}
	return testKeyPair{s, p}
}

// goKeys returns fixed-for-the-binary Go-generated keys: two ECDSA P-256,
// one RSA-2048.
func goKeys(t testing.TB) (ec, ec2, rsa2048 testKeyPair) {
	t.Helper()
	ec, ec2 = ecKeys(t)
	rsaOnce.Do(func() {
		r, _ := rsa.GenerateKey(rand.Reader, 2048)
		rsaKey = mkPair(r)
	})
	return ec, ec2, rsaKey
}

// ecKeys returns only the ECDSA keys: fuzz targets use them, because RSA
// key generation under fuzzing instrumentation takes minutes.
func ecKeys(t testing.TB) (ec, ec2 testKeyPair) {
	t.Helper()
	ecOnce.Do(func() {
		e1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		e2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ecKey, ecKey2 = mkPair(e1), mkPair(e2)
	})
	return ecKey, ecKey2
}

// writePub writes pub as a PEM "PUBLIC KEY" file and returns its path.
func writePub(t testing.TB, dir, name string, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600))
	return p
}

// build writes a generated Artifact to memory.
func build(t testing.TB, a artifacttest.Artifact) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, a.Write(&b))
	return b.Bytes()
}

// rewrite applies fn to the members of art and writes the result.
func rewrite(t testing.TB, art []byte, fn func([]artifacttest.Member) []artifacttest.Member) []byte {
	t.Helper()
	ms, err := artifacttest.ReadMembers(bytes.NewReader(art))
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, artifacttest.WriteMembers(&b, fn(ms)))
	return b.Bytes()
}

func verifyBytes(b []byte, opts Options) (*Report, error) {
	return Verify(context.Background(), bytes.NewReader(b), opts)
}

// rootfs is a small signed rootfs-image Artifact description.
func rootfs(signer crypto.Signer, compression string, content []byte) artifacttest.Artifact {
	empty := ""
	return artifacttest.Artifact{
		Name:        "release-1",
		Devices:     []string{"qemux86-64", "raspberrypi4"},
		Compression: compression,
		Signer:      signer,
		Payloads: []artifacttest.Payload{{
			Type:         "rootfs-image",
			TypeInfoType: &empty,
			Files:        []artifacttest.File{artifacttest.Bytes("rootfs.ext4", content)},
			Provides:     map[string]string{"rootfs-image.version": "release-1"},
			MetaData:     []byte{},
		}},
	}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func decodeB64(t testing.TB, b []byte) []byte {
	t.Helper()
	out, err := base64.StdEncoding.DecodeString(string(b))
	require.NoError(t, err)
	return out
}
