package tss2_test

import (
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/tpm/tss2"
)

// The files in testdata were written by `openssl genpkey -provider tpm2`
// (tpm2-openssl 1.1.1) and by tpm2_encodeobject (tpm2-tools 5.4) against a
// throwaway swtpm; their private blobs are useless outside it.
func TestDecodeToolFiles(t *testing.T) {
	tests := []struct {
		name          string
		file          string
		wantEmptyAuth bool
		wantPublic    int
		wantPrivate   int
	}{
		{name: "openssl EC (BOOLEAN 0x01)", file: "openssl-ec.pem", wantEmptyAuth: true, wantPublic: 88, wantPrivate: 128},
		{name: "openssl RSA-2048", file: "openssl-rsa.pem", wantEmptyAuth: true, wantPublic: 280, wantPrivate: 224},
		{name: "tpm2_encodeobject (explicit FALSE)", file: "encodeobject.pem", wantEmptyAuth: false, wantPublic: 88, wantPrivate: 128},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			require.NoError(t, err)
			require.True(t, tss2.IsPEM(data))
			k, err := tss2.Decode(data)
			require.NoError(t, err)
			assert.Equal(t, tss2.ParentOwner, k.Parent)
			assert.Equal(t, tc.wantEmptyAuth, k.EmptyAuth)
			assert.Len(t, k.Public, tc.wantPublic)
			assert.Len(t, k.Private, tc.wantPrivate)

			// Re-encoding keeps every field.
			out, err := k.EncodePEM()
			require.NoError(t, err)
			again, err := tss2.Decode(out)
			require.NoError(t, err)
			assert.Equal(t, k, again)
		})
	}
}

func TestMarshalLayout(t *testing.T) {
	k := &tss2.Key{EmptyAuth: true, Parent: tss2.ParentOwner, Public: []byte{0, 2, 0xAA, 0xBB}, Private: []byte{0, 1, 0xCC}}
	der, err := k.Marshal()
	require.NoError(t, err)
	// SEQUENCE { OID 2.23.133.10.1.3, [0] { BOOLEAN 0xFF }, INTEGER
	// 0x40000001, OCTET STRING, OCTET STRING } and nothing else: no
	// description, which tpm2-openssl 1.1.1 rejects.
	want := "301e" + "06066781050a0103" + "a0030101ff" + "020440000001" + "04040002aabb" + "04030001cc"
	assert.Equal(t, want, hex.EncodeToString(der))

	k.EmptyAuth = false
	der, err = k.Marshal()
	require.NoError(t, err)
	assert.NotContains(t, hex.EncodeToString(der), "a003", "emptyAuth false is left out")

	p, err := k.EncodePEM()
	require.NoError(t, err)
	b, _ := pem.Decode(p)
	require.NotNil(t, b)
	assert.Equal(t, "TSS2 PRIVATE KEY", b.Type)
}

func TestMarshalRejectsEmptyBlobs(t *testing.T) {
	_, err := (&tss2.Key{Parent: tss2.ParentOwner}).Marshal()
	assert.ErrorIs(t, err, tss2.ErrFormat)
}

// build assembles a key file body from raw elements.
func build(t *testing.T, elems ...any) []byte {
	t.Helper()
	var body []byte
	for _, e := range elems {
		b, err := asn1.Marshal(e)
		require.NoError(t, err)
		body = append(body, b...)
	}
	der, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
	require.NoError(t, err)
	return der
}

func explicit(t *testing.T, tag int, inner any) asn1.RawValue {
	t.Helper()
	b, err := asn1.Marshal(inner)
	require.NoError(t, err)
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, IsCompound: true, Bytes: b}
}

func TestParse(t *testing.T) {
	loadable := asn1.ObjectIdentifier{2, 23, 133, 10, 1, 3}
	pub, priv := []byte{0, 1, 7}, []byte{0, 2, 8, 9}
	tests := []struct {
		name    string
		der     func(t *testing.T) []byte
		want    *tss2.Key
		wantMsg string
	}{
		{
			name: "minimal",
			der:  func(t *testing.T) []byte { return build(t, loadable, 0x40000001, pub, priv) },
			want: &tss2.Key{Parent: tss2.ParentOwner, Public: pub, Private: priv},
		},
		{
			name: "description is tolerated",
			der: func(t *testing.T) []byte {
				return build(t, loadable, explicit(t, 0, true), explicit(t, 4, "device key"), 0x40000001, pub, priv)
			},
			want: &tss2.Key{EmptyAuth: true, Parent: tss2.ParentOwner, Public: pub, Private: priv},
		},
		{
			name: "persistent parent",
			der:  func(t *testing.T) []byte { return build(t, loadable, int64(0x81000001), pub, priv) },
			want: &tss2.Key{Parent: 0x81000001, Public: pub, Private: priv},
		},
		{
			name:    "policy is refused",
			der:     func(t *testing.T) []byte { return build(t, loadable, explicit(t, 1, []int{1}), 0x40000001, pub, priv) },
			wantMsg: "authorization policy",
		},
		{
			name: "importable key",
			der: func(t *testing.T) []byte {
				return build(t, asn1.ObjectIdentifier{2, 23, 133, 10, 1, 4}, 0x40000001, pub, priv)
			},
			wantMsg: "importable key",
		},
		{
			name: "sealed object",
			der: func(t *testing.T) []byte {
				return build(t, asn1.ObjectIdentifier{2, 23, 133, 10, 1, 5}, 0x40000001, pub, priv)
			},
			wantMsg: "sealed data object",
		},
		{
			name:    "unknown OID",
			der:     func(t *testing.T) []byte { return build(t, asn1.ObjectIdentifier{1, 2, 3}, 0x40000001, pub, priv) },
			wantMsg: "unknown key type OID 1.2.3",
		},
		{
			name:    "too few fields",
			der:     func(t *testing.T) []byte { return build(t, loadable, pub, priv) },
			wantMsg: "3 fields",
		},
		{
			name:    "TPM2B size mismatch",
			der:     func(t *testing.T) []byte { return build(t, loadable, 0x40000001, []byte{0, 5, 1}, priv) },
			wantMsg: "pubkey TPM2B size 5",
		},
		{
			name:    "negative parent",
			der:     func(t *testing.T) []byte { return build(t, loadable, -1, pub, priv) },
			wantMsg: "parent -1",
		},
		{
			name:    "parent not an integer",
			der:     func(t *testing.T) []byte { return build(t, loadable, "owner", pub, priv) },
			wantMsg: "parent is not an INTEGER",
		},
		{
			name:    "emptyAuth not a boolean",
			der:     func(t *testing.T) []byte { return build(t, loadable, explicit(t, 0, 1), 0x40000001, pub, priv) },
			wantMsg: "emptyAuth",
		},
		{
			name:    "trailing bytes",
			der:     func(t *testing.T) []byte { return append(build(t, loadable, 0x40000001, pub, priv), 0) },
			wantMsg: "trailing",
		},
		{
			name:    "not a sequence",
			der:     func(t *testing.T) []byte { b, _ := asn1.Marshal(5); return b },
			wantMsg: "SEQUENCE",
		},
		{
			name:    "garbage",
			der:     func(t *testing.T) []byte { return []byte{0x30, 0x80} },
			wantMsg: "invalid TSS2 key file",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := tss2.Parse(tc.der(t))
			if tc.wantMsg != "" {
				require.ErrorIs(t, err, tss2.ErrFormat)
				assert.Contains(t, err.Error(), tc.wantMsg)
				assert.Nil(t, k)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, k)
		})
	}
}

func TestIsPEM(t *testing.T) {
	ec, err := os.ReadFile(filepath.Join("testdata", "openssl-ec.pem"))
	require.NoError(t, err)
	tests := []struct {
		name string
		data []byte
		want bool
	}{
		{name: "TSS2 key", data: ec, want: true},
		{name: "after another block", data: append([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), ec...), want: true},
		{name: "EC private key", data: []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")},
		{name: "PKCS#8", data: []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")},
		{name: "empty"},
		{name: "not PEM", data: []byte("TSS2 PRIVATE KEY")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tss2.IsPEM(tc.data))
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"openssl-ec.pem", "openssl-rsa.pem", "encodeobject.pem"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(f, err)
		f.Add(data)
		b, _ := pem.Decode(data)
		f.Add(b.Bytes)
	}
	f.Add([]byte("-----BEGIN TSS2 PRIVATE KEY-----\nMAA=\n-----END TSS2 PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := tss2.Decode(data)
		if err != nil {
			assert.ErrorIs(t, err, tss2.ErrFormat)
		} else {
			// Anything accepted re-encodes to a file that parses the same.
			out, err := k.EncodePEM()
			require.NoError(t, err)
			again, err := tss2.Decode(out)
			require.NoError(t, err)
			assert.Equal(t, k, again)
		}
		if k, err := tss2.Parse(data); err == nil {
			der, err := k.Marshal()
			require.NoError(t, err)
			again, err := tss2.Parse(der)
			require.NoError(t, err)
			assert.Equal(t, k, again)
		}
	})
}
