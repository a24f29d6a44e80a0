package authapi

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// defaultTier is the device tier a server assumes when the request names
// none; it is left out of the body so that servers that predate tiers see
// exactly the body they expect.
const defaultTier = "standard"

// authRequest is the auth request body. The field order is the one the
// current Mender client (C++ 5.x) sends; the server ignores order and
// whitespace but verifies the signature over the exact bytes, which is why
// the body is serialized once and those bytes are both signed and sent.
type authRequest struct {
	IDData      string `json:"id_data"`
	PubKey      string `json:"pubkey"`
	TenantToken string `json:"tenant_token,omitempty"`
	Tier        string `json:"tier,omitempty"`
}

// BuildRequestBody returns the exact bytes of an auth request body:
// {"id_data":"<idData as a JSON string>","pubkey":"<PEM>"} followed by
// "tenant_token" when tenantToken is not blank (it is trimmed) and "tier"
// when tier is set and not "standard". idData must be the text of a JSON
// object (the identity); pubkeyPEM must be one SubjectPublicKeyInfo PEM
// block ("PUBLIC KEY"), and gets a trailing newline when it lacks one. The
// output is compact JSON without HTML escaping or a trailing newline.
//
// Errors name the offending argument but never include the tenant token.
func BuildRequestBody(idData, pubkeyPEM, tenantToken, tier string) ([]byte, error) {
	trimmed := strings.TrimSpace(idData)
	if !strings.HasPrefix(trimmed, "{") || !json.Valid([]byte(trimmed)) {
		return nil, fmt.Errorf("build auth request: identity data %q is not a JSON object; check the identity script output", abbreviate(idData, 80))
	}
	block, rest := pem.Decode([]byte(pubkeyPEM))
	if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("build auth request: public key is not a single PEM \"PUBLIC KEY\" (SubjectPublicKeyInfo) block")
	}
	if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
		return nil, fmt.Errorf("build auth request: public key PEM does not hold a SubjectPublicKeyInfo: %w", err)
	}
	if !strings.HasSuffix(pubkeyPEM, "\n") {
		pubkeyPEM += "\n"
	}
	if tier == defaultTier {
		tier = ""
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(authRequest{
		IDData:      trimmed,
		PubKey:      pubkeyPEM,
		TenantToken: strings.TrimSpace(tenantToken),
		Tier:        tier,
	}); err != nil {
		return nil, fmt.Errorf("build auth request: encode body: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// PublicKeyPEM encodes pub as a SubjectPublicKeyInfo PEM block ("PUBLIC
// KEY", 64-character lines, trailing newline), the only form the server
// accepts.
func PublicKeyPEM(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode device public key %T: %w", pub, err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// Sign signs body with signer the way the server verifies it and returns
// the standard, padded base64 value of the X-MEN-Signature header:
//   - RSA: RSASSA-PKCS1-v1_5 over SHA-256(body);
//   - ECDSA (any curve): ASN.1 DER SEQUENCE{r, s} over SHA-256(body);
//   - Ed25519: pure Ed25519 over body itself (crypto.Hash(0)).
//
// The signature is checked against signer.Public() before it is returned,
// so a key backend that signs with the wrong padding or encoding (PSS, raw
// r||s) is reported here, naming the key type, rather than as a 401 from
// the server. Sign is as safe for concurrent use as signer is.
func Sign(signer crypto.Signer, body []byte) (string, error) {
	if signer == nil {
		return "", errors.New("sign auth request: no device key")
	}
	digest := sha256.Sum256(body)
	var (
		sig []byte
		err error
	)
	switch pub := signer.Public().(type) {
	case *rsa.PublicKey:
		if sig, err = signer.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			return "", fmt.Errorf("sign auth request with RSA-%d key: %w", pub.N.BitLen(), err)
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			return "", fmt.Errorf("sign auth request with RSA-%d key: the key backend did not produce a PKCS#1 v1.5 SHA-256 signature: %w", pub.N.BitLen(), err)
		}
	case *ecdsa.PublicKey:
		if sig, err = signer.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			return "", fmt.Errorf("sign auth request with ECDSA %s key: %w", pub.Curve.Params().Name, err)
		}
		if !ecdsa.VerifyASN1(pub, digest[:], sig) {
			return "", fmt.Errorf("sign auth request with ECDSA %s key: the key backend did not produce an ASN.1 DER signature over SHA-256 that verifies", pub.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if sig, err = signer.Sign(rand.Reader, body, crypto.Hash(0)); err != nil {
			return "", fmt.Errorf("sign auth request with Ed25519 key: %w", err)
		}
		if !ed25519.Verify(pub, body, sig) {
			return "", errors.New("sign auth request with Ed25519 key: the key backend did not produce a pure Ed25519 signature that verifies")
		}
	default:
		return "", fmt.Errorf("sign auth request: device key type %T is not supported; use RSA, ECDSA or Ed25519", pub)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// abbreviate shortens s to at most n bytes for an error message.
func abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
