package keystore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	cryptorand "crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"strings"

	"github.com/youmark/pkcs8"
)

// generateTypes are the key types Generate can create.
var generateTypes = []string{TypeEd25519, TypeECDSAP256, TypeECDSAP384, TypeRSA2048, TypeRSA3072, TypeRSA4096}

// GenerateTypes lists the key types Generate, LoadOrCreate and Rotate can
// create (the values Security.AuthKeyType accepts), default first. The
// caller owns the returned slice.
func GenerateTypes() []string { return append([]string(nil), generateTypes...) }

// normalizeType maps a configured key type to its canonical name; "" means
// DefaultType. Names are matched case-insensitively.
func normalizeType(keyType string) (string, error) {
	if keyType == "" {
		return DefaultType, nil
	}
	t := strings.ToLower(strings.TrimSpace(keyType))
	for _, g := range generateTypes {
		if t == g {
			return g, nil
		}
	}
	return "", fmt.Errorf("%w: key type %q cannot be generated; choose one of %s",
		ErrUnsupportedKey, keyType, strings.Join(generateTypes, ", "))
}

// Generate creates a new key of keyType ("" means DefaultType) in memory;
// it does no file I/O. rand nil means crypto/rand. Ed25519 keys are derived
// from the first 32 bytes of rand; for RSA and ECDSA the Go runtime (since
// Go 1.26) always uses its own secure source and ignores rand. Generate is
// safe for concurrent use.
func Generate(keyType string, rand io.Reader) (*Key, error) {
	typ, err := normalizeType(keyType)
	if err != nil {
		return nil, err
	}
	if rand == nil {
		rand = cryptorand.Reader
	}
	var priv any
	switch typ {
	case TypeEd25519:
		seed := make([]byte, ed25519.SeedSize)
		if _, err := io.ReadFull(rand, seed); err != nil {
			return nil, fmt.Errorf("generate %s key: read random seed: %w", typ, err)
		}
		priv = ed25519.NewKeyFromSeed(seed)
		clear(seed)
	case TypeECDSAP256, TypeECDSAP384:
		curve := elliptic.P256()
		if typ == TypeECDSAP384 {
			curve = elliptic.P384()
		}
		priv, err = ecdsa.GenerateKey(curve, rand)
	case TypeRSA2048, TypeRSA3072, TypeRSA4096:
		bits := map[string]int{TypeRSA2048: 2048, TypeRSA3072: 3072, TypeRSA4096: 4096}[typ]
		priv, err = rsa.GenerateKey(rand, bits)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", typ, err)
	}
	return newKey(priv, "")
}

// encodePrivate returns the PEM file content for k: unencrypted PKCS#8
// ("PRIVATE KEY", what Mender 4/5 write) or, with a passphrase, PKCS#8
// PBES2 ("ENCRYPTED PRIVATE KEY": PBKDF2-HMAC-SHA256 and AES-256-CBC, which
// OpenSSL reads) so a deployment that protects its keys keeps doing so.
// 100000 PBKDF2 iterations cost well under a second on a Cortex-A7 at
// daemon start, and make offline guessing of the passphrase expensive.
func encodePrivate(k *Key, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		der, err := x509.MarshalPKCS8PrivateKey(k.priv)
		if err != nil {
			return nil, fmt.Errorf("encode %s private key: %w", k.info.Type, err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	}
	der, err := pkcs8.MarshalPrivateKey(k.priv, passphrase, &pkcs8.Opts{
		Cipher: pkcs8.AES256CBC,
		KDFOpts: pkcs8.PBKDF2Opts{
			SaltSize:       16,
			IterationCount: 100000,
			HMACHash:       crypto.SHA256,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("encrypt %s private key: %w", k.info.Type, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}), nil
}
