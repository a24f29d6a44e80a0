package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/tpm/tpmtest"
)

// TestTPMBackendEndToEnd runs the daemon with its key in a (software) TPM:
// the key is created in the TPM on first start, only the wrapped TSS2 key
// file reaches the disk, the device authenticates and serves the token over
// D-Bus, and after a TPM reboot the same key is loaded again.
func TestTPMBackendEndToEnd(t *testing.T) {
	sw := tpmtest.Start(t)
	e := newEnv(t, envOptions{autoAccept: true, conf: map[string]any{
		"Security": map[string]any{"AuthKeyBackend": "tpm", "TPMDevice": sw.Device()},
	}})
	d := e.startDaemon()
	r := e.fetchToken()
	devs := e.server.Devices()
	require.Len(t, devs, 1)
	assert.Equal(t, devs[0].ID, r.Claims["sub"])

	keyPath := filepath.Join(e.dataDir, "mender-agent.pem")
	data, err := os.ReadFile(keyPath)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(data), "-----BEGIN TSS2 PRIVATE KEY-----"), "the key file holds a TPM-wrapped key:\n%s", data)
	assert.NotContains(t, string(data), "BEGIN PRIVATE KEY")
	fi, err := os.Stat(keyPath)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	entries, err := os.ReadDir(e.dataDir)
	require.NoError(t, err)
	for _, en := range entries {
		if en.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(e.dataDir, en.Name()))
		require.NoError(t, err)
		for _, unwrapped := range []string{"BEGIN PRIVATE KEY", "BEGIN RSA PRIVATE KEY", "BEGIN EC PRIVATE KEY", "BEGIN ENCRYPTED PRIVATE KEY"} {
			assert.NotContains(t, string(b), unwrapped, "%s: no unwrapped private key may reach the disk", en.Name())
		}
	}

	out, err := e.run("show-key", "--json")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"backend": "tpm"`)
	assert.Contains(t, out, `"ecdsa-p256"`)
	assert.Equal(t, strings.TrimSpace(devs[0].PubKey), strings.TrimSpace(jsonField(t, out, "public_key")))

	// Reboot the TPM and the daemon, with the token cache removed so the
	// key must sign again: the server sees the same device.
	require.NoError(t, d.stop(t))
	sw.Restart(t)
	require.NoError(t, os.Remove(filepath.Join(e.dataDir, "mender-agent-token.json")))
	e.startDaemon()
	r2 := e.fetchToken()
	assert.Equal(t, r.Claims["sub"], r2.Claims["sub"])
	assert.Len(t, e.server.Devices(), 1, "the TPM key survived the reboot: no new pending device")
}
