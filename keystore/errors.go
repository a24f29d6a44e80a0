package keystore

import "errors"

// ErrKeyNotFound means there is no key file at the configured path.
var ErrKeyNotFound = errors.New("device key not found")

// ErrStaticKey means the operation would generate or replace a static
// (provisioned) key, which is never done: a static key comes from
// Security.AuthPrivateKey and is owned by whoever provisioned it.
var ErrStaticKey = errors.New("static device key is never generated or replaced")

// ErrUnsupportedKey means the key parsed but is of a type or size the
// Mender server does not accept (accepted: RSA >= 2048 bits, ECDSA
// P-256/P-384/P-521, Ed25519), or is in a format this backend cannot use.
var ErrUnsupportedKey = errors.New("unsupported device key")

// ErrCorruptKey means the key file cannot be parsed at all (empty,
// truncated, not PEM, broken DER). A generated key in this state is moved
// aside by LoadOrCreate; a static key is reported and left alone.
var ErrCorruptKey = errors.New("device key file is corrupt")

// ErrPassphraseRequired means the key file is encrypted and no passphrase
// was given (use --passphrase-file FILE, or - for stdin).
var ErrPassphraseRequired = errors.New("device key is encrypted and no passphrase was given")

// ErrWrongPassphrase means the passphrase does not decrypt the key file.
var ErrWrongPassphrase = errors.New("wrong passphrase for device key")

// ErrInsecureDir means the directory holding the key is writable by all
// users, so anyone could replace the device's identity.
var ErrInsecureDir = errors.New("key directory is writable by all users")

// ErrUnsupportedSignature means Sign was asked for a signature scheme the
// Mender server does not verify: RSA-PSS, Ed25519ph/Ed25519ctx, a missing
// or unsupported hash, or a digest whose length does not match its hash.
var ErrUnsupportedSignature = errors.New("unsupported signature options")
