package keystore

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"testing"
)

// BenchmarkGenerate measures creating a key of each type in memory (what
// first boot and rotation pay, before the file write).
func BenchmarkGenerate(b *testing.B) {
	for _, typ := range GenerateTypes() {
		b.Run(typ, func(b *testing.B) {
			for b.Loop() {
				if _, err := Generate(typ, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSign measures signing one auth request body the way the agent
// does: SHA-256 then sign for RSA and ECDSA, pure Ed25519 over the body.
func BenchmarkSign(b *testing.B) {
	body := []byte(authBody)
	for _, typ := range GenerateTypes() {
		b.Run(typ, func(b *testing.B) {
			k := testKey(b, typ)
			for b.Loop() {
				var err error
				if typ == TypeEd25519 {
					_, err = k.Sign(rand.Reader, body, crypto.Hash(0))
				} else {
					d := sha256.Sum256(body)
					_, err = k.Sign(rand.Reader, d[:], crypto.SHA256)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoad measures reading and parsing a PKCS#8 key file, as every
// daemon start does.
func BenchmarkLoad(b *testing.B) {
	for _, typ := range []string{TypeEd25519, TypeECDSAP256, TypeRSA3072} {
		b.Run(typ, func(b *testing.B) {
			dir := b.TempDir()
			path := writeFile(b, dir, DefaultFileName, pkcs8PEM(b, testKey(b, typ)), 0o600)
			for b.Loop() {
				if _, err := Load(path, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
