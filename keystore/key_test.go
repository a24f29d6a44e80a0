package keystore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/mender-agent/mender-agent/keystore/signertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSignerContract(t *testing.T) {
	for _, typ := range GenerateTypes() {
		t.Run(typ, func(t *testing.T) {
			// The key goes through a file so the suite covers what the
			// daemon really signs with.
			dir := privateDir(t)
			path := filepath.Join(dir, DefaultFileName)
			writeFileKey(t, path, testKey(t, typ))
			signertest.Run(t, func(t *testing.T) crypto.Signer {
				k, err := Load(path, nil)
				require.NoError(t, err)
				require.Equal(t, typ, k.Type())
				return k
			})
		})
	}
}

func writeFileKey(t *testing.T, path string, k *Key) {
	t.Helper()
	writeFile(t, filepath.Dir(path), filepath.Base(path), pkcs8PEM(t, k), 0o600)
}

func TestSignRefusals(t *testing.T) {
	d256 := sha256.Sum256([]byte("body"))
	d512 := sha512.Sum512([]byte("body"))
	tests := []struct {
		name    string
		typ     string
		digest  []byte
		opts    crypto.SignerOpts
		wantErr string
	}{
		{name: "ed25519 with sha256", typ: TypeEd25519, digest: d256[:], opts: crypto.SHA256,
			wantErr: "unsupported signature options: ed25519 keys sign the raw message (pure Ed25519, hash 0), not a SHA-256 digest"},
		{name: "ed25519ph", typ: TypeEd25519, digest: d512[:], opts: crypto.SHA512,
			wantErr: "unsupported signature options: ed25519 keys sign the raw message (pure Ed25519, hash 0), not a SHA-512 digest"},
		{name: "ed25519ctx", typ: TypeEd25519, digest: []byte("body"), opts: &ed25519.Options{Context: "x"},
			wantErr: `unsupported signature options: Ed25519ctx (context "x") is not verified by the server; use pure Ed25519`},
		{name: "rsa pss", typ: TypeRSA2048, digest: d256[:], opts: &rsa.PSSOptions{Hash: crypto.SHA256},
			wantErr: "unsupported signature options: RSA-PSS; the server verifies RSA PKCS#1 v1.5 signatures only"},
		{name: "rsa without hash", typ: TypeRSA2048, digest: d256[:], opts: crypto.Hash(0),
			wantErr: "unsupported signature options: rsa-2048 keys sign a digest; pass its hash in opts (crypto.SHA256 for auth requests)"},
		{name: "rsa nil opts", typ: TypeRSA2048, digest: d256[:], opts: nil,
			wantErr: "unsupported signature options: rsa-2048 keys sign a digest; pass its hash in opts (crypto.SHA256 for auth requests)"},
		{name: "rsa short digest", typ: TypeRSA2048, digest: d256[:31], opts: crypto.SHA256,
			wantErr: "unsupported signature options: digest is 31 bytes, a SHA-256 digest is 32 bytes"},
		{name: "ecdsa long digest", typ: TypeECDSAP256, digest: d512[:], opts: crypto.SHA256,
			wantErr: "unsupported signature options: digest is 64 bytes, a SHA-256 digest is 32 bytes"},
		{name: "ecdsa sha1", typ: TypeECDSAP256, digest: make([]byte, 20), opts: crypto.SHA1,
			wantErr: "unsupported signature options: hash SHA-1; use SHA-256, SHA-384 or SHA-512"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := testKey(t, tt.typ)
			sig, err := k.Sign(rand.Reader, tt.digest, tt.opts)
			require.ErrorIs(t, err, ErrUnsupportedSignature)
			assert.EqualError(t, err, tt.wantErr)
			assert.Nil(t, sig)
		})
	}
}

func TestSignOtherSHA2Hashes(t *testing.T) {
	msg := []byte("body")
	d384 := sha512.Sum384(msg)
	for _, typ := range []string{TypeRSA2048, TypeECDSAP384} {
		t.Run(typ, func(t *testing.T) {
			k := testKey(t, typ)
			sig, err := k.Sign(rand.Reader, d384[:], crypto.SHA384)
			require.NoError(t, err)
			switch pub := k.Public().(type) {
			case *rsa.PublicKey:
				assert.NoError(t, rsa.VerifyPKCS1v15(pub, crypto.SHA384, d384[:], sig))
			case *ecdsa.PublicKey:
				assert.True(t, ecdsa.VerifyASN1(pub, d384[:], sig))
			}
		})
	}
}

func TestKeyTypeOf(t *testing.T) {
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	require.NoError(t, err)
	tests := []struct {
		name    string
		pub     crypto.PublicKey
		want    string
		wantErr string
	}{
		{name: "ed25519", pub: testKey(t, TypeEd25519).Public(), want: "ed25519"},
		{name: "p256", pub: testKey(t, TypeECDSAP256).Public(), want: "ecdsa-p256"},
		{name: "p384", pub: testKey(t, TypeECDSAP384).Public(), want: "ecdsa-p384"},
		{name: "rsa 3072", pub: testKey(t, TypeRSA3072).Public(), want: "rsa-3072"},
		{name: "p224", pub: &p224.PublicKey,
			wantErr: "unsupported device key: key type ECDSA P-224; the server accepts ECDSA P-256, P-384 and P-521"},
		{name: "rsa 1024", pub: &rsa.PublicKey{N: new(bigInt).Lsh(one(), 1023), E: 65537},
			wantErr: "unsupported device key: key type rsa-1024; RSA keys need at least 2048 bits"},
		{name: "short ed25519", pub: ed25519.PublicKey(make([]byte, 31)),
			wantErr: "unsupported device key: Ed25519 public key of 31 bytes"},
		{name: "foreign type", pub: "not a key",
			wantErr: "unsupported device key: key type string; the server accepts RSA (>= 2048 bits), ECDSA P-256/P-384/P-521 and Ed25519"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := KeyTypeOf(tt.pub)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, ErrUnsupportedKey)
				assert.EqualError(t, err, tt.wantErr)
				_, err = Fingerprint(tt.pub)
				assert.ErrorIs(t, err, ErrUnsupportedKey, "Fingerprint refuses what KeyTypeOf refuses")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestFingerprintAndPublicPEMMatchOpenSSL(t *testing.T) {
	for _, typ := range []string{TypeEd25519, TypeECDSAP256, TypeRSA2048} {
		t.Run(typ, func(t *testing.T) {
			k := testKey(t, typ)
			priv := pkcs8PEM(t, k)
			pubPEM := runOpenSSL(t, priv, "pkey", "-pubout")
			assert.Equal(t, string(pubPEM), string(k.PublicKeyPEM()), "public key PEM is what OpenSSL exports (SPKI)")
			der := runOpenSSL(t, priv, "pkey", "-pubout", "-outform", "DER")
			sum := sha256.Sum256(der)
			assert.Equal(t, fmt.Sprintf("SHA256:%x", sum), k.Fingerprint())
			assert.Regexp(t, regexp.MustCompile(`^SHA256:[0-9a-f]{64}$`), k.Fingerprint())
			b, rest := pem.Decode(k.PublicKeyPEM())
			require.NotNil(t, b)
			assert.Equal(t, "PUBLIC KEY", b.Type)
			assert.Empty(t, rest)
			assert.Equal(t, byte('\n'), k.PublicKeyPEM()[len(k.PublicKeyPEM())-1])
			mut := k.PublicKeyPEM()
			mut[0] = 'X'
			assert.Equal(t, byte('-'), k.PublicKeyPEM()[0], "PublicKeyPEM returns a copy")
		})
	}
}

func TestGenerate(t *testing.T) {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	a, err := Generate("", bytesReader(seed))
	require.NoError(t, err)
	b, err := Generate("ED25519", bytesReader(seed))
	require.NoError(t, err)
	assert.Equal(t, TypeEd25519, a.Type())
	assert.Equal(t, a.Fingerprint(), b.Fingerprint(), "Ed25519 generation is a function of Rand")
	assert.Empty(t, a.Path())

	_, err = Generate(TypeEd25519, bytesReader(seed[:5]))
	assert.EqualError(t, err, "generate ed25519 key: read random seed: unexpected EOF")

	_, err = Generate("dsa", nil)
	require.ErrorIs(t, err, ErrUnsupportedKey)
	assert.EqualError(t, err, `unsupported device key: key type "dsa" cannot be generated; choose one of ed25519, ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096`)
}
