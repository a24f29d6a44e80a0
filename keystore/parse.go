package keystore

import (
	"bytes"
	"crypto/ecdh"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// maxKeyFileSize bounds what is read from a key path: a PEM RSA-8192 key is
// about 6.5 KiB, so anything larger is not a key (or is /dev/zero).
const maxKeyFileSize = 64 << 10

// parseKey parses the content of a key file. It tolerates text before and
// after PEM blocks and PEM blocks that hold no private key (EC PARAMETERS
// from `openssl ecparam -genkey`, a certificate), as OpenSSL does, but
// requires exactly one private key block and refuses damaged blocks.
// Errors wrap ErrCorruptKey, ErrUnsupportedKey, ErrPassphraseRequired or
// ErrWrongPassphrase where those apply; none contains key material.
func parseKey(data, passphrase []byte, path string) (*Key, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%w: the file is empty", ErrCorruptKey)
	}
	var keys []*pem.Block
	var others []string
	decoded := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		decoded++
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			keys = append(keys, b)
		} else {
			others = append(others, b.Type)
		}
	}
	// pem.Decode silently skips a damaged block (bad base64, missing END
	// line); count the begin markers to notice it.
	if begins := countBegins(data); begins != decoded || decoded == 0 {
		if begins == 0 {
			return nil, fmt.Errorf("%w: no PEM data (expected a -----BEGIN ... PRIVATE KEY----- block)", ErrCorruptKey)
		}
		return nil, fmt.Errorf("%w: %d of %d PEM blocks are truncated or damaged", ErrCorruptKey, begins-decoded, begins)
	}
	switch {
	case len(keys) == 0:
		return nil, fmt.Errorf("no private key in the file (PEM blocks found: %s)", strings.Join(others, ", "))
	case len(keys) > 1:
		types := make([]string, len(keys))
		for i, b := range keys {
			types[i] = b.Type
		}
		return nil, fmt.Errorf("the file holds %d private keys (%s); keep exactly one", len(keys), strings.Join(types, ", "))
	}
	priv, err := parseKeyBlock(keys[0], passphrase)
	if err != nil {
		return nil, err
	}
	return newKey(priv, path)
}

// countBegins counts PEM begin markers anywhere in data, including ones
// pem.Decode would not recognise (not at a line start).
func countBegins(data []byte) int { return bytes.Count(data, []byte("-----BEGIN ")) }

// parseKeyBlock turns one "... PRIVATE KEY" block into a private key.
func parseKeyBlock(b *pem.Block, passphrase []byte) (any, error) {
	der := b.Bytes
	legacy := isLegacyEncrypted(b)
	if legacy {
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("%w (legacy encrypted %s); pass --passphrase-file FILE, or - for stdin", ErrPassphraseRequired, b.Type)
		}
		var err error
		if der, err = decryptLegacy(b, passphrase); err != nil {
			return nil, err
		}
	}
	switch b.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(der)
		if err != nil {
			return nil, classifyRSA(der, legacy, "PKCS#1")
		}
		return k, nil
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(der)
		if err != nil {
			return nil, classifySEC1(der, legacy)
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			if legacy {
				return nil, fmt.Errorf("%w: the decrypted %s does not parse", ErrWrongPassphrase, b.Type)
			}
			return nil, classifyPKCS8(der)
		}
		return k, nil
	case "ENCRYPTED PRIVATE KEY":
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("%w (ENCRYPTED PRIVATE KEY); pass --passphrase-file FILE, or - for stdin", ErrPassphraseRequired)
		}
		return decryptPKCS8(der, passphrase)
	case "DSA PRIVATE KEY":
		return nil, fmt.Errorf("%w: key type DSA; the server accepts RSA (>= %d bits), ECDSA P-256/P-384/P-521 and Ed25519", ErrUnsupportedKey, minRSABits)
	case "OPENSSH PRIVATE KEY":
		return nil, fmt.Errorf("%w: OpenSSH private key format; convert it with `ssh-keygen -p -m PKCS8 -f FILE`", ErrUnsupportedKey)
	case "TSS2 PRIVATE KEY":
		return nil, fmt.Errorf("%w: TPM-wrapped key (TSS2 PRIVATE KEY); configure the TPM key backend for it", ErrUnsupportedKey)
	}
	return nil, fmt.Errorf("%w: PEM block type %q", ErrUnsupportedKey, b.Type)
}

// pkcs1Key mirrors the PKCS#1 RSAPrivateKey structure far enough to read
// the modulus of keys crypto/rsa refuses to load.
type pkcs1Key struct {
	Version int
	N       *big.Int
	E       *big.Int
	D       *big.Int
	P       *big.Int
	Q       *big.Int
	Dp      *big.Int        `asn1:"optional"`
	Dq      *big.Int        `asn1:"optional"`
	Qinv    *big.Int        `asn1:"optional"`
	Extra   []asn1.RawValue `asn1:"optional,omitempty"`
}

// classifyRSA explains why a PKCS#1 structure did not load: too small
// (unsupported), wrong passphrase (after legacy decryption) or corrupt.
func classifyRSA(der []byte, decrypted bool, format string) error {
	var k pkcs1Key
	if _, err := asn1.Unmarshal(der, &k); err == nil && k.N != nil && k.N.Sign() > 0 {
		if bits := k.N.BitLen(); bits < minRSABits {
			return fmt.Errorf("%w: key type rsa-%d; RSA keys need at least %d bits", ErrUnsupportedKey, bits, minRSABits)
		}
	}
	if decrypted {
		return fmt.Errorf("%w: the decrypted RSA key does not parse", ErrWrongPassphrase)
	}
	return fmt.Errorf("%w: the %s RSA key does not parse", ErrCorruptKey, format)
}

// sec1Key mirrors the SEC1 ECPrivateKey structure to read its curve.
type sec1Key struct {
	Version    int
	PrivateKey []byte
	Curve      asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
	PublicKey  asn1.BitString        `asn1:"optional,explicit,tag:1"`
}

// checkCurve refuses an EC key on a curve the server does not accept.
func checkCurve(curve asn1.ObjectIdentifier) error {
	if name, ok := curveNames[curve.String()]; !ok || !supportedCurve(name) {
		return fmt.Errorf("%w: key type ECDSA %s; the server accepts ECDSA P-256, P-384 and P-521", ErrUnsupportedKey, curveName(curve))
	}
	return nil
}

func classifySEC1(der []byte, decrypted bool) error {
	var k sec1Key
	if _, err := asn1.Unmarshal(der, &k); err == nil && len(k.Curve) > 0 {
		if err := checkCurve(k.Curve); err != nil {
			return err
		}
	}
	if decrypted {
		return fmt.Errorf("%w: the decrypted EC key does not parse", ErrWrongPassphrase)
	}
	return fmt.Errorf("%w: the SEC1 EC key does not parse", ErrCorruptKey)
}

// pkcs8Key mirrors PKCS#8 PrivateKeyInfo / OneAsymmetricKey.
type pkcs8Key struct {
	Version    int
	Algo       pkix.AlgorithmIdentifier
	PrivateKey []byte
	Attributes asn1.RawValue  `asn1:"optional,tag:0"`
	PublicKey  asn1.BitString `asn1:"optional,tag:1"`
}

// Object identifiers of key algorithms seen in PKCS#8 files.
var algorithmNames = map[string]string{
	"1.2.840.113549.1.1.1":  "RSA",
	"1.2.840.113549.1.1.10": "RSA-PSS",
	"1.2.840.10045.2.1":     "ECDSA",
	"1.3.101.110":           "X25519",
	"1.3.101.111":           "X448",
	"1.3.101.112":           "Ed25519",
	"1.3.101.113":           "Ed448",
	"1.2.840.10040.4.1":     "DSA",
	"1.2.840.113549.1.3.1":  "DH",
	"1.2.840.10046.2.1":     "X9.42 DH",
	"1.2.156.10197.1.301":   "SM2",
}

// Named curves by object identifier.
var curveNames = map[string]string{
	"1.2.840.10045.3.1.1":   "P-192",
	"1.3.132.0.33":          "P-224",
	"1.2.840.10045.3.1.7":   "P-256",
	"1.3.132.0.34":          "P-384",
	"1.3.132.0.35":          "P-521",
	"1.3.132.0.10":          "secp256k1",
	"1.3.36.3.3.2.8.1.1.7":  "brainpoolP256r1",
	"1.3.36.3.3.2.8.1.1.11": "brainpoolP384r1",
	"1.3.36.3.3.2.8.1.1.13": "brainpoolP512r1",
	"1.2.156.10197.1.301":   "SM2",
}

func supportedCurve(name string) bool { return name == "P-256" || name == "P-384" || name == "P-521" }

func curveName(oid asn1.ObjectIdentifier) string {
	if n, ok := curveNames[oid.String()]; ok {
		return n
	}
	return "curve " + oid.String()
}

// classifyPKCS8 explains why crypto/x509 refused a PKCS#8 key.
func classifyPKCS8(der []byte) error {
	var k pkcs8Key
	if _, err := asn1.Unmarshal(der, &k); err != nil {
		return fmt.Errorf("%w: the PKCS#8 key does not parse", ErrCorruptKey)
	}
	oid := k.Algo.Algorithm.String()
	name, known := algorithmNames[oid]
	switch {
	case !known:
		return fmt.Errorf("%w: key algorithm %s; the server accepts RSA (>= %d bits), ECDSA P-256/P-384/P-521 and Ed25519", ErrUnsupportedKey, oid, minRSABits)
	case name == "RSA":
		return classifyRSA(k.PrivateKey, false, "PKCS#8")
	case name == "ECDSA":
		var curve asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(k.Algo.Parameters.FullBytes, &curve); err == nil {
			if err := checkCurve(curve); err != nil {
				return err
			}
		}
		return fmt.Errorf("%w: the PKCS#8 EC key does not parse", ErrCorruptKey)
	case name == "Ed25519":
		return fmt.Errorf("%w: the PKCS#8 Ed25519 key does not parse", ErrCorruptKey)
	case name == "RSA-PSS":
		return fmt.Errorf("%w: key type RSA-PSS; the server verifies PKCS#1 v1.5 signatures only, use an rsaEncryption key", ErrUnsupportedKey)
	}
	return fmt.Errorf("%w: key type %s; the server accepts RSA (>= %d bits), ECDSA P-256/P-384/P-521 and Ed25519", ErrUnsupportedKey, name, minRSABits)
}

// describePrivate names a parsed private key of a type newKey refuses.
func describePrivate(priv any) string {
	if k, ok := priv.(*ecdh.PrivateKey); ok {
		if k.Curve() == ecdh.X25519() {
			return "X25519 (a key-agreement key, it cannot sign)"
		}
		return fmt.Sprintf("ECDH %s (a key-agreement key, it cannot sign)", k.Curve())
	}
	return fmt.Sprintf("%T", priv)
}

// errPanic marks a panic in a third-party decoder turned into an error.
var errPanic = errors.New("decoder panicked")
