// Package keystore owns the device's file-backed private key: the device's
// identity towards the Mender server. It reads every PEM flavour Mender
// clients wrote or accept (PKCS#1 RSA, PKCS#8 RSA/ECDSA/Ed25519, SEC1 EC,
// legacy encrypted PEM and PKCS#8 ENCRYPTED PRIVATE KEY), refuses key types
// the server does not accept, generates a key when none exists and that is
// allowed, writes it crash-safely with mode 0600, keeps the replaced key on
// rotation, and never silently overwrites a key it cannot parse.
//
// The loaded key is a *Key, a crypto.Signer that signs exactly the way the
// server verifies (RSA PKCS#1 v1.5, ECDSA ASN.1 DER, pure Ed25519). The
// package also formats what the show-key and provision commands print, so
// that other key backends (TPM) present themselves identically through
// NewInfo.
//
// keystore is a leaf: it imports the standard library, logrus,
// github.com/youmark/pkcs8 (for encrypted PKCS#8) and internal/atomicfile.
// It must not import agent, authapi, dbus, tpm or net/http. The contract
// suite every crypto.Signer backend passes lives in keystore/signertest.
package keystore
