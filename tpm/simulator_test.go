//go:build tpmsimulator

package tpm_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/simulator"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/keystore/signertest"
	"github.com/mender-agent/mender-agent/tpm"
)

// The simulator tier runs go-tpm-tools' in-process Microsoft reference TPM
// (cgo). The simulator is a process-wide singleton and every open is a
// manufacture reset, so these tests never run in parallel.

func openSimulator(t *testing.T) transport.TPMCloser {
	t.Helper()
	sim, err := simulator.OpenSimulator()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

func simOptions(sim transport.TPM, path string) tpm.Options {
	return tpm.Options{Transport: sim, Device: "simulator", Path: path, Generate: true}
}

func TestSimulatorCreateLoadSign(t *testing.T) {
	for _, typ := range []string{tpm.TypeECDSAP256, tpm.TypeRSA2048} {
		t.Run(typ, func(t *testing.T) {
			sim := openSimulator(t)
			opts := simOptions(sim, filepath.Join(t.TempDir(), "k.pem"))
			opts.Type = typ
			k := loadOrCreate(t, opts)
			pub := k.Public()
			d := sha256.Sum256([]byte("m"))
			sig, err := k.Sign(nil, d[:], crypto.SHA256)
			require.NoError(t, err)
			verify(t, pub, crypto.SHA256, d[:], sig)
			require.NoError(t, k.Close())

			again := loadOrCreate(t, opts)
			assert.Equal(t, pub, again.Public())
			require.NoError(t, again.Close())
		})
	}
}

func TestSimulatorRSA3072Unsupported(t *testing.T) {
	sim := openSimulator(t)
	path := filepath.Join(t.TempDir(), "k.pem")
	opts := simOptions(sim, path)
	opts.Type = tpm.TypeRSA3072
	_, err := tpm.LoadOrCreate(context.Background(), opts)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not support rsa-3072")
	assert.NoFileExists(t, path)
}

func TestSimulatorManufactureResetIsACleared(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.pem")
	sim, err := simulator.OpenSimulator()
	require.NoError(t, err)
	k, err := tpm.LoadOrCreate(context.Background(), simOptions(sim, path))
	require.NoError(t, err)
	old := k.Public()
	require.NoError(t, k.Close())
	require.NoError(t, sim.Close())

	fresh := openSimulator(t) // new seeds
	opts := simOptions(fresh, path)
	opts.RegenerateOnClear = true
	opts.Now = func() time.Time { return fixedNow }
	k = loadOrCreate(t, opts)
	assert.NotEqual(t, old, k.Public())
	_, err = os.Stat(path + ".tpm-cleared-20261122T183005Z")
	assert.NoError(t, err, "the old key file must be kept aside")
	require.NoError(t, k.Close())
}

func TestSimulatorSignerContract(t *testing.T) {
	sim := openSimulator(t)
	k := loadOrCreate(t, simOptions(sim, filepath.Join(t.TempDir(), "k.pem")))
	signertest.Run(t, func(*testing.T) crypto.Signer { return k })
	require.NoError(t, k.Close())
}
