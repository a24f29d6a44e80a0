package keystore

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// authBody is an auth request body as the agent sends it; signatures cover
// exactly these bytes.
const authBody = `{"id_data":"{\"mac\":\"02:12:61:13:6c:42\"}","pubkey":"-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n","tenant_token":"secret-tenant"}`

// TestDropInSignaturesVerifyWithOpenSSL adopts keys existing Mender clients
// left in the data directory and checks that OpenSSL, independently of Go,
// verifies our signatures over the exact body bytes: RSA-3072 PKCS#1 as
// Mender 3.x wrote it and ECDSA with `openssl dgst -sha256 -verify`,
// Ed25519 as Mender 5 writes it with `openssl pkeyutl -verify -rawin`.
func TestDropInSignaturesVerifyWithOpenSSL(t *testing.T) {
	tests := []struct {
		name      string
		make      []string
		wantType  string
		wantBlock string
	}{
		{name: "mender 3.x rsa-3072 pkcs1", make: []string{"genrsa", "-traditional", "3072"},
			wantType: "rsa-3072", wantBlock: "-----BEGIN RSA PRIVATE KEY-----\n"},
		{name: "sec1 ecdsa p256", make: []string{"ecparam", "-genkey", "-name", "prime256v1", "-noout"},
			wantType: "ecdsa-p256", wantBlock: "-----BEGIN EC PRIVATE KEY-----\n"},
		{name: "mender 5 ed25519 pkcs8", make: []string{"genpkey", "-algorithm", "ed25519"},
			wantType: "ed25519", wantBlock: "-----BEGIN PRIVATE KEY-----\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pemKey := runOpenSSL(t, nil, tt.make...)
			require.True(t, strings.HasPrefix(string(pemKey), tt.wantBlock), "key flavour")
			dir := filepath.Join(privateDir(t), "data", "mender")
			require.NoError(t, os.MkdirAll(dir, 0o700))
			path := writeFile(t, dir, DefaultFileName, pemKey, 0o600)

			// The daemon's path: an existing key is adopted, never replaced.
			k, err := LoadOrCreate(Options{Path: path, Generate: true})
			require.NoError(t, err)
			assert.Equal(t, tt.wantType, k.Type())
			onDisk, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, string(pemKey), string(onDisk), "the adopted key file is untouched")

			work := t.TempDir()
			body := writeFile(t, work, "body.json", []byte(authBody), 0o600)
			pub := writeFile(t, work, "pub.pem", k.PublicKeyPEM(), 0o600)
			var sig []byte
			var verify []string
			if tt.wantType == TypeEd25519 {
				sig, err = k.Sign(rand.Reader, []byte(authBody), crypto.Hash(0))
				verify = []string{"pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", body, "-sigfile"}
			} else {
				d := sha256.Sum256([]byte(authBody))
				sig, err = k.Sign(rand.Reader, d[:], crypto.SHA256)
				verify = []string{"dgst", "-sha256", "-verify", pub, "-signature"}
			}
			require.NoError(t, err)
			sigPath := writeFile(t, work, "sig.bin", sig, 0o600)
			verify = append(verify, sigPath)
			if tt.wantType != TypeEd25519 {
				verify = append(verify, body)
			}
			out := runOpenSSL(t, nil, verify...)
			assert.Contains(t, []string{"Verified OK\n", "Signature Verified Successfully\n"}, string(out))

			// A flipped byte must fail OpenSSL's verification.
			bad := append([]byte(nil), sig...)
			bad[len(bad)/2] ^= 0xff
			writeFile(t, work, "sig.bin", bad, 0o600)
			assertOpenSSLFails(t, verify...)
		})
	}
}
