package dbus

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDBusStaysThin keeps the adapter free of HTTP, keys and the forwarder:
// the URL it hands out comes from Config.LocalURL.
func TestDBusStaysThin(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/mender-agent/mender-agent/dbus", "go list must list the package itself")
	for _, dep := range deps {
		for _, bad := range []string{
			"net/http", "github.com/google/go-tpm",
			"github.com/mender-agent/mender-agent/forwarder", "github.com/mender-agent/mender-agent/trust",
			"github.com/mender-agent/mender-agent/keystore", "github.com/mender-agent/mender-agent/tpm",
		} {
			assert.False(t, dep == bad || strings.HasPrefix(dep, bad+"/"), "dbus depends on %s", dep)
		}
	}
}
