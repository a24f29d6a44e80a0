package keystore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testPass = "correct horse battery staple"

// TestLoadOpenSSLFlavours loads keys made by openssl in every format a
// Mender client wrote or accepts.
func TestLoadOpenSSLFlavours(t *testing.T) {
	pass := "pass:" + testPass
	sec1P256 := func(t *testing.T) []byte {
		return runOpenSSL(t, nil, "ecparam", "-genkey", "-name", "prime256v1", "-noout")
	}
	tests := []struct {
		name       string
		make       func(t *testing.T) []byte
		passphrase string
		wantType   string
		wantBlock  string
	}{
		{name: "pkcs1 rsa (genrsa -traditional)", wantType: "rsa-2048", wantBlock: "RSA PRIVATE KEY",
			make: func(t *testing.T) []byte { return runOpenSSL(t, nil, "genrsa", "-traditional", "2048") }},
		{name: "pkcs1 rsa legacy encrypted aes-256", wantType: "rsa-2048", wantBlock: "RSA PRIVATE KEY", passphrase: testPass,
			make: func(t *testing.T) []byte {
				return runOpenSSL(t, nil, "genrsa", "-traditional", "-aes256", "-passout", pass, "2048")
			}},
		{name: "pkcs1 rsa legacy encrypted des3", wantType: "rsa-2048", wantBlock: "RSA PRIVATE KEY", passphrase: testPass,
			make: func(t *testing.T) []byte {
				return runOpenSSL(t, nil, "genrsa", "-traditional", "-des3", "-passout", pass, "2048")
			}},
		{name: "pkcs8 rsa (genpkey)", wantType: "rsa-3072", wantBlock: "PRIVATE KEY",
			make: func(t *testing.T) []byte {
				return runOpenSSL(t, nil, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072")
			}},
		{name: "pkcs8 ecdsa p256", wantType: "ecdsa-p256", wantBlock: "PRIVATE KEY",
			make: func(t *testing.T) []byte {
				return runOpenSSL(t, nil, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
			}},
		{name: "pkcs8 ecdsa p384", wantType: "ecdsa-p384", wantBlock: "PRIVATE KEY",
			make: func(t *testing.T) []byte {
				return runOpenSSL(t, nil, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384")
			}},
		{name: "pkcs8 ecdsa p521", wantType: "ecdsa-p521", wantBlock: "PRIVATE KEY",
			make: func(t *testing.T) []byte {
				return runOpenSSL(t, nil, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521")
			}},
		{name: "pkcs8 ed25519", wantType: "ed25519", wantBlock: "PRIVATE KEY",
			make: func(t *testing.T) []byte { return runOpenSSL(t, nil, "genpkey", "-algorithm", "ed25519") }},
		{name: "sec1 with ec parameters block (ecparam -genkey)", wantType: "ecdsa-p256", wantBlock: "EC PARAMETERS",
			make: func(t *testing.T) []byte { return runOpenSSL(t, nil, "ecparam", "-genkey", "-name", "prime256v1") }},
		{name: "sec1 p384 (ecparam -genkey -noout)", wantType: "ecdsa-p384", wantBlock: "EC PRIVATE KEY",
			make: func(t *testing.T) []byte {
				return runOpenSSL(t, nil, "ecparam", "-genkey", "-name", "secp384r1", "-noout")
			}},
		{name: "sec1 legacy encrypted", wantType: "ecdsa-p256", wantBlock: "EC PRIVATE KEY", passphrase: testPass,
			make: func(t *testing.T) []byte {
				return runOpenSSL(t, sec1P256(t), "ec", "-aes256", "-passout", pass)
			}},
		{name: "encrypted pkcs8 ed25519 (genpkey -aes256)", wantType: "ed25519", wantBlock: "ENCRYPTED PRIVATE KEY", passphrase: testPass,
			make: func(t *testing.T) []byte {
				return runOpenSSL(t, nil, "genpkey", "-algorithm", "ed25519", "-aes256", "-pass", pass)
			}},
		{name: "encrypted pkcs8 ecdsa aes-128", wantType: "ecdsa-p256", wantBlock: "ENCRYPTED PRIVATE KEY", passphrase: testPass,
			make: func(t *testing.T) []byte {
				return runOpenSSL(t, nil, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes-128-cbc", "-pass", pass)
			}},
		{name: "encrypted pkcs8 rsa des3", wantType: "rsa-2048", wantBlock: "ENCRYPTED PRIVATE KEY", passphrase: testPass,
			make: func(t *testing.T) []byte {
				k := runOpenSSL(t, nil, "genrsa", "-traditional", "2048")
				return runOpenSSL(t, k, "pkcs8", "-topk8", "-v2", "des3", "-passout", pass)
			}},
		{name: "encrypted pkcs8 scrypt", wantType: "ecdsa-p256", wantBlock: "ENCRYPTED PRIVATE KEY", passphrase: testPass,
			make: func(t *testing.T) []byte {
				return runOpenSSL(t, sec1P256(t), "pkcs8", "-topk8", "-scrypt", "-passout", pass)
			}},
		{name: "encrypted pkcs8 sha1 prf", wantType: "ecdsa-p256", wantBlock: "ENCRYPTED PRIVATE KEY", passphrase: testPass,
			make: func(t *testing.T) []byte {
				return runOpenSSL(t, sec1P256(t), "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA1", "-passout", pass)
			}},
		{name: "passphrase given for plain key is ignored", wantType: "ed25519", wantBlock: "PRIVATE KEY", passphrase: "unused",
			make: func(t *testing.T) []byte { return runOpenSSL(t, nil, "genpkey", "-algorithm", "ed25519") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.make(t)
			b, _ := pem.Decode(data)
			require.NotNil(t, b, "openssl output is PEM")
			require.Equal(t, tt.wantBlock, b.Type, "openssl wrote the flavour under test")
			path := writeFile(t, privateDir(t), DefaultFileName, data, 0o600)

			k, err := Load(path, []byte(tt.passphrase))
			require.NoError(t, err)
			assert.Equal(t, tt.wantType, k.Type())
			assert.Equal(t, path, k.Path())

			// The public key is the one OpenSSL derives from the file.
			args := []string{"pkey", "-pubout"}
			if tt.passphrase != "" {
				args = append(args, "-passin", "pass:"+tt.passphrase)
			}
			assert.Equal(t, string(runOpenSSL(t, data, args...)), string(k.PublicKeyPEM()))

			if tt.passphrase != "" && tt.passphrase != "unused" {
				_, err := Load(path, nil)
				assert.ErrorIs(t, err, ErrPassphraseRequired)
				_, err = Load(path, []byte("wrong "+tt.passphrase))
				assert.ErrorIs(t, err, ErrWrongPassphrase)
			}
		})
	}
}

// TestLoadRefusesUnsupportedKeys checks that keys the server would refuse
// are refused at load, with a message naming the type.
func TestLoadRefusesUnsupportedKeys(t *testing.T) {
	tests := []struct {
		name    string
		make    func(t *testing.T) []byte
		wantErr string
	}{
		{name: "rsa 1024", make: func(t *testing.T) []byte { return runOpenSSL(t, nil, "genrsa", "-traditional", "1024") },
			wantErr: "unsupported device key: key type rsa-1024; RSA keys need at least 2048 bits"},
		{name: "rsa 512 pkcs8", make: func(t *testing.T) []byte { return runOpenSSL(t, nil, "genrsa", "512") },
			wantErr: "unsupported device key: key type rsa-512; RSA keys need at least 2048 bits"},
		{name: "rsa 512 pkcs1", make: func(t *testing.T) []byte { return runOpenSSL(t, nil, "genrsa", "-traditional", "512") },
			wantErr: "unsupported device key: key type rsa-512; RSA keys need at least 2048 bits"},
		{name: "ecdsa p224", make: func(t *testing.T) []byte {
			return runOpenSSL(t, nil, "ecparam", "-genkey", "-name", "secp224r1", "-noout")
		}, wantErr: "unsupported device key: key type ECDSA P-224; the server accepts ECDSA P-256, P-384 and P-521"},
		{name: "ecdsa secp256k1 sec1", make: func(t *testing.T) []byte {
			return runOpenSSL(t, nil, "ecparam", "-genkey", "-name", "secp256k1", "-noout")
		}, wantErr: "unsupported device key: key type ECDSA secp256k1; the server accepts ECDSA P-256, P-384 and P-521"},
		{name: "ecdsa brainpool pkcs8", make: func(t *testing.T) []byte {
			return runOpenSSL(t, nil, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:brainpoolP256r1")
		}, wantErr: "unsupported device key: key type ECDSA brainpoolP256r1; the server accepts ECDSA P-256, P-384 and P-521"},
		{name: "ed448", make: func(t *testing.T) []byte { return runOpenSSL(t, nil, "genpkey", "-algorithm", "ed448") },
			wantErr: "unsupported device key: key type Ed448; the server accepts RSA (>= 2048 bits), ECDSA P-256/P-384/P-521 and Ed25519"},
		{name: "x25519", make: func(t *testing.T) []byte { return runOpenSSL(t, nil, "genpkey", "-algorithm", "x25519") },
			wantErr: "unsupported device key: key type X25519 (a key-agreement key, it cannot sign); the server accepts RSA (>= 2048 bits), ECDSA P-256/P-384/P-521 and Ed25519"},
		{name: "rsa-pss", make: func(t *testing.T) []byte {
			return runOpenSSL(t, nil, "genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048")
		}, wantErr: "unsupported device key: key type RSA-PSS; the server verifies PKCS#1 v1.5 signatures only, use an rsaEncryption key"},
		{name: "dsa block", make: func(t *testing.T) []byte {
			return pem.EncodeToMemory(&pem.Block{Type: "DSA PRIVATE KEY", Bytes: []byte{0x30, 0}})
		}, wantErr: "unsupported device key: key type DSA; the server accepts RSA (>= 2048 bits), ECDSA P-256/P-384/P-521 and Ed25519"},
		{name: "openssh", make: func(t *testing.T) []byte {
			return pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: []byte("openssh-key-v1")})
		}, wantErr: "unsupported device key: OpenSSH private key format; convert it with `ssh-keygen -p -m PKCS8 -f FILE`"},
		{name: "tss2", make: func(t *testing.T) []byte {
			return pem.EncodeToMemory(&pem.Block{Type: "TSS2 PRIVATE KEY", Bytes: []byte{0x30, 0}})
		}, wantErr: "unsupported device key: TPM-wrapped key (TSS2 PRIVATE KEY); configure the TPM key backend for it"},
		{name: "pbes1 encrypted pkcs8", make: func(t *testing.T) []byte {
			k := runOpenSSL(t, nil, "genpkey", "-algorithm", "ed25519")
			return runOpenSSL(t, k, "pkcs8", "-topk8", "-v1", "PBE-SHA1-3DES", "-passout", "pass:"+testPass)
		}, wantErr: "unsupported device key: ENCRYPTED PRIVATE KEY uses scheme 1.2.840.113549.1.12.1.3 (PBES1 or PKCS#12); only PBES2 is supported: re-encrypt it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256`"},
		{name: "pbes2 camellia", make: func(t *testing.T) []byte {
			k := runOpenSSL(t, nil, "genpkey", "-algorithm", "ed25519")
			return runOpenSSL(t, k, "pkcs8", "-topk8", "-v2", "camellia-256-cbc", "-passout", "pass:"+testPass)
		}, wantErr: "unsupported device key: ENCRYPTED PRIVATE KEY cipher 1.2.392.200011.61.1.1.1.4 is not supported: re-encrypt it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256`"},
		{name: "legacy camellia", make: func(t *testing.T) []byte {
			k := runOpenSSL(t, nil, "ecparam", "-genkey", "-name", "prime256v1", "-noout")
			return runOpenSSL(t, k, "ec", "-camellia256", "-passout", "pass:"+testPass)
		}, wantErr: `unsupported device key: legacy PEM encryption "CAMELLIA-256-CBC"; supported: DES-CBC, DES-EDE3-CBC, AES-128-CBC, AES-192-CBC, AES-256-CBC (or convert with ` + "`openssl pkcs8 -topk8 -v2 aes-256-cbc`)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, privateDir(t), DefaultFileName, tt.make(t), 0o600)
			_, err := Load(path, []byte(testPass))
			require.ErrorIs(t, err, ErrUnsupportedKey)
			assert.EqualError(t, err, fmt.Sprintf("load device key %s: %s", path, tt.wantErr))
		})
	}
}

// TestLoadBadInput checks each damaged or wrong input gets its own exact
// error, and that only truly unparsable files count as corrupt.
func TestLoadBadInput(t *testing.T) {
	good := pkcs8PEM(t, testKey(t, TypeEd25519))
	goodEC := sec1PEM(t, testKey(t, TypeECDSAP256))
	encrypted, err := encodePrivate(testKey(t, TypeECDSAP256), []byte(testPass))
	require.NoError(t, err)
	// Damage one base64 character in the middle of the body.
	garbled := bytes.Replace(good, []byte("\n-----END"), []byte("!!\n-----END"), 1)

	tests := []struct {
		name       string
		setup      func(t *testing.T, dir string) string
		passphrase string
		wantIs     error
		wantErr    string // %s is the path
	}{
		{name: "missing file", setup: func(t *testing.T, dir string) string { return filepath.Join(dir, DefaultFileName) },
			wantIs: ErrKeyNotFound, wantErr: "device key not found: %s does not exist"},
		{name: "zero-length file", setup: fileWith(nil),
			wantIs: ErrCorruptKey, wantErr: "load device key %s: device key file is corrupt: the file is empty"},
		{name: "whitespace only", setup: fileWith([]byte(" \n\n")),
			wantIs: ErrCorruptKey, wantErr: "load device key %s: device key file is corrupt: the file is empty"},
		{name: "truncated pem", setup: fileWith(good[:len(good)/2]),
			wantIs: ErrCorruptKey, wantErr: "load device key %s: device key file is corrupt: 1 of 1 PEM blocks are truncated or damaged"},
		{name: "garbage in base64", setup: fileWith(garbled),
			wantIs: ErrCorruptKey, wantErr: "load device key %s: device key file is corrupt: 1 of 1 PEM blocks are truncated or damaged"},
		{name: "garbage only", setup: fileWith([]byte("\x00\x01binary junk\xff")),
			wantIs: ErrCorruptKey, wantErr: "load device key %s: device key file is corrupt: no PEM data (expected a -----BEGIN ... PRIVATE KEY----- block)"},
		{name: "valid pem wrapping junk der", setup: fileWith(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")})),
			wantIs: ErrCorruptKey, wantErr: "load device key %s: device key file is corrupt: the PKCS#8 key does not parse"},
		{name: "junk rsa der", setup: fileWith(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte("junk")})),
			wantIs: ErrCorruptKey, wantErr: "load device key %s: device key file is corrupt: the PKCS#1 RSA key does not parse"},
		{name: "junk ec der", setup: fileWith(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("junk")})),
			wantIs: ErrCorruptKey, wantErr: "load device key %s: device key file is corrupt: the SEC1 EC key does not parse"},
		{name: "damaged block before a good one", setup: fileWith(append(append(good[:len(good)/2:len(good)/2], '\n'), good...)),
			wantIs: ErrCorruptKey, wantErr: "load device key %s: device key file is corrupt: 1 of 2 PEM blocks are truncated or damaged"},
		{name: "two private keys", setup: fileWith(append(append([]byte{}, good...), goodEC...)),
			wantErr: "load device key %s: the file holds 2 private keys (PRIVATE KEY, EC PRIVATE KEY); keep exactly one"},
		{name: "public key only", setup: fileWith(testKey(t, TypeEd25519).PublicKeyPEM()),
			wantErr: "load device key %s: no private key in the file (PEM blocks found: PUBLIC KEY)"},
		{name: "encrypted without passphrase", setup: fileWith(encrypted),
			wantIs: ErrPassphraseRequired, wantErr: "load device key %s: device key is encrypted and no passphrase was given (ENCRYPTED PRIVATE KEY); pass --passphrase-file FILE, or - for stdin"},
		{name: "wrong passphrase", setup: fileWith(encrypted), passphrase: "wrong",
			wantIs: ErrWrongPassphrase, wantErr: "load device key %s: wrong passphrase for device key (ENCRYPTED PRIVATE KEY)"},
		{name: "directory instead of file", setup: func(t *testing.T, dir string) string {
			p := filepath.Join(dir, DefaultFileName)
			require.NoError(t, os.Mkdir(p, 0o700))
			return p
		}, wantErr: "read device key %s: it is a directory; the key path must name a PEM file"},
		{name: "oversized file", setup: fileWith(bytes.Repeat([]byte("A"), maxKeyFileSize+1)),
			wantErr: "read device key %s: larger than 64 KiB, which no PEM private key is; check the path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.setup(t, privateDir(t))
			_, err := Load(path, []byte(tt.passphrase))
			require.Error(t, err)
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			} else {
				assert.NotErrorIs(t, err, ErrCorruptKey, "only unparsable files are corrupt")
			}
			assert.EqualError(t, err, fmt.Sprintf(tt.wantErr, path))
		})
	}
}

// TestLoadToleratesSurroundingText accepts text around the PEM blocks, as
// OpenSSL does (for example "Bag Attributes" from a PKCS#12 export).
func TestLoadToleratesSurroundingText(t *testing.T) {
	k := testKey(t, TypeECDSAP256)
	data := append([]byte("Bag Attributes\n    localKeyID: 01\n"), pkcs8PEM(t, k)...)
	data = append(data, []byte("trailing comment\n")...)
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})...)
	path := writeFile(t, privateDir(t), DefaultFileName, data, 0o600)
	got, err := Load(path, nil)
	require.NoError(t, err)
	assert.Equal(t, k.Fingerprint(), got.Fingerprint())
}

func TestLoadUnreadableFile(t *testing.T) {
	data := pkcs8PEM(t, testKey(t, TypeEd25519))
	if os.Geteuid() != 0 {
		path := writeFile(t, privateDir(t), DefaultFileName, data, 0o000)
		_, err := Load(path, nil)
		assert.EqualError(t, err, fmt.Sprintf("read device key: open %s: permission denied; check the file's owner and permissions", path))
		return
	}
	// root reads any file: load it as an unprivileged user instead.
	dir := sharedDir(t)
	path := writeFile(t, dir, DefaultFileName, data, 0o000)
	got := runHelperAsNobody(t, dir, helperLoad, path)
	assert.Equal(t, fmt.Sprintf("read device key: open %s: permission denied; check the file's owner and permissions", path), got)
}

func fileWith(data []byte) func(t *testing.T, dir string) string {
	return func(t *testing.T, dir string) string {
		return writeFile(t, dir, DefaultFileName, data, 0o600)
	}
}

// sec1PEM returns k (an ECDSA key) as a SEC1 "EC PRIVATE KEY" block.
func sec1PEM(t *testing.T, k *Key) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k.priv.(*ecdsa.PrivateKey))
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}
