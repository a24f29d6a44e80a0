package artifact

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
)

// MinRSABits is the smallest RSA modulus accepted for a verification key.
const MinRSABits = 2048

// maxKeyFile bounds a PEM key file; real public keys are under 2 KiB.
const maxKeyFile = 64 << 10

// PublicKey is a trusted Artifact verification key: RSA (at least
// [MinRSABits]) or ECDSA P-256. It is immutable and safe for concurrent use.
type PublicKey struct {
	// Path is where the key was loaded from ("" if parsed from memory). It
	// is shown in reports and errors, never the key material.
	Path string
	rsa  *rsa.PublicKey
	ec   *ecdsa.PublicKey
}

// Verifier checks a signature over a message. PublicKey implements it; a
// failure wraps ErrBadSignature. Implementations must be safe for
// concurrent use.
type Verifier interface {
	Verify(message, sig []byte) error
}

var _ Verifier = PublicKey{}

// Algorithm names the signature scheme the key verifies, for reports.
func (k PublicKey) Algorithm() string {
	switch {
	case k.rsa != nil:
		return fmt.Sprintf("RSA-%d PKCS#1 v1.5 SHA-256", k.rsa.N.BitLen())
	case k.ec != nil:
		return "ECDSA P-256 SHA-256"
	}
	return "none"
}

// Public returns the crypto.PublicKey (*rsa.PublicKey or *ecdsa.PublicKey).
func (k PublicKey) Public() crypto.PublicKey {
	if k.rsa != nil {
		return k.rsa
	}
	return k.ec
}

// NewPublicKey wraps an RSA or ECDSA P-256 public key, applying the same
// rules as LoadKeys.
func NewPublicKey(pub crypto.PublicKey) (PublicKey, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < MinRSABits {
			return PublicKey{}, fmt.Errorf("RSA key of %d bits is too small; at least %d bits are required", p.N.BitLen(), MinRSABits)
		}
		return PublicKey{rsa: p}, nil
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return PublicKey{}, fmt.Errorf("ECDSA key on curve %s is not supported; Mender Artifacts are signed with P-256 only", p.Curve.Params().Name)
		}
		return PublicKey{ec: p}, nil
	case ed25519.PublicKey:
		return PublicKey{}, errors.New("Ed25519 keys are not supported by the Mender Artifact format; use RSA or ECDSA P-256")
	default:
		return PublicKey{}, fmt.Errorf("unsupported public key type %T; use RSA or ECDSA P-256", pub)
	}
}

// ParsePublicKey parses one PEM-encoded public key ("PUBLIC KEY" or
// "RSA PUBLIC KEY"). Private keys are refused, so that a misconfigured path
// does not put a secret where a public key belongs.
func ParsePublicKey(data []byte) (PublicKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return PublicKey{}, errors.New("no PEM block found; expected a PEM \"PUBLIC KEY\"")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return PublicKey{}, errors.New("data after the first PEM block; give one public key per file")
	}
	var pub crypto.PublicKey
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		return PublicKey{}, fmt.Errorf("PEM block %q is a private key; give the public key (openssl pkey -pubout)", block.Type)
	default:
		return PublicKey{}, fmt.Errorf("PEM block %q is not a public key; expected \"PUBLIC KEY\"", block.Type)
	}
	if err != nil {
		return PublicKey{}, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	return NewPublicKey(pub)
}

// LoadKeys reads PEM public keys from files, in order; the order is the
// order in which Verify tries them. Errors name the file.
func LoadKeys(paths ...string) ([]PublicKey, error) {
	keys := make([]PublicKey, 0, len(paths))
	for _, p := range paths {
		k, err := loadKey(p)
		if err != nil {
			return nil, fmt.Errorf("verification key %s: %w", p, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func loadKey(path string) (PublicKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return PublicKey{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return PublicKey{}, err
	}
	if len(data) > maxKeyFile {
		return PublicKey{}, fmt.Errorf("larger than %d bytes; not a public key", maxKeyFile)
	}
	k, err := ParsePublicKey(data)
	if err != nil {
		return PublicKey{}, err
	}
	k.Path = path
	return k, nil
}

// Verify checks sig over message: PKCS#1 v1.5 SHA-256 for RSA; raw 64-byte
// r||s or ASN.1 DER SHA-256 for ECDSA. A failure wraps ErrBadSignature and,
// where it can be told, says which unsupported scheme was used.
func (k PublicKey) Verify(message, sig []byte) error {
	digest := sha256.Sum256(message)
	switch {
	case k.rsa != nil:
		if err := rsa.VerifyPKCS1v15(k.rsa, crypto.SHA256, digest[:], sig); err == nil {
			return nil
		}
		return fmt.Errorf("%w%s", ErrBadSignature, rsaDiagnosis(k.rsa, message, sig))
	case k.ec != nil:
		if len(sig) == 64 {
			r := new(big.Int).SetBytes(sig[:32])
			s := new(big.Int).SetBytes(sig[32:])
			if ecdsa.Verify(k.ec, digest[:], r, s) {
				return nil
			}
		}
		if isDER(sig) && ecdsa.VerifyASN1(k.ec, digest[:], sig) {
			return nil
		}
		return fmt.Errorf("%w%s", ErrBadSignature, ecdsaDiagnosis(k.ec, message, sig))
	}
	return fmt.Errorf("%w: no key", ErrBadSignature)
}

// isDER reports whether sig is exactly one DER SEQUENCE of two INTEGERs.
func isDER(sig []byte) bool {
	var v struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &v)
	return err == nil && len(rest) == 0
}

// rsaDiagnosis explains a failed RSA signature when the cause is an
// unsupported scheme: PSS, or PKCS#1 v1.5 over another digest.
func rsaDiagnosis(pub *rsa.PublicKey, message, sig []byte) string {
	if len(sig) != pub.Size() {
		return fmt.Sprintf(" (signature is %d bytes; an RSA-%d signature is %d)", len(sig), pub.N.BitLen(), pub.Size())
	}
	d256 := sha256.Sum256(message)
	if rsa.VerifyPSS(pub, crypto.SHA256, d256[:], sig, nil) == nil {
		return " (it is RSA-PSS; only PKCS#1 v1.5 is accepted)"
	}
	d384 := sha512.Sum384(message)
	if rsa.VerifyPKCS1v15(pub, crypto.SHA384, d384[:], sig) == nil {
		return " (it is PKCS#1 v1.5 over SHA-384; only SHA-256 is accepted)"
	}
	d512 := sha512.Sum512(message)
	if rsa.VerifyPKCS1v15(pub, crypto.SHA512, d512[:], sig) == nil {
		return " (it is PKCS#1 v1.5 over SHA-512; only SHA-256 is accepted)"
	}
	return ""
}

// ecdsaDiagnosis explains a failed ECDSA signature when it is valid over
// another digest or encoded in an unsupported way.
func ecdsaDiagnosis(pub *ecdsa.PublicKey, message, sig []byte) string {
	d384 := sha512.Sum384(message)
	d512 := sha512.Sum512(message)
	for _, d := range []struct {
		name string
		sum  []byte
	}{{"SHA-384", d384[:]}, {"SHA-512", d512[:]}} {
		if len(sig) == 64 && ecdsa.Verify(pub, d.sum, new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			return " (it is over " + d.name + "; only SHA-256 is accepted)"
		}
		if isDER(sig) && ecdsa.VerifyASN1(pub, d.sum, sig) {
			return " (it is over " + d.name + "; only SHA-256 is accepted)"
		}
	}
	if len(sig) != 64 && !isDER(sig) {
		return fmt.Sprintf(" (%d bytes is neither a 64-byte r||s nor an ASN.1 DER ECDSA signature)", len(sig))
	}
	return ""
}
