package keystore

import (
	"crypto"
	"encoding/pem"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/youmark/pkcs8"
)

// FuzzParseKey feeds arbitrary key file contents (with and without a
// passphrase) to the parser: it must never panic, must return a key or an
// error, and an accepted key must be usable.
func FuzzParseKey(f *testing.F) {
	for _, typ := range []string{TypeEd25519, TypeECDSAP256, TypeRSA2048} {
		k := testKey(f, typ)
		f.Add(pkcs8PEM(f, k), "")
		// Cheap KDF settings keep the fuzzer fast; the parser is the same.
		der, err := pkcs8.MarshalPrivateKey(k.priv, []byte("pw"), &pkcs8.Opts{
			Cipher:  pkcs8.AES256CBC,
			KDFOpts: pkcs8.PBKDF2Opts{SaltSize: 8, IterationCount: 1, HMACHash: crypto.SHA256},
		})
		require.NoError(f, err)
		enc := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der})
		f.Add(enc, "pw")
		f.Add(enc, "wrong")
	}
	f.Add([]byte(""), "")
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"), "")
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{
		"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"}, Bytes: make([]byte, 33)}), "pw")
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x00}}), "pw")
	f.Fuzz(func(t *testing.T, data []byte, pass string) {
		k, err := parseKey(data, []byte(pass), "fuzz.pem")
		if err != nil {
			assert.Nil(t, k)
			assert.False(t, errors.Is(err, errPanic), "decoder panicked: %v", err)
			return
		}
		require.NotNil(t, k)
		typ, err := KeyTypeOf(k.Public())
		require.NoError(t, err)
		assert.Equal(t, typ, k.Type())
	})
}
