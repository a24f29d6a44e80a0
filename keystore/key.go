package keystore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
)

// Key types as named in configuration (Security.AuthKeyType), in show-key
// output and by KeyTypeOf. RSA keys of other sizes are named "rsa-<bits>".
const (
	TypeEd25519   = "ed25519"
	TypeECDSAP256 = "ecdsa-p256"
	TypeECDSAP384 = "ecdsa-p384"
	TypeECDSAP521 = "ecdsa-p521"
	TypeRSA2048   = "rsa-2048"
	TypeRSA3072   = "rsa-3072"
	TypeRSA4096   = "rsa-4096"
)

// DefaultType is the key type generated when Options.Type is empty: fast to
// generate on small CPUs, and what Mender 5 generates.
const DefaultType = TypeEd25519

// minRSABits is the smallest RSA modulus the server's Go crypto accepts and
// that we consider safe for a device identity.
const minRSABits = 2048

// Key is a device private key loaded from or written to a PEM file. It is a
// crypto.Signer that produces exactly the signatures the Mender server
// verifies: RSASSA-PKCS1-v1_5 and ECDSA ASN.1 DER over a caller-computed
// digest (SHA-256 for auth requests), and pure Ed25519 over the raw message
// (opts.HashFunc() == 0). Everything else is refused with
// ErrUnsupportedSignature rather than producing a signature the server
// would reject.
//
// A Key is immutable after it is returned; all methods are safe for
// concurrent use by any number of goroutines, and Sign holds no lock. A Key
// owns no goroutines and no open files.
type Key struct {
	priv crypto.Signer // *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey
	info Info          // type, fingerprint, public key PEM and path, computed once
}

var _ crypto.Signer = (*Key)(nil)

// newKey checks that priv is a type the server accepts and precomputes the
// public encodings. path may be empty for keys that live only in memory.
func newKey(priv any, path string) (*Key, error) {
	var signer crypto.Signer
	switch p := priv.(type) {
	case *rsa.PrivateKey:
		signer = p
	case *ecdsa.PrivateKey:
		signer = p
	case ed25519.PrivateKey:
		signer = p
	case *ed25519.PrivateKey:
		signer = *p
	default:
		return nil, fmt.Errorf("%w: key type %s; the server accepts RSA (>= %d bits), ECDSA P-256/P-384/P-521 and Ed25519",
			ErrUnsupportedKey, describePrivate(priv), minRSABits)
	}
	info, err := NewInfo(BackendFile, path, signer.Public())
	if err != nil {
		return nil, err
	}
	return &Key{priv: signer, info: info}, nil
}

// Public returns the public key: *rsa.PublicKey, *ecdsa.PublicKey or
// ed25519.PublicKey.
func (k *Key) Public() crypto.PublicKey { return k.priv.Public() }

// Sign signs digest with the key, the way the Mender server verifies:
//
//   - RSA: PKCS#1 v1.5 over digest, which must be the output of
//     opts.HashFunc() (SHA-256, SHA-384 or SHA-512; auth requests use
//     SHA-256). *rsa.PSSOptions is refused: the server rejects PSS.
//   - ECDSA: ASN.1 DER SEQUENCE{r, s} over digest, with the same hash rules.
//   - Ed25519: pure Ed25519 over the raw message; opts.HashFunc() must be 0
//     and no context may be set (Ed25519ph and Ed25519ctx are refused).
//
// Refusals wrap ErrUnsupportedSignature. rand is the entropy source for
// RSA and ECDSA (the standard library may use its own secure source
// instead). Sign is safe for concurrent use.
func (k *Key) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	var h crypto.Hash
	if opts != nil {
		h = opts.HashFunc()
	}
	switch p := k.priv.(type) {
	case ed25519.PrivateKey:
		if h != 0 {
			return nil, fmt.Errorf("%w: %s keys sign the raw message (pure Ed25519, hash 0), not a %s digest", ErrUnsupportedSignature, k.info.Type, h)
		}
		if o, ok := opts.(*ed25519.Options); ok && o.Context != "" {
			return nil, fmt.Errorf("%w: Ed25519ctx (context %q) is not verified by the server; use pure Ed25519", ErrUnsupportedSignature, o.Context)
		}
		return ed25519.Sign(p, digest), nil
	case *rsa.PrivateKey:
		if _, ok := opts.(*rsa.PSSOptions); ok {
			return nil, fmt.Errorf("%w: RSA-PSS; the server verifies RSA PKCS#1 v1.5 signatures only", ErrUnsupportedSignature)
		}
		if err := checkDigest(k.info.Type, h, digest); err != nil {
			return nil, err
		}
		return rsa.SignPKCS1v15(rand, p, h, digest)
	case *ecdsa.PrivateKey:
		if err := checkDigest(k.info.Type, h, digest); err != nil {
			return nil, err
		}
		return ecdsa.SignASN1(rand, p, digest)
	default:
		// newKey admits no other type.
		return nil, fmt.Errorf("%w: key type %T", ErrUnsupportedKey, k.priv)
	}
}

// checkDigest accepts the SHA-2 hashes and a digest of the hash's size.
func checkDigest(typ string, h crypto.Hash, digest []byte) error {
	switch h {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512:
	case 0:
		return fmt.Errorf("%w: %s keys sign a digest; pass its hash in opts (crypto.SHA256 for auth requests)", ErrUnsupportedSignature, typ)
	default:
		return fmt.Errorf("%w: hash %s; use SHA-256, SHA-384 or SHA-512", ErrUnsupportedSignature, h)
	}
	if len(digest) != h.Size() {
		return fmt.Errorf("%w: digest is %d bytes, a %s digest is %d bytes", ErrUnsupportedSignature, len(digest), h, h.Size())
	}
	return nil
}

// Type returns the key type: "ed25519", "ecdsa-p256", "ecdsa-p384",
// "ecdsa-p521" or "rsa-<bits>".
func (k *Key) Type() string { return k.info.Type }

// Fingerprint returns the SHA-256 fingerprint of the public key's SPKI DER
// encoding, as "SHA256:" followed by 64 lowercase hex digits. The same value
// is printed by `openssl pkey -in KEY -pubout -outform DER | sha256sum`.
func (k *Key) Fingerprint() string { return k.info.Fingerprint }

// PublicKeyPEM returns the public key as an SPKI "PUBLIC KEY" PEM block with
// a trailing newline: exactly the pubkey field of the auth request. The
// caller may modify the returned slice.
func (k *Key) PublicKeyPEM() []byte { return []byte(k.info.PublicKeyPEM) }

// Path returns the file the key was loaded from or written to, or "" for a
// key that lives only in memory (Generate).
func (k *Key) Path() string { return k.info.Path }

// Info describes the key for show-key and provision output.
func (k *Key) Info() Info { return k.info }

// Fingerprint returns the SHA-256 fingerprint of pub's SPKI DER encoding in
// the format of (*Key).Fingerprint. pub must be a key type the server
// accepts.
func Fingerprint(pub crypto.PublicKey) (string, error) {
	der, err := spki(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return "SHA256:" + hex.EncodeToString(sum[:]), nil
}

// PublicKeyPEM encodes pub as an SPKI "PUBLIC KEY" PEM block with a trailing
// newline, the only public key format the server accepts in auth requests.
func PublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := spki(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

func spki(pub crypto.PublicKey) ([]byte, error) {
	if _, err := KeyTypeOf(pub); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return der, nil
}

// KeyTypeOf names a public key the way Key.Type does, and refuses types the
// server does not accept (wrapping ErrUnsupportedKey): RSA under 2048 bits,
// ECDSA curves other than P-256/P-384/P-521, and anything that is not RSA,
// ECDSA or Ed25519.
func KeyTypeOf(pub crypto.PublicKey) (string, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p == nil || p.N == nil {
			return "", fmt.Errorf("%w: empty RSA public key", ErrUnsupportedKey)
		}
		bits := p.N.BitLen()
		if bits < minRSABits {
			return "", fmt.Errorf("%w: key type rsa-%d; RSA keys need at least %d bits", ErrUnsupportedKey, bits, minRSABits)
		}
		return fmt.Sprintf("rsa-%d", bits), nil
	case *ecdsa.PublicKey:
		if p == nil || p.Curve == nil {
			return "", fmt.Errorf("%w: empty ECDSA public key", ErrUnsupportedKey)
		}
		switch p.Curve {
		case elliptic.P256():
			return TypeECDSAP256, nil
		case elliptic.P384():
			return TypeECDSAP384, nil
		case elliptic.P521():
			return TypeECDSAP521, nil
		}
		return "", fmt.Errorf("%w: key type ECDSA %s; the server accepts ECDSA P-256, P-384 and P-521", ErrUnsupportedKey, p.Curve.Params().Name)
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return "", fmt.Errorf("%w: Ed25519 public key of %d bytes", ErrUnsupportedKey, len(p))
		}
		return TypeEd25519, nil
	}
	return "", fmt.Errorf("%w: key type %T; the server accepts RSA (>= %d bits), ECDSA P-256/P-384/P-521 and Ed25519", ErrUnsupportedKey, pub, minRSABits)
}
