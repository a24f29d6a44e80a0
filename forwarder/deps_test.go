package forwarder

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestForwarderHasNoBusOrKeyDeps keeps the forwarder an HTTP component: the
// transport to the server is injected and D-Bus is another edge's job.
func TestForwarderHasNoBusOrKeyDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/mender-agent/mender-agent/forwarder", "go list must list the package itself")
	for _, dep := range deps {
		for _, bad := range []string{
			"github.com/godbus/dbus", "github.com/google/go-tpm",
			"github.com/mender-agent/mender-agent/dbus", "github.com/mender-agent/mender-agent/keystore",
			"github.com/mender-agent/mender-agent/tpm", "github.com/mender-agent/mender-agent/trust",
		} {
			assert.False(t, dep == bad || strings.HasPrefix(dep, bad+"/"), "forwarder depends on %s", dep)
		}
	}
}
