package keystore

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/youmark/pkcs8"
)

// Legacy ("traditional") OpenSSL PEM encryption: a Proc-Type: 4,ENCRYPTED
// header and DEK-Info naming the cipher, with an MD5-based key derivation.
// Go deprecates it because it is weak and unauthenticated, but keys written
// by `openssl genrsa -aes256` and by older provisioning tools use it, and a
// drop-in replacement must read them. Only the two functions below touch
// the deprecated API.

// legacyCiphers are the DEK-Info ciphers crypto/x509 can decrypt.
var legacyCiphers = []string{"DES-CBC", "DES-EDE3-CBC", "AES-128-CBC", "AES-192-CBC", "AES-256-CBC"}

func isLegacyEncrypted(b *pem.Block) bool {
	//lint:ignore SA1019 reading legacy encrypted PEM keys is required for drop-in compatibility; see the comment above
	return x509.IsEncryptedPEMBlock(b) //nolint:staticcheck // legacy encrypted PEM keys must stay readable (drop-in compatibility)
}

func decryptLegacy(b *pem.Block, passphrase []byte) ([]byte, error) {
	cipher, _, _ := strings.Cut(b.Headers["DEK-Info"], ",")
	known := false
	for _, c := range legacyCiphers {
		known = known || c == cipher
	}
	if !known {
		return nil, fmt.Errorf("%w: legacy PEM encryption %q; supported: %s (or convert with `openssl pkcs8 -topk8 -v2 aes-256-cbc`)",
			ErrUnsupportedKey, cipher, strings.Join(legacyCiphers, ", "))
	}
	//lint:ignore SA1019 reading legacy encrypted PEM keys is required for drop-in compatibility; see the comment above
	der, err := x509.DecryptPEMBlock(b, passphrase) //nolint:staticcheck // legacy encrypted PEM keys must stay readable (drop-in compatibility)
	if err != nil {
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, fmt.Errorf("%w (legacy encrypted %s)", ErrWrongPassphrase, b.Type)
		}
		return nil, fmt.Errorf("%w: legacy encrypted %s: %v", ErrCorruptKey, b.Type, err)
	}
	return der, nil
}

// PKCS#8 EncryptedPrivateKeyInfo with PBES2 (RFC 8018), decrypted by
// github.com/youmark/pkcs8. The structure is checked here first so that an
// unsupported scheme gets a precise error instead of "wrong passphrase",
// and so that hostile parameters (huge iteration counts or scrypt costs,
// ciphertext that is not a whole number of blocks) never reach the decoder.

var (
	oidPBES2  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}
)

// pbes2Ciphers maps the encryption schemes youmark/pkcs8 decrypts to their
// block size (the ciphertext must be a whole number of blocks).
var pbes2Ciphers = map[string]int{
	"2.16.840.1.101.3.4.1.2":  16, // aes128-CBC
	"2.16.840.1.101.3.4.1.22": 16, // aes192-CBC
	"2.16.840.1.101.3.4.1.42": 16, // aes256-CBC
	"1.2.840.113549.3.7":      8,  // des-ede3-cbc
}

// pbkdf2PRFs are the PBKDF2 pseudo-random functions youmark/pkcs8 supports
// (an absent PRF means hmacWithSHA1).
var pbkdf2PRFs = map[string]bool{"": true, "1.2.840.113549.2.7": true, "1.2.840.113549.2.9": true}

// Cost limits for key derivation: above these a device would spend many
// seconds or more memory than it has deriving the key (OpenSSL writes 2048
// PBKDF2 iterations and scrypt N=16384 r=8, 16 MiB, by default).
const (
	maxPBKDF2Iterations = 1_000_000
	maxScryptMemory     = 64 << 20 // bytes: 128 * N * r
)

type encryptedKeyInfo struct {
	Algo pkix.AlgorithmIdentifier
	Data []byte
}

type pbes2Params struct {
	KDF    pkix.AlgorithmIdentifier
	Scheme pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt       []byte
	Iterations int
	KeyLength  int                      `asn1:"optional"`
	PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
}

type scryptParams struct {
	Salt        []byte
	Cost        int
	BlockSize   int
	Parallelism int
	KeyLength   int `asn1:"optional"`
}

const reencryptHint = "re-encrypt it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256`"

func decryptPKCS8(der, passphrase []byte) (priv any, err error) {
	if err := checkPBES2(der); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			priv, err = nil, fmt.Errorf("%w: ENCRYPTED PRIVATE KEY: %w", ErrCorruptKey, errPanic)
		}
	}()
	k, err := pkcs8.ParsePKCS8PrivateKey(der, passphrase)
	if err != nil {
		// The scheme was checked above, so what remains is a key that
		// does not parse after decryption: almost always the passphrase.
		return nil, fmt.Errorf("%w (ENCRYPTED PRIVATE KEY)", ErrWrongPassphrase)
	}
	return k, nil
}

// checkPBES2 accepts exactly the PBES2 variants youmark/pkcs8 decrypts,
// with sane cost parameters.
func checkPBES2(der []byte) error {
	var info encryptedKeyInfo
	if rest, err := asn1.Unmarshal(der, &info); err != nil || len(rest) != 0 {
		return fmt.Errorf("%w: the ENCRYPTED PRIVATE KEY structure does not parse", ErrCorruptKey)
	}
	if !info.Algo.Algorithm.Equal(oidPBES2) {
		return fmt.Errorf("%w: ENCRYPTED PRIVATE KEY uses scheme %s (PBES1 or PKCS#12); only PBES2 is supported: %s",
			ErrUnsupportedKey, info.Algo.Algorithm, reencryptHint)
	}
	var params pbes2Params
	if _, err := asn1.Unmarshal(info.Algo.Parameters.FullBytes, &params); err != nil {
		return fmt.Errorf("%w: the PBES2 parameters do not parse", ErrCorruptKey)
	}
	blockSize, ok := pbes2Ciphers[params.Scheme.Algorithm.String()]
	if !ok {
		return fmt.Errorf("%w: ENCRYPTED PRIVATE KEY cipher %s is not supported: %s", ErrUnsupportedKey, params.Scheme.Algorithm, reencryptHint)
	}
	var iv []byte
	if _, err := asn1.Unmarshal(params.Scheme.Parameters.FullBytes, &iv); err != nil || len(iv) != blockSize {
		return fmt.Errorf("%w: the PBES2 cipher IV is malformed", ErrCorruptKey)
	}
	if len(info.Data) == 0 || len(info.Data)%blockSize != 0 {
		return fmt.Errorf("%w: the encrypted key data is %d bytes, not a whole number of %d-byte blocks", ErrCorruptKey, len(info.Data), blockSize)
	}
	switch {
	case params.KDF.Algorithm.Equal(oidPBKDF2):
		var p pbkdf2Params
		if _, err := asn1.Unmarshal(params.KDF.Parameters.FullBytes, &p); err != nil {
			return fmt.Errorf("%w: the PBKDF2 parameters do not parse", ErrCorruptKey)
		}
		if !pbkdf2PRFs[p.PRF.Algorithm.String()] {
			return fmt.Errorf("%w: PBKDF2 with PRF %s is not supported: %s", ErrUnsupportedKey, p.PRF.Algorithm, reencryptHint)
		}
		if p.Iterations < 1 || p.Iterations > maxPBKDF2Iterations {
			return fmt.Errorf("%w: PBKDF2 iteration count %d is outside 1..%d", ErrUnsupportedKey, p.Iterations, maxPBKDF2Iterations)
		}
	case params.KDF.Algorithm.Equal(oidScrypt):
		var p scryptParams
		if _, err := asn1.Unmarshal(params.KDF.Parameters.FullBytes, &p); err != nil {
			return fmt.Errorf("%w: the scrypt parameters do not parse", ErrCorruptKey)
		}
		if p.Cost < 2 || p.Cost&(p.Cost-1) != 0 || p.BlockSize < 1 || p.Parallelism < 1 || p.Parallelism > 16 ||
			p.Cost > maxScryptMemory/128/p.BlockSize {
			return fmt.Errorf("%w: scrypt parameters N=%d r=%d p=%d are outside what a device can afford", ErrUnsupportedKey, p.Cost, p.BlockSize, p.Parallelism)
		}
	default:
		return fmt.Errorf("%w: ENCRYPTED PRIVATE KEY key derivation %s is not supported: %s", ErrUnsupportedKey, params.KDF.Algorithm, reencryptHint)
	}
	return nil
}
