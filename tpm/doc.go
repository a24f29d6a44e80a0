// Package tpm keeps the device key inside a TPM 2.0: it creates a sign-only
// key under the owner storage root key, stores the TPM-wrapped key as a
// "TSS2 PRIVATE KEY" PEM file at the configured key path, loads it again on
// start, and signs through the TPM. *Key is a crypto.Signer, so the auth
// request signer and the TLS client certificate use it like a file key.
//
// The package owns: opening TPM devices (kernel resource manager, raw device
// or a swtpm Unix socket), one serialized connection per device, retrying
// TPM_RC_RETRY/YIELDED/TESTING, the SRK template shared with tpm2-openssl
// and tpm2-tools, key creation and loading, and mapping TPM failures (no
// device, cleared TPM, dictionary-attack lockout) to sentinel errors with
// instructions. Key files are written with internal/atomicfile.
//
// It uses go-tpm's typed tpm2 API (never legacy/), is cgo-free, and must not
// import agent or any other package of this module except internal/atomicfile
// and tpm/tss2. Tests that need cgo (the in-process simulator) sit behind the
// tpmsimulator build tag.
package tpm
