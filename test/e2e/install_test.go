package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/test/testenv"
)

// TestMakeInstall checks that `make install` puts every file where Mender
// consumers and systemd look, with the right modes, and that the installed
// unit, policy and activation files are the dist/ files the Yocto layer
// installs too (one source of truth).
func TestMakeInstall(t *testing.T) {
	mk := testenv.LookPath(t, "make")
	root := repoRoot(t)
	dest := t.TempDir()
	cmd := exec.Command(mk, "-C", root, "install", "DESTDIR="+dest, "prefix=/usr")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))

	tests := []struct {
		path string
		mode os.FileMode
		dist string
	}{
		{path: "usr/bin/mender-agent", mode: 0o755},
		{path: "lib/systemd/system/mender-authd.service", mode: 0o644, dist: "dist/mender-authd.service"},
		{path: "usr/share/dbus-1/system.d/io.mender.AuthenticationManager.conf", mode: 0o644, dist: "dist/io.mender.AuthenticationManager.conf"},
		{path: "usr/share/dbus-1/system-services/io.mender.AuthenticationManager.service", mode: 0o644, dist: "dist/io.mender.AuthenticationManager.service"},
		{path: "usr/share/dbus-1/interfaces/io.mender.Authentication1.xml", mode: 0o644, dist: "dist/io.mender.Authentication1.xml"},
		{path: "usr/share/mender/identity/mender-device-identity", mode: 0o755, dist: "identity/mender-device-identity"},
		{path: "usr/share/doc/mender-agent/examples/mender.conf", mode: 0o600, dist: "dist/mender.conf.example"},
		{path: "usr/share/doc/mender-agent/examples/mender-authd-tpm.conf", mode: 0o644, dist: "dist/mender-authd-tpm.conf"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			p := filepath.Join(dest, tt.path)
			fi, err := os.Stat(p)
			require.NoError(t, err)
			assert.Equal(t, tt.mode, fi.Mode().Perm())
			if tt.dist != "" {
				got, err := os.ReadFile(p)
				require.NoError(t, err)
				want, err := os.ReadFile(filepath.Join(root, tt.dist))
				require.NoError(t, err)
				assert.True(t, bytes.Equal(want, got), "%s differs from %s", tt.path, tt.dist)
			}
		})
	}
	// The installed binary runs and is the one just built.
	out, err = exec.Command(filepath.Join(dest, "usr/bin/mender-agent"), "--version").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "mender-agent ")
}
