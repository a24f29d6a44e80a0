package keystore

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mender-agent/mender-agent/test/testenv"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"
)

// RSA keys are generated once per test binary: RSA-4096 generation takes
// seconds on a small machine.
var testRSAKeys = map[string]func() *rsa.PrivateKey{
	TypeRSA2048: sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) }),
	TypeRSA3072: sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(3072) }),
	TypeRSA4096: sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(4096) }),
}

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(nil, bits)
	if err != nil {
		panic(err)
	}
	return k
}

// testKey returns an in-memory key of typ, reusing pre-generated RSA keys.
func testKey(t testing.TB, typ string) *Key {
	t.Helper()
	if f, ok := testRSAKeys[typ]; ok {
		k, err := newKey(f(), "")
		require.NoError(t, err)
		return k
	}
	k, err := Generate(typ, nil)
	require.NoError(t, err)
	return k
}

// pkcs8PEM is k's private key as unencrypted PKCS#8 PEM.
func pkcs8PEM(t testing.TB, k *Key) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// runOpenSSL runs openssl with args and stdin, returning stdout.
func runOpenSSL(t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	bin := testenv.LookPath(t, "openssl")
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "openssl %v: %s", args, stderr.String())
	return out
}

// writeFile writes data to name in dir with mode perm and returns its path.
func writeFile(t testing.TB, dir, name string, data []byte, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, data, perm))
	require.NoError(t, os.Chmod(p, perm))
	return p
}

// privateDir returns a fresh directory with mode 0700.
func privateDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	require.NoError(t, os.Chmod(d, 0o700))
	return d
}

// newTestLogger returns a logger whose entries the hook records.
func newTestLogger() (*logrus.Logger, *test.Hook) {
	l, h := test.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	return l, h
}

type bigInt = big.Int

func one() *big.Int { return big.NewInt(1) }

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// assertOpenSSLFails runs openssl and expects a non-zero exit.
func assertOpenSSLFails(t testing.TB, args ...string) {
	t.Helper()
	bin := testenv.LookPath(t, "openssl")
	out, err := exec.Command(bin, args...).CombinedOutput()
	require.Error(t, err, "openssl %v must fail; output: %s", args, out)
}
