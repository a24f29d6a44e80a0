package tpm_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"

	"github.com/mender-agent/mender-agent/tpm"
)

// ExampleLoadOrCreate shows how the daemon gets its device key from the
// TPM: the PEM block type at the key path picks the backend, and a cleared
// TPM or a missing device are reported with what to do.
func ExampleLoadOrCreate() {
	const path = "/var/lib/mender/mender-agent.pem"
	if data, err := os.ReadFile(path); err == nil && !tpm.IsTSS2PEM(data) {
		fmt.Println("a software key: use the file backend")
		return
	}
	k, err := tpm.LoadOrCreate(context.Background(), tpm.Options{
		Device:            tpm.DefaultDevice,
		Path:              path,
		Generate:          true,
		RegenerateOnClear: true,
	})
	switch {
	case errors.Is(err, tpm.ErrNoDevice):
		fmt.Println("no TPM:", err)
		return
	case err != nil:
		fmt.Println(err)
		return
	}
	defer k.Close()
	digest := sha256.Sum256([]byte("auth request body"))
	sig, err := k.Sign(nil, digest[:], crypto.SHA256)
	fmt.Println(len(sig) > 0, err, k.Type(), k.Backend())
}
