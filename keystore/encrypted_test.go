package keystore

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var oidAES256CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}

// encryptedPKCS8 builds an EncryptedPrivateKeyInfo with the given KDF and
// cipher parameters; the data is never decrypted when the parameters are
// refused.
func encryptedPKCS8(t *testing.T, kdf pkix.AlgorithmIdentifier, iv []byte, data []byte) []byte {
	t.Helper()
	ivDER, err := asn1.Marshal(iv)
	require.NoError(t, err)
	params, err := asn1.Marshal(pbes2Params{
		KDF:    kdf,
		Scheme: pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}},
	})
	require.NoError(t, err)
	der, err := asn1.Marshal(encryptedKeyInfo{
		Algo: pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: params}},
		Data: data,
	})
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der})
}

func kdfParams(t *testing.T, oid asn1.ObjectIdentifier, v any) pkix.AlgorithmIdentifier {
	t.Helper()
	b, err := asn1.Marshal(v)
	require.NoError(t, err)
	return pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1.RawValue{FullBytes: b}}
}

// TestEncryptedPKCS8Limits checks that hostile or broken parameters are
// refused before any key derivation or decryption runs.
func TestEncryptedPKCS8Limits(t *testing.T) {
	salt := make([]byte, 16)
	iv := make([]byte, 16)
	pbkdf2 := func(iter int) pkix.AlgorithmIdentifier {
		return kdfParams(t, oidPBKDF2, pbkdf2Params{Salt: salt, Iterations: iter,
			PRF: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}, Parameters: asn1.NullRawValue}})
	}
	tests := []struct {
		name    string
		data    []byte
		wantIs  error
		wantErr string
	}{
		{name: "pbkdf2 iterations too high", data: encryptedPKCS8(t, pbkdf2(2_000_000), iv, make([]byte, 48)), wantIs: ErrUnsupportedKey,
			wantErr: "unsupported device key: PBKDF2 iteration count 2000000 is outside 1..1000000"},
		{name: "pbkdf2 zero iterations", data: encryptedPKCS8(t, pbkdf2(0), iv, make([]byte, 48)), wantIs: ErrUnsupportedKey,
			wantErr: "unsupported device key: PBKDF2 iteration count 0 is outside 1..1000000"},
		{name: "pbkdf2 sha512 prf", data: encryptedPKCS8(t, kdfParams(t, oidPBKDF2, pbkdf2Params{Salt: salt, Iterations: 10,
			PRF: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}, Parameters: asn1.NullRawValue}}), iv, make([]byte, 48)),
			wantIs:  ErrUnsupportedKey,
			wantErr: "unsupported device key: PBKDF2 with PRF 1.2.840.113549.2.11 is not supported: " + reencryptHint},
		{name: "scrypt memory too high", data: encryptedPKCS8(t, kdfParams(t, oidScrypt, scryptParams{Salt: salt, Cost: 1 << 20, BlockSize: 8, Parallelism: 1}), iv, make([]byte, 48)),
			wantIs:  ErrUnsupportedKey,
			wantErr: "unsupported device key: scrypt parameters N=1048576 r=8 p=1 are outside what a device can afford"},
		{name: "iv of wrong length", data: encryptedPKCS8(t, pbkdf2(10), make([]byte, 5), make([]byte, 48)), wantIs: ErrCorruptKey,
			wantErr: "device key file is corrupt: the PBES2 cipher IV is malformed"},
		{name: "partial cipher block", data: encryptedPKCS8(t, pbkdf2(10), iv, make([]byte, 47)), wantIs: ErrCorruptKey,
			wantErr: "device key file is corrupt: the encrypted key data is 47 bytes, not a whole number of 16-byte blocks"},
		{name: "garbage structure", data: pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("junk")}), wantIs: ErrCorruptKey,
			wantErr: "device key file is corrupt: the ENCRYPTED PRIVATE KEY structure does not parse"},
		{name: "unknown kdf", data: encryptedPKCS8(t, kdfParams(t, asn1.ObjectIdentifier{1, 2, 3}, 1), iv, make([]byte, 48)), wantIs: ErrUnsupportedKey,
			wantErr: "unsupported device key: ENCRYPTED PRIVATE KEY key derivation 1.2.3 is not supported: " + reencryptHint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseKey(tt.data, []byte("pw"), "k.pem")
			require.ErrorIs(t, err, tt.wantIs)
			assert.EqualError(t, err, tt.wantErr)
		})
	}
}
