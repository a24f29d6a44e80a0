package authapi_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/agent/authapi"
)

// edPEM is a fixed Ed25519 public key, so the expected bodies are
// literal.
const edPEM = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"

const pemJSON = `"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"`

func TestBuildRequestBody(t *testing.T) {
	tests := []struct {
		name    string
		idData  string
		pubkey  string
		tenant  string
		tier    string
		want    string
		wantErr string
	}{
		{name: "minimal", idData: `{"mac":"02:12:61:13:6c:42"}`, pubkey: edPEM,
			want: `{"id_data":"{\"mac\":\"02:12:61:13:6c:42\"}","pubkey":` + pemJSON + `}`},
		{name: "tenant token trimmed", idData: `{"a":"1"}`, pubkey: edPEM, tenant: "  tok.en\n",
			want: `{"id_data":"{\"a\":\"1\"}","pubkey":` + pemJSON + `,"tenant_token":"tok.en"}`},
		{name: "blank tenant token left out", idData: `{"a":"1"}`, pubkey: edPEM, tenant: " \t",
			want: `{"id_data":"{\"a\":\"1\"}","pubkey":` + pemJSON + `}`},
		{name: "tier", idData: `{"a":"1"}`, pubkey: edPEM, tenant: "t", tier: "system",
			want: `{"id_data":"{\"a\":\"1\"}","pubkey":` + pemJSON + `,"tenant_token":"t","tier":"system"}`},
		{name: "standard tier left out", idData: `{"a":"1"}`, pubkey: edPEM, tier: "standard",
			want: `{"id_data":"{\"a\":\"1\"}","pubkey":` + pemJSON + `}`},
		{name: "arrays, no HTML escaping", idData: `{"mac":["a","b"],"x":"<&>"}`, pubkey: edPEM,
			want: `{"id_data":"{\"mac\":[\"a\",\"b\"],\"x\":\"<&>\"}","pubkey":` + pemJSON + `}`},
		{name: "missing trailing newline added", idData: `{}`, pubkey: edPEM[:len(edPEM)-1],
			want: `{"id_data":"{}","pubkey":` + pemJSON + `}`},
		{name: "identity array", idData: `["a"]`, pubkey: edPEM, wantErr: "is not a JSON object"},
		{name: "identity not JSON", idData: `{mac=1}`, pubkey: edPEM, wantErr: "is not a JSON object"},
		{name: "identity empty", idData: ``, pubkey: edPEM, wantErr: "is not a JSON object"},
		{name: "PKCS#1 RSA public key", idData: `{}`, pubkey: "-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n", wantErr: `"PUBLIC KEY"`},
		{name: "not PEM", idData: `{}`, pubkey: "hello", wantErr: `"PUBLIC KEY"`},
		{name: "two PEM blocks", idData: `{}`, pubkey: edPEM + edPEM, wantErr: "single PEM"},
		{name: "garbage DER", idData: `{}`, pubkey: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", wantErr: "SubjectPublicKeyInfo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := authapi.BuildRequestBody(tt.idData, tt.pubkey, tt.tenant, tt.tier)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.NotContains(t, err.Error(), "tok.en")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
			var parsed map[string]string
			require.NoError(t, json.Unmarshal(got, &parsed), "the body is valid JSON with string fields")
			assert.Equal(t, tt.idData, parsed["id_data"])
		})
	}
}

func TestPublicKeyPEM(t *testing.T) {
	block, _ := pem.Decode([]byte(edPEM))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	require.NoError(t, err)
	got, err := authapi.PublicKeyPEM(pub)
	require.NoError(t, err)
	assert.Equal(t, edPEM, got)
	_, err = authapi.PublicKeyPEM(struct{}{})
	assert.ErrorContains(t, err, "struct {}")
}

func TestSignVerifiesWithTheStandardLibrary(t *testing.T) {
	body := []byte(`{"id_data":"{}","pubkey":"x"}`)
	digest := sha256.Sum256(body)
	for _, kt := range keyTypes {
		t.Run(kt.name, func(t *testing.T) {
			key := kt.key(t)
			sig64, err := authapi.Sign(key, body)
			require.NoError(t, err)
			sig, err := base64.StdEncoding.DecodeString(sig64)
			require.NoError(t, err, "standard padded base64")
			switch pub := key.Public().(type) {
			case *rsa.PublicKey:
				assert.NoError(t, rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig))
				assert.Len(t, sig, 256)
			case *ecdsa.PublicKey:
				assert.True(t, ecdsa.VerifyASN1(pub, digest[:], sig), "ASN.1 DER over SHA-256")
				assert.Equal(t, byte(0x30), sig[0], "a DER SEQUENCE, not raw r||s")
			case ed25519.PublicKey:
				assert.True(t, ed25519.Verify(pub, body, sig), "pure Ed25519 over the body")
			default:
				t.Fatalf("unexpected key %T", pub)
			}
		})
	}
}

// rawECDSASigner signs like a misconfigured backend: raw r||s.
type rawECDSASigner struct{ *ecdsa.PrivateKey }

func (s rawECDSASigner) Sign(r io.Reader, digest []byte, _ crypto.SignerOpts) ([]byte, error) {
	rr, ss, err := ecdsa.Sign(r, s.PrivateKey, digest)
	if err != nil {
		return nil, err
	}
	return append(rr.FillBytes(make([]byte, 32)), ss.FillBytes(make([]byte, 32))...), nil
}

// pssSigner signs RSA with PSS, which the server refuses.
type pssSigner struct{ *rsa.PrivateKey }

func (s pssSigner) Sign(r io.Reader, digest []byte, _ crypto.SignerOpts) ([]byte, error) {
	return rsa.SignPSS(r, s.PrivateKey, crypto.SHA256, digest, nil)
}

// failingSigner stands in for a TPM that refuses to sign.
type failingSigner struct{ crypto.Signer }

func (failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("tpm: device busy")
}

// dsaLikeSigner has a public key type the server does not support.
type dsaLikeSigner struct{}

func (dsaLikeSigner) Public() crypto.PublicKey { return big.NewInt(3) }
func (dsaLikeSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return []byte{1}, nil
}

func TestSignCatchesBrokenBackends(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tests := []struct {
		name    string
		signer  crypto.Signer
		wantErr string
	}{
		{name: "raw r||s ECDSA", signer: rawECDSASigner{ec}, wantErr: "ECDSA P-256 key: the key backend did not produce an ASN.1 DER signature"},
		{name: "RSA PSS", signer: pssSigner{rsaKey()}, wantErr: "RSA-2048 key: the key backend did not produce a PKCS#1 v1.5"},
		{name: "signer error", signer: failingSigner{edKey()}, wantErr: "Ed25519 key: tpm: device busy"},
		{name: "unsupported key type", signer: dsaLikeSigner{}, wantErr: "device key type *big.Int is not supported"},
		{name: "nil", signer: nil, wantErr: "no device key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := authapi.Sign(tt.signer, []byte("{}"))
			require.ErrorContains(t, err, tt.wantErr)
			assert.Empty(t, sig)
		})
	}
}
