package tpm

import (
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// ErrNoDevice means the configured TPM device does not exist. Callers may
// fall back to a file key only when the configuration explicitly allows it.
var ErrNoDevice = errors.New("no TPM device")

// ErrCleared means the key file cannot be loaded by this TPM: the TPM was
// cleared or replaced, or the file was made on another device. The key is
// lost for good; a new key means a new auth set the server must accept.
var ErrCleared = errors.New("TPM key cannot be loaded by this TPM (TPM cleared or replaced, or key file from another device)")

// ErrLockout means the TPM is in dictionary-attack lockout and refuses
// DA-protected keys and authorizations.
var ErrLockout = errors.New("TPM is in dictionary-attack lockout")

// lockoutHint tells the operator how to get out of a lockout.
const lockoutHint = "wait for the lockout recovery time, or clear it with `tpm2_dictionarylockout --clear-lockout` (needs the lockout authorization)"

// classify wraps a TPM error from operation op with the sentinel and advice
// that apply to it, or returns it wrapped with op alone.
func classify(op string, err error) error {
	switch {
	case errors.Is(err, tpm2.TPMRCLockout):
		return fmt.Errorf("%s: %w; %s: %w", op, ErrLockout, lockoutHint, err)
	case errors.Is(err, tpm2.TPMRCBadAuth), errors.Is(err, tpm2.TPMRCAuthFail):
		return fmt.Errorf("%s: authorization rejected; if the owner hierarchy has a password, configure it as the parent password: %w", op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
