package tpm

import (
	"crypto/ecdsa"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/tpm/tss2"
)

func TestParsePublic(t *testing.T) {
	restricted := template(TypeECDSAP256)
	restricted.ObjectAttributes.Restricted = true
	decryptOnly := template(TypeECDSAP256)
	decryptOnly.ObjectAttributes.SignEncrypt = false
	decryptOnly.ObjectAttributes.Decrypt = true
	tests := []struct {
		name    string
		blob    []byte
		wantMsg string
	}{
		{name: "template is not a key yet", blob: tpm2.Marshal(tpm2.New2B(template(TypeECDSAP256))), wantMsg: "not on the curve"},
		{name: "RSA template without a modulus", blob: tpm2.Marshal(tpm2.New2B(template(TypeRSA2048))), wantMsg: "too weak"},
		{name: "restricted signing key", blob: tpm2.Marshal(tpm2.New2B(restricted)), wantMsg: "not an unrestricted signing key"},
		{name: "decrypt-only key", blob: tpm2.Marshal(tpm2.New2B(decryptOnly)), wantMsg: "not an unrestricted signing key"},
		{name: "empty", blob: nil, wantMsg: "public area"},
		{name: "truncated", blob: []byte{0, 10, 0, 0x23}, wantMsg: "public area"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parsePublic(tc.blob)
			assert.ErrorContains(t, err, tc.wantMsg)
		})
	}
}

func TestParsePublicToolFiles(t *testing.T) {
	for _, name := range []string{"openssl-ec.pem", "openssl-rsa.pem", "encodeobject.pem"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("tss2", "testdata", name))
			require.NoError(t, err)
			k, err := tss2.Decode(data)
			require.NoError(t, err)
			pub, typ, err := parsePublic(k.Public)
			require.NoError(t, err)
			if _, ok := pub.(*ecdsa.PublicKey); ok {
				assert.Equal(t, TypeECDSAP256, typ)
			} else {
				assert.Equal(t, TypeRSA2048, typ)
			}
		})
	}
}

func FuzzParsePublic(f *testing.F) {
	for _, name := range []string{"openssl-ec.pem", "openssl-rsa.pem"} {
		data, err := os.ReadFile(filepath.Join("tss2", "testdata", name))
		require.NoError(f, err)
		b, _ := pem.Decode(data)
		k, err := tss2.Parse(b.Bytes)
		require.NoError(f, err)
		f.Add(k.Public)
	}
	f.Add(tpm2.Marshal(tpm2.New2B(template(TypeRSA2048))))
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, typ, err := parsePublic(b)
		if err == nil {
			assert.NotNil(t, pub)
			assert.NotEmpty(t, typ)
		}
	})
}
