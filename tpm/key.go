package tpm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sync/atomic"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/sirupsen/logrus"

	"github.com/mender-agent/mender-agent/tpm/tss2"
)

// Backend is the name of this key backend in configuration and in the
// output of show-key and provision.
const Backend = "tpm"

// Key types accepted in Options.Type and reported by Key.Type.
const (
	TypeECDSAP256 = "ecdsa-p256"
	TypeECDSAP384 = "ecdsa-p384"
	TypeRSA2048   = "rsa-2048"
	TypeRSA3072   = "rsa-3072"
	TypeRSA4096   = "rsa-4096"
	typeEd25519   = "ed25519"
)

// Key is a signing key that lives in a TPM; only its TPM-wrapped form is
// ever outside the TPM. It implements crypto.Signer for ECDSA keys (ASN.1
// DER signatures) and RSA keys (PKCS#1 v1.5 only), so it can sign auth
// requests and serve as tls.Certificate.PrivateKey (for RSA keys under TLS
// 1.3, use TLSSigner). The key is used with an empty authorization value,
// whatever the key file's emptyAuth flag says (tpm2_encodeobject writes
// false for keys without a password).
//
// Sign, Public and Type are safe for concurrent use; TPM commands of every
// key on one device are serialized by that device's mutex. Close flushes the
// key from the TPM; it starts no goroutines.
type Key struct {
	dev       *device
	file      *tss2.Key
	pub       crypto.PublicKey
	typ       string
	ownerAuth []byte
	log       logrus.FieldLogger

	// Guarded by dev.mu.
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	closed atomic.Bool
}

var _ crypto.Signer = (*Key)(nil)

// Public returns the key's *ecdsa.PublicKey or *rsa.PublicKey.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// Type returns the key type: "ecdsa-p256", "ecdsa-p384" or "rsa-<bits>"
// ("rsa-2048", "rsa-3072", "rsa-4096", or another size found in a loaded
// file).
func (k *Key) Type() string { return k.typ }

// Backend returns "tpm".
func (k *Key) Backend() string { return Backend }

// Close flushes the key from the TPM and releases the device connection.
// It is idempotent; Sign fails after Close.
func (k *Key) Close() error {
	if k.closed.Swap(true) {
		return nil
	}
	k.dev.mu.Lock()
	err := flush(k.dev.tpm(context.Background()), k.handle)
	k.dev.mu.Unlock()
	if isStaleHandle(err) {
		err = nil // the TPM already dropped it (reset or reboot)
	}
	if rerr := k.dev.release(); rerr != nil {
		return rerr
	}
	if err != nil {
		return fmt.Errorf("flush TPM key: %w", err)
	}
	return nil
}

// Sign signs digest, which must be the output of opts.HashFunc() (SHA-256,
// SHA-384 or SHA-512). ECDSA signatures are ASN.1 DER; RSA signatures are
// PKCS#1 v1.5. RSA-PSS (*rsa.PSSOptions) is refused because the Mender
// server accepts PKCS#1 v1.5 only; TLS 1.3 with an RSA key needs
// TLSSigner. rand is ignored: the TPM makes its own nonces. Every signature
// is verified against the public key before it is returned.
func (k *Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.signDigest(digest, opts, false)
}

// TLSSigner returns a crypto.Signer over the same TPM key for
// tls.Certificate.PrivateKey. It differs from the Key only for RSA keys:
// it also accepts RSA-PSS with the salt length equal to the hash length
// (what crypto/tls asks for, and the only salt length TPMs produce), which
// TLS 1.3 requires for RSA client certificates. ECDSA keys need no
// TLSSigner but may use it. It is safe for concurrent use and valid until
// the Key is closed.
func (k *Key) TLSSigner() crypto.Signer { return tlsSigner{k} }

type tlsSigner struct{ k *Key }

func (s tlsSigner) Public() crypto.PublicKey { return s.k.pub }

func (s tlsSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.k.signDigest(digest, opts, true)
}

func (k *Key) signDigest(digest []byte, opts crypto.SignerOpts, allowPSS bool) ([]byte, error) {
	if opts == nil {
		return nil, errors.New("tpm sign: no hash given (opts is nil); pass the crypto.Hash used for the digest")
	}
	h := opts.HashFunc()
	alg, err := hashAlg(h)
	if err != nil {
		return nil, err
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("tpm sign: digest is %d bytes, %s needs %d", len(digest), h, h.Size())
	}
	schemeAlg := tpm2.TPMAlgECDSA
	pss, isPSS := opts.(*rsa.PSSOptions)
	switch _, isRSA := k.pub.(*rsa.PublicKey); {
	case isPSS && !allowPSS:
		return nil, errors.New("tpm sign: RSA-PSS is not supported; the TPM key signs PKCS#1 v1.5 (RSA) or ECDSA only")
	case isPSS && !isRSA:
		return nil, fmt.Errorf("tpm sign: RSA-PSS options for a %s key", k.typ)
	case isPSS:
		if pss.SaltLength != rsa.PSSSaltLengthEqualsHash && pss.SaltLength != h.Size() {
			return nil, fmt.Errorf("tpm sign: RSA-PSS salt length %d is not supported; TPMs use the hash length (%d)", pss.SaltLength, h.Size())
		}
		schemeAlg = tpm2.TPMAlgRSAPSS
	case isRSA:
		schemeAlg = tpm2.TPMAlgRSASSA
	}
	scheme := tpm2.TPMTSigScheme{Scheme: schemeAlg, Details: tpm2.NewTPMUSigScheme(schemeAlg, &tpm2.TPMSSchemeHash{HashAlg: alg})}

	ctx := context.Background()
	k.dev.mu.Lock()
	defer k.dev.mu.Unlock()
	if k.closed.Load() {
		return nil, errors.New("tpm sign: key is closed")
	}
	rsp, err := k.sign(ctx, digest, scheme)
	if isStaleHandle(err) {
		// The TPM lost our transient object (reset, or another user
		// flushed it on a device without a resource manager): load again
		// once.
		k.log.WithField(fieldDevice, k.dev.name).WithError(err).Warn("TPM key handle is gone; loading the key again")
		if lerr := k.loadLocked(ctx); lerr != nil {
			return nil, fmt.Errorf("tpm sign: reload after %v: %w", err, lerr)
		}
		rsp, err = k.sign(ctx, digest, scheme)
	}
	if err != nil {
		if errors.Is(err, tpm2.TPMRCScheme) {
			return nil, fmt.Errorf("tpm sign: the %s key's fixed signing scheme does not allow this signature with %s: %w", k.typ, h, err)
		}
		return nil, classify("tpm sign", err)
	}
	return k.encode(rsp, digest, h, isPSS)
}

func (k *Key) sign(ctx context.Context, digest []byte, scheme tpm2.TPMTSigScheme) (*tpm2.SignResponse, error) {
	return tpm2.Sign{
		KeyHandle:  tpm2.AuthHandle{Handle: k.handle, Name: k.name, Auth: tpm2.PasswordAuth(nil)},
		Digest:     tpm2.TPM2BDigest{Buffer: digest},
		InScheme:   scheme,
		Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
	}.Execute(k.dev.tpm(ctx))
}

func (k *Key) encode(rsp *tpm2.SignResponse, digest []byte, h crypto.Hash, pss bool) ([]byte, error) {
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		ec, err := rsp.Signature.Signature.ECDSA()
		if err != nil {
			return nil, fmt.Errorf("tpm sign: unexpected signature type: %w", err)
		}
		sig, err := asn1.Marshal(struct{ R, S *big.Int }{
			new(big.Int).SetBytes(ec.SignatureR.Buffer),
			new(big.Int).SetBytes(ec.SignatureS.Buffer),
		})
		if err != nil {
			return nil, fmt.Errorf("tpm sign: encode ECDSA signature: %w", err)
		}
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return nil, errors.New("tpm sign: the TPM returned an ECDSA signature that does not verify with the key's public key")
		}
		return sig, nil
	case *rsa.PublicKey:
		if pss {
			rs, err := rsp.Signature.Signature.RSAPSS()
			if err != nil {
				return nil, fmt.Errorf("tpm sign: unexpected signature type: %w", err)
			}
			if err := rsa.VerifyPSS(pub, h, digest, rs.Sig.Buffer, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
				return nil, fmt.Errorf("tpm sign: the TPM returned an RSA-PSS signature that does not verify with the key's public key: %w", err)
			}
			return rs.Sig.Buffer, nil
		}
		rs, err := rsp.Signature.Signature.RSASSA()
		if err != nil {
			return nil, fmt.Errorf("tpm sign: unexpected signature type: %w", err)
		}
		if err := rsa.VerifyPKCS1v15(pub, h, digest, rs.Sig.Buffer); err != nil {
			return nil, fmt.Errorf("tpm sign: the TPM returned an RSA signature that does not verify with the key's public key: %w", err)
		}
		return rs.Sig.Buffer, nil
	}
	return nil, fmt.Errorf("tpm sign: unsupported public key %T", k.pub)
}

func hashAlg(h crypto.Hash) (tpm2.TPMAlgID, error) {
	switch h {
	case crypto.SHA256:
		return tpm2.TPMAlgSHA256, nil
	case crypto.SHA384:
		return tpm2.TPMAlgSHA384, nil
	case crypto.SHA512:
		return tpm2.TPMAlgSHA512, nil
	case 0:
		return 0, errors.New("tpm sign: no hash given (opts.HashFunc() is 0); TPM keys sign SHA-256, SHA-384 or SHA-512 digests")
	}
	return 0, fmt.Errorf("tpm sign: hash %s is not supported; use SHA-256, SHA-384 or SHA-512", h)
}

func isStaleHandle(err error) bool {
	return errors.Is(err, tpm2.TPMRCHandle) || errors.Is(err, tpm2.TPMRCReferenceH0)
}

// srkTemplate is the TCG provisioning-guidance ECC P-256 storage root key
// template with empty unique fields, the parent tpm2-openssl and
// tpm2-tools derive for key files whose parent is TPM_RH_OWNER. go-tpm's
// ECCSRKTemplate has 32 zero bytes in each unique field instead, which is a
// different key, so it is copied and fixed here.
func srkTemplate() tpm2.TPMTPublic {
	t := tpm2.ECCSRKTemplate
	t.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{})
	return t
}

// keyAttributes are those of every key this package creates: bound to this
// TPM, sign-only, usable with an empty password, and exempt from
// dictionary-attack lockout, so a lockout caused by another program cannot
// take the device identity down.
var keyAttributes = tpm2.TPMAObject{
	FixedTPM:            true,
	FixedParent:         true,
	SensitiveDataOrigin: true,
	UserWithAuth:        true,
	NoDA:                true,
	SignEncrypt:         true,
}

// keySpecs describes every key type the package can create. Every TPM 2.0
// has ECC P-256 and RSA-2048 (TCG PC Client profile); the others are asked
// of the TPM with TPM2_TestParms before creating a key.
var keySpecs = map[string]struct {
	curve     tpm2.TPMECCCurve // ECC keys
	bits      tpm2.TPMKeyBits  // RSA keys
	mayLackIt bool
}{
	TypeECDSAP256: {curve: tpm2.TPMECCNistP256},
	TypeECDSAP384: {curve: tpm2.TPMECCNistP384, mayLackIt: true},
	TypeRSA2048:   {bits: 2048},
	TypeRSA3072:   {bits: 3072, mayLackIt: true},
	TypeRSA4096:   {bits: 4096, mayLackIt: true},
}

// template returns the creation template for a validated key type.
func template(typ string) tpm2.TPMTPublic {
	spec := keySpecs[typ]
	if spec.bits != 0 {
		return tpm2.TPMTPublic{
			Type:             tpm2.TPMAlgRSA,
			NameAlg:          tpm2.TPMAlgSHA256,
			ObjectAttributes: keyAttributes,
			Parameters:       tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, rsaParms(spec.bits)),
			Unique:           tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{}),
		}
	}
	return tpm2.TPMTPublic{
		Type:             tpm2.TPMAlgECC,
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: keyAttributes,
		Parameters:       tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, eccParms(spec.curve)),
		Unique:           tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
	}
}

func eccParms(curve tpm2.TPMECCCurve) *tpm2.TPMSECCParms {
	return &tpm2.TPMSECCParms{
		Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
		Scheme:    tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
		CurveID:   curve,
		KDF:       tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
	}
}

func rsaParms(bits tpm2.TPMKeyBits) *tpm2.TPMSRSAParms {
	return &tpm2.TPMSRSAParms{
		Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
		Scheme:    tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgNull},
		KeyBits:   bits,
	}
}

// keyType validates a configured key type; "" means ECDSA P-256.
func keyType(s string) (string, error) {
	if s == "" {
		return TypeECDSAP256, nil
	}
	if _, ok := keySpecs[s]; ok {
		return s, nil
	}
	if s == typeEd25519 {
		return "", fmt.Errorf("key type %q: TPM 2.0 devices have no Ed25519; use %s (recommended) or %s with the TPM backend", s, TypeECDSAP256, TypeRSA2048)
	}
	return "", fmt.Errorf("key type %q: the TPM backend supports %s (default), %s, %s, %s and %s", s, TypeECDSAP256, TypeECDSAP384, TypeRSA2048, TypeRSA3072, TypeRSA4096)
}

// parsePublic decodes a key file's TPM2B_PUBLIC and checks that it is a
// usable signing key. It is the first thing that reads the public blob, so
// it must cope with any bytes.
func parsePublic(b []byte) (pub crypto.PublicKey, typ string, err error) {
	defer func() {
		if r := recover(); r != nil {
			pub, typ, err = nil, "", fmt.Errorf("%w: public area: malformed TPM2B_PUBLIC", tss2.ErrFormat)
		}
	}()
	pub2b, err := tpm2.Unmarshal[tpm2.TPM2BPublic](b)
	if err != nil {
		return nil, "", fmt.Errorf("%w: public area: %w", tss2.ErrFormat, err)
	}
	public, err := pub2b.Contents()
	if err != nil {
		return nil, "", fmt.Errorf("%w: public area: %w", tss2.ErrFormat, err)
	}
	return publicInfo(public)
}

// publicInfo checks that a key file's public area is a usable signing key
// and returns its Go public key and type name.
func publicInfo(p *tpm2.TPMTPublic) (crypto.PublicKey, string, error) {
	a := p.ObjectAttributes
	if !a.SignEncrypt || a.Restricted {
		return nil, "", errors.New("the key is not an unrestricted signing key")
	}
	pub, err := tpm2.Pub(*p)
	if err != nil {
		return nil, "", fmt.Errorf("public key: %w", err)
	}
	switch pk := pub.(type) {
	case *ecdsa.PublicKey:
		if _, err := pk.ECDH(); err != nil {
			return nil, "", fmt.Errorf("public key: ECC point is not on the curve: %w", err)
		}
		switch pk.Curve {
		case elliptic.P256():
			return pub, TypeECDSAP256, nil
		case elliptic.P384():
			return pub, TypeECDSAP384, nil
		}
		return nil, "", fmt.Errorf("ECC curve %s is not supported; use P-256 or P-384", pk.Curve.Params().Name)
	case *rsa.PublicKey:
		if bits := pk.N.BitLen(); bits < 2048 || pk.E < 3 {
			return nil, "", fmt.Errorf("RSA key with %d bits and exponent %d is too weak; use at least 2048 bits", bits, pk.E)
		}
		return pub, fmt.Sprintf("rsa-%d", pk.N.BitLen()), nil
	}
	return nil, "", fmt.Errorf("public key type %T is not supported", pub)
}

// withParent makes the key file's parent available for one command and
// flushes it afterwards if it was created for the purpose. The caller holds
// the device mutex.
func withParent(t transport.TPM, parent uint32, ownerAuth []byte, fn func(tpm2.AuthHandle) error) error {
	if tpm2.TPMHandle(parent) == tpm2.TPMRHOwner {
		tmpl := srkTemplate()
		srk, err := tpm2.CreatePrimary{
			PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(ownerAuth)},
			InPublic:      tpm2.New2B(tmpl),
		}.Execute(t)
		if err != nil {
			return classify("create storage root key in the owner hierarchy", err)
		}
		defer func() { _ = flush(t, srk.ObjectHandle) }()
		return fn(tpm2.AuthHandle{Handle: srk.ObjectHandle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)})
	}
	if tpm2.TPMHT(parent>>24) != tpm2.TPMHTPersistent {
		return fmt.Errorf("parent handle 0x%08x is not supported; key files must name the owner hierarchy (0x40000001) or a persistent key (0x81xxxxxx)", parent)
	}
	rp, err := tpm2.ReadPublic{ObjectHandle: tpm2.TPMHandle(parent)}.Execute(t)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCHandle) {
			return fmt.Errorf("persistent parent 0x%08x is not in the TPM: %w", parent, ErrCleared)
		}
		return classify(fmt.Sprintf("read persistent parent 0x%08x", parent), err)
	}
	return fn(tpm2.AuthHandle{Handle: tpm2.TPMHandle(parent), Name: rp.Name, Auth: tpm2.PasswordAuth(nil)})
}

func flush(t transport.TPM, h tpm2.TPMHandle) error {
	if h == 0 {
		return nil
	}
	_, err := tpm2.FlushContext{FlushHandle: h}.Execute(t)
	return err
}

// loadLocked loads k.file into the TPM and records the handle. The caller
// holds k.dev.mu.
func (k *Key) loadLocked(ctx context.Context) error {
	pub, err := tpm2.Unmarshal[tpm2.TPM2BPublic](k.file.Public)
	if err != nil {
		return fmt.Errorf("%w: public area: %w", tss2.ErrFormat, err)
	}
	priv, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](k.file.Private)
	if err != nil {
		return fmt.Errorf("%w: private area: %w", tss2.ErrFormat, err)
	}
	t := k.dev.tpm(ctx)
	return withParent(t, k.file.Parent, k.ownerAuth, func(parent tpm2.AuthHandle) error {
		rsp, err := tpm2.Load{ParentHandle: parent, InPrivate: *priv, InPublic: *pub}.Execute(t)
		if err != nil {
			if errors.Is(err, tpm2.TPMRCIntegrity) {
				return fmt.Errorf("load key: %w: %w", ErrCleared, err)
			}
			return classify("load key", err)
		}
		k.handle, k.name = rsp.ObjectHandle, rsp.Name
		return nil
	})
}

// create makes a new key of a validated type under the owner SRK and
// returns its key file. The caller holds d.mu.
func create(ctx context.Context, d *device, typ string, ownerAuth []byte) (*tss2.Key, error) {
	t := d.tpm(ctx)
	if tmpl := template(typ); keySpecs[typ].mayLackIt {
		_, err := tpm2.TestParms{Parameters: tpm2.TPMTPublicParms{Type: tmpl.Type, Parameters: tmpl.Parameters}}.Execute(t)
		if err != nil {
			return nil, fmt.Errorf("create TPM key: this TPM does not support %s (%w); use %s or %s", typ, err, TypeECDSAP256, TypeRSA2048)
		}
	}
	var file *tss2.Key
	err := withParent(t, tss2.ParentOwner, ownerAuth, func(parent tpm2.AuthHandle) error {
		rsp, err := tpm2.Create{ParentHandle: parent, InPublic: tpm2.New2B(template(typ))}.Execute(t)
		if err != nil {
			return classify("create "+typ+" key", err)
		}
		file = &tss2.Key{
			EmptyAuth: true,
			Parent:    tss2.ParentOwner,
			Public:    tpm2.Marshal(rsp.OutPublic),
			Private:   tpm2.Marshal(rsp.OutPrivate),
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return file, nil
}
