package agent

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAgentHasNoEdgeDeps keeps the core free of transports: the token
// lifecycle must not depend on D-Bus, the TPM or HTTP.
func TestAgentHasNoEdgeDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/mender-agent/mender-agent/agent", "go list must list the package itself")
	for _, dep := range deps {
		for _, bad := range []string{"github.com/godbus/dbus", "github.com/google/go-tpm", "net/http"} {
			assert.False(t, dep == bad || strings.HasPrefix(dep, bad+"/"), "agent depends on %s; the core must stay transport-free", dep)
		}
	}
}
