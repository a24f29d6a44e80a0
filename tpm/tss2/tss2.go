// Package tss2 reads and writes TPM 2.0 key files: the "TSS2 PRIVATE KEY"
// PEM container defined by the TCG-aligned "ASN.1 Specification for TPM 2.0
// Key Files", as written by tpm2-openssl, tpm2-tss-engine, tpm2_encodeobject
// and this project.
//
// It owns the byte format only: it knows nothing about TPMs, so the TPM2B
// blobs inside a key file are carried as opaque bytes. Only loadable keys
// (OID 2.23.133.10.1.3) without policies are accepted, because that is what
// the device key needs. Files are written without the optional description
// field, which tpm2-openssl 1.1.1 rejects.
//
// It imports the standard library only.
package tss2

import (
	"bytes"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
)

// BlockType is the PEM block type of a TPM 2.0 key file.
const BlockType = "TSS2 PRIVATE KEY"

// ParentOwner is the parent value meaning "the storage root key derived in
// the owner hierarchy from the TCG ECC P-256 SRK template with empty unique
// fields" (TPM_RH_OWNER).
const ParentOwner uint32 = 0x40000001

// maxFileSize bounds the input accepted by Decode and Parse. Real key files
// are well under 2 KiB; TPM2B blobs are at most 64 KiB each.
const maxFileSize = 256 << 10

var (
	oidLoadableKey   = asn1.ObjectIdentifier{2, 23, 133, 10, 1, 3}
	oidImportableKey = asn1.ObjectIdentifier{2, 23, 133, 10, 1, 4}
	oidSealedKey     = asn1.ObjectIdentifier{2, 23, 133, 10, 1, 5}
)

// ErrFormat is wrapped by every error about a malformed or unsupported key
// file.
var ErrFormat = errors.New("invalid TSS2 key file")

// Key is the content of a loadable TPM 2.0 key file. The zero value is not
// useful; Key values are plain data and safe to share read-only.
type Key struct {
	// EmptyAuth reports that the key has no authorization value. Writers
	// disagree on this flag (tpm2_encodeobject writes false for keys
	// without a password), so readers should treat it as a hint.
	EmptyAuth bool
	// Parent is the TPM handle of the parent: ParentOwner, or a persistent
	// handle (0x81xxxxxx).
	Parent uint32
	// Public is the marshalled TPM2B_PUBLIC, size prefix included.
	Public []byte
	// Private is the marshalled TPM2B_PRIVATE (wrapped by the parent), size
	// prefix included.
	Private []byte
}

// IsPEM reports whether data holds a PEM block of type BlockType (other
// blocks may precede it). It decides between the TPM and file backends.
func IsPEM(data []byte) bool {
	_, err := findBlock(data)
	return err == nil
}

// Decode parses the first "TSS2 PRIVATE KEY" PEM block in data.
func Decode(data []byte) (*Key, error) {
	b, err := findBlock(data)
	if err != nil {
		return nil, err
	}
	return Parse(b.Bytes)
}

func findBlock(data []byte) (*pem.Block, error) {
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%w: %d bytes, larger than %d", ErrFormat, len(data), maxFileSize)
	}
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("%w: no %q PEM block", ErrFormat, BlockType)
		}
		if b.Type == BlockType {
			return b, nil
		}
	}
}

// Parse parses the DER body of a key file. It accepts the BOOLEAN encodings
// of every known writer (0x01 and 0xFF for true) and rejects keys that need
// features the device key does not support (policies, importable or sealed
// objects), naming them.
func Parse(der []byte) (*Key, error) {
	if len(der) > maxFileSize {
		return nil, fmt.Errorf("%w: %d bytes, larger than %d", ErrFormat, len(der), maxFileSize)
	}
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(der, &seq)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after the key", ErrFormat, len(rest))
	}
	if seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil, fmt.Errorf("%w: not an ASN.1 SEQUENCE", ErrFormat)
	}
	fields, err := elements(seq.Bytes)
	if err != nil {
		return nil, err
	}
	if len(fields) < 4 {
		return nil, fmt.Errorf("%w: %d fields, want at least 4 (type, parent, pubkey, privkey)", ErrFormat, len(fields))
	}

	var oid asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(fields[0].FullBytes, &oid); err != nil {
		return nil, fmt.Errorf("%w: type: %w", ErrFormat, err)
	}
	switch {
	case oid.Equal(oidLoadableKey):
	case oid.Equal(oidImportableKey):
		return nil, fmt.Errorf("%w: importable key (OID %s) is not supported; load it with tpm2_import and re-encode it as a loadable key", ErrFormat, oid)
	case oid.Equal(oidSealedKey):
		return nil, fmt.Errorf("%w: sealed data object (OID %s) is not a signing key", ErrFormat, oid)
	default:
		return nil, fmt.Errorf("%w: unknown key type OID %s", ErrFormat, oid)
	}

	k := &Key{}
	tail := fields[len(fields)-3:]
	for _, f := range fields[1 : len(fields)-3] {
		if f.Class != asn1.ClassContextSpecific || !f.IsCompound {
			return nil, fmt.Errorf("%w: unexpected field (class %d, tag %d) before parent", ErrFormat, f.Class, f.Tag)
		}
		switch f.Tag {
		case 0:
			v, err := parseBool(f.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: emptyAuth: %w", ErrFormat, err)
			}
			k.EmptyAuth = v
		case 1, 3:
			return nil, fmt.Errorf("%w: key with an authorization policy is not supported; create a key without a policy", ErrFormat)
		case 2:
			return nil, fmt.Errorf("%w: key with an import secret is not a loadable key", ErrFormat)
		case 4, 5:
			// description and rsaParent: informational here.
		default:
			return nil, fmt.Errorf("%w: unknown optional field [%d]", ErrFormat, f.Tag)
		}
	}

	var parent int64
	if rest, err := asn1.Unmarshal(tail[0].FullBytes, &parent); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("%w: parent is not an INTEGER", ErrFormat)
	}
	if parent < 0 || parent > 0xFFFFFFFF {
		return nil, fmt.Errorf("%w: parent %d is not a TPM handle", ErrFormat, parent)
	}
	k.Parent = uint32(parent)
	if k.Public, err = octets(tail[1], "pubkey"); err != nil {
		return nil, err
	}
	if k.Private, err = octets(tail[2], "privkey"); err != nil {
		return nil, err
	}
	return k, nil
}

func elements(b []byte) ([]asn1.RawValue, error) {
	var out []asn1.RawValue
	for len(b) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(b, &v)
		if err != nil {
			return nil, fmt.Errorf("%w: field %d: %w", ErrFormat, len(out)+1, err)
		}
		out = append(out, v)
		b = rest
	}
	return out, nil
}

// parseBool reads an explicitly tagged BOOLEAN leniently: any non-zero
// content byte is true, as BER allows.
func parseBool(b []byte) (bool, error) {
	var v asn1.RawValue
	rest, err := asn1.Unmarshal(b, &v)
	if err != nil {
		return false, err
	}
	if len(rest) != 0 || v.Class != asn1.ClassUniversal || v.Tag != asn1.TagBoolean || len(v.Bytes) != 1 {
		return false, errors.New("not a BOOLEAN")
	}
	return v.Bytes[0] != 0, nil
}

func octets(v asn1.RawValue, field string) ([]byte, error) {
	if v.Class != asn1.ClassUniversal || v.Tag != asn1.TagOctetString || v.IsCompound {
		return nil, fmt.Errorf("%w: %s is not an OCTET STRING", ErrFormat, field)
	}
	if len(v.Bytes) < 2 {
		return nil, fmt.Errorf("%w: %s is empty", ErrFormat, field)
	}
	if size := int(v.Bytes[0])<<8 | int(v.Bytes[1]); size != len(v.Bytes)-2 {
		return nil, fmt.Errorf("%w: %s TPM2B size %d does not match its %d bytes", ErrFormat, field, size, len(v.Bytes)-2)
	}
	return bytes.Clone(v.Bytes), nil
}

type derKey struct {
	Type      asn1.ObjectIdentifier
	EmptyAuth bool `asn1:"explicit,tag:0,optional"`
	Parent    int64
	Public    []byte
	Private   []byte
}

// Marshal returns the DER body of the key file: type, emptyAuth (only when
// true), parent, pubkey and privkey; no optional description.
func (k *Key) Marshal() ([]byte, error) {
	if len(k.Public) < 2 || len(k.Private) < 2 {
		return nil, fmt.Errorf("%w: empty public or private blob", ErrFormat)
	}
	return asn1.Marshal(derKey{
		Type:      oidLoadableKey,
		EmptyAuth: k.EmptyAuth,
		Parent:    int64(k.Parent),
		Public:    k.Public,
		Private:   k.Private,
	})
}

// EncodePEM returns the key file as a "TSS2 PRIVATE KEY" PEM block.
func (k *Key) EncodePEM() ([]byte, error) {
	der, err := k.Marshal()
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: BlockType, Bytes: der}), nil
}
