package tpm_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/tpm"
	"github.com/mender-agent/mender-agent/tpm/tpmtest"
)

// BenchmarkSignTPM measures one auth-request signature through the TPM
// (swtpm over its Unix socket; real TPMs are far slower), with the key kept
// loaded as the agent does.
func BenchmarkSignTPM(b *testing.B) {
	for _, typ := range []string{tpm.TypeECDSAP256, tpm.TypeRSA2048} {
		b.Run(typ, func(b *testing.B) {
			sw := tpmtest.Start(b)
			k, err := tpm.LoadOrCreate(b.Context(), tpm.Options{
				Device:   sw.Device(),
				Path:     filepath.Join(b.TempDir(), "key.pem"),
				Type:     typ,
				Generate: true,
			})
			require.NoError(b, err)
			b.Cleanup(func() { _ = k.Close() })
			benchSign(b, k)
		})
	}
}

// BenchmarkSignFileKey is the baseline: an in-process ECDSA P-256 key, as
// the file backend uses.
func BenchmarkSignFileKey(b *testing.B) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(b, err)
	benchSign(b, k)
}

func benchSign(b *testing.B, s crypto.Signer) {
	d := sha256.Sum256([]byte(`{"id_data":"{\"mac\":\"02:12:61:13:6c:42\"}","pubkey":"..."}`))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadTPM measures what a start costs: derive the SRK, load the
// key file under it, flush the SRK, and flush the key again on Close.
func BenchmarkLoadTPM(b *testing.B) {
	sw := tpmtest.Start(b)
	opts := tpm.Options{Device: sw.Device(), Path: filepath.Join(b.TempDir(), "key.pem"), Generate: true}
	k, err := tpm.LoadOrCreate(b.Context(), opts)
	require.NoError(b, err)
	require.NoError(b, k.Close())
	b.ReportAllocs()
	for b.Loop() {
		k, err := tpm.Load(b.Context(), opts)
		if err != nil {
			b.Fatal(err)
		}
		if err := k.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
