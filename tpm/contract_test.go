package tpm_test

import (
	"crypto"
	"path/filepath"
	"testing"

	"github.com/mender-agent/mender-agent/keystore/signertest"
	"github.com/mender-agent/mender-agent/tpm"
	"github.com/mender-agent/mender-agent/tpm/tpmtest"
)

// TestSignerContract runs the contract every device-key backend passes,
// for each key type the TPM backend creates. One swtpm and one key serve
// all subtests of a type.
func TestSignerContract(t *testing.T) {
	for _, typ := range []string{tpm.TypeECDSAP256, tpm.TypeRSA2048} {
		t.Run(typ, func(t *testing.T) {
			sw := tpmtest.Start(t)
			opts := options(sw, filepath.Join(t.TempDir(), "key.pem"))
			opts.Type = typ
			k := loadOrCreate(t, opts)
			signertest.Run(t, func(*testing.T) crypto.Signer { return k })
		})
	}
}
