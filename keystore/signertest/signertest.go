// Package signertest is the contract suite every device-key backend (the
// file keystore, the TPM) passes: Run checks that a crypto.Signer produces
// exactly the signatures the Mender server verifies, and refuses the ones
// it would reject, including under concurrent use.
//
// The suite knows only crypto.Signer and the standard library: it must not
// import keystore, tpm or any other backend, so a backend cannot pass it by
// sharing internals. It imports testify and the standard library.
package signertest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Goroutines and SignaturesPerGoroutine size the concurrency check.
const (
	Goroutines             = 16
	SignaturesPerGoroutine = 8
)

// Run checks the signer contract. newSigner is called once per subtest and
// must return a working signer (it may share one key across calls). The
// contract:
//
//   - Public() is *rsa.PublicKey (>= 2048 bits), *ecdsa.PublicKey (P-256,
//     P-384 or P-521) or ed25519.PublicKey: the types the server accepts.
//   - RSA and ECDSA sign a SHA-256 digest passed with crypto.SHA256: RSA
//     as PKCS#1 v1.5 (rsa.VerifyPKCS1v15), ECDSA as ASN.1 DER
//     (ecdsa.VerifyASN1). Ed25519 signs the raw message with crypto.Hash(0)
//     (ed25519.Verify).
//   - Sign is safe for concurrent use: signatures made by many goroutines
//     at once all verify.
//   - RSA and ECDSA refuse a digest whose length does not match the hash.
//   - Ed25519 refuses a pre-hashed message (SHA-256 or SHA-512 opts, i.e.
//     Ed25519ph): the server verifies pure Ed25519 only.
//   - RSA refuses *rsa.PSSOptions: the server verifies PKCS#1 v1.5 only, so
//     a PSS signature would be rejected after a round trip.
//
// Checks that do not apply to the key type (PSS for an ECDSA key) are not
// run at all; newSigner is called once more up front to learn the type.
func Run(t *testing.T, newSigner func(t *testing.T) crypto.Signer) {
	t.Helper()
	probe := newSigner(t)
	require.NotNil(t, probe, "newSigner returned nil")
	_, isEd25519 := probe.Public().(ed25519.PublicKey)
	_, isRSA := probe.Public().(*rsa.PublicKey)
	t.Run("public key type", func(t *testing.T) {
		s := newSigner(t)
		require.NotNil(t, s)
		switch pub := s.Public().(type) {
		case *rsa.PublicKey:
			assert.GreaterOrEqual(t, pub.N.BitLen(), 2048, "RSA modulus bits")
		case *ecdsa.PublicKey:
			assert.Contains(t, []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()}, pub.Curve, "ECDSA curve")
		case ed25519.PublicKey:
			assert.Len(t, pub, ed25519.PublicKeySize)
		default:
			t.Fatalf("public key type %T is not RSA, ECDSA or Ed25519", pub)
		}
	})

	t.Run("signatures verify", func(t *testing.T) {
		s := newSigner(t)
		for _, msg := range [][]byte{
			[]byte(`{"id_data":"{\"mac\":\"02:12:61:13:6c:42\"}","tenant_token":"","pubkey":"x"}`),
			{},
			make([]byte, 64<<10),
		} {
			sig, err := sign(s, msg)
			require.NoError(t, err, "sign %d-byte message", len(msg))
			require.NoError(t, verify(s.Public(), msg, sig), "verify %d-byte message", len(msg))
			other := append([]byte("x"), msg...)
			assert.Error(t, verify(s.Public(), other, sig), "the signature must not verify for another message")
		}
	})

	t.Run("concurrent sign", func(t *testing.T) {
		s := newSigner(t)
		var wg sync.WaitGroup
		errs := make(chan error, Goroutines*SignaturesPerGoroutine)
		for g := range Goroutines {
			wg.Go(func() {
				for i := range SignaturesPerGoroutine {
					msg := fmt.Appendf(nil, "goroutine %d message %d", g, i)
					sig, err := sign(s, msg)
					if err == nil {
						err = verify(s.Public(), msg, sig)
					}
					if err != nil {
						errs <- fmt.Errorf("goroutine %d message %d: %w", g, i, err)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			assert.NoError(t, err)
		}
	})

	if !isEd25519 {
		t.Run("wrong digest length", func(t *testing.T) {
			s := newSigner(t)
			for _, n := range []int{0, 20, 31, 33, 48, 64} {
				_, err := s.Sign(rand.Reader, make([]byte, n), crypto.SHA256)
				assert.Error(t, err, "a %d-byte digest with crypto.SHA256 must be refused", n)
			}
		})
	}

	if isEd25519 {
		t.Run("ed25519 refuses prehashed messages", func(t *testing.T) {
			s := newSigner(t)
			d256 := sha256.Sum256([]byte("message"))
			_, err := s.Sign(rand.Reader, d256[:], crypto.SHA256)
			assert.Error(t, err, "Ed25519 with crypto.SHA256 must be refused")
			d512 := sha512.Sum512([]byte("message"))
			_, err = s.Sign(rand.Reader, d512[:], crypto.SHA512)
			assert.Error(t, err, "Ed25519ph (crypto.SHA512) must be refused")
			_, err = s.Sign(rand.Reader, []byte("message"), &ed25519.Options{Context: "ctx"})
			assert.Error(t, err, "Ed25519ctx must be refused")
		})
	}

	if isRSA {
		t.Run("rsa refuses pss", func(t *testing.T) {
			s := newSigner(t)
			d := sha256.Sum256([]byte("message"))
			_, err := s.Sign(rand.Reader, d[:], &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash})
			assert.Error(t, err, "RSA-PSS must be refused: the server verifies PKCS#1 v1.5 only")
		})
	}
}

// sign signs msg the way an auth request is signed.
func sign(s crypto.Signer, msg []byte) ([]byte, error) {
	if _, ok := s.Public().(ed25519.PublicKey); ok {
		return s.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	d := sha256.Sum256(msg)
	return s.Sign(rand.Reader, d[:], crypto.SHA256)
}

// verify checks sig over msg the way the server does.
func verify(pub crypto.PublicKey, msg, sig []byte) error {
	d := sha256.Sum256(msg)
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(p, crypto.SHA256, d[:], sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(p, d[:], sig) {
			return fmt.Errorf("ECDSA ASN.1 signature does not verify")
		}
		return nil
	case ed25519.PublicKey:
		if !ed25519.Verify(p, msg, sig) {
			return fmt.Errorf("Ed25519 signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("public key type %T is not supported", pub)
}
