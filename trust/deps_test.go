package trust

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTrustIsALeaf keeps trust a leaf the edges can share: it must not pull
// in the agent core, D-Bus, the TPM stack or any other package of this
// module.
func TestTrustIsALeaf(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	const self = "github.com/mender-agent/mender-agent/trust"
	require.Contains(t, deps, self, "go list must list the package itself")
	for _, dep := range deps {
		for _, bad := range []string{"github.com/godbus/dbus", "github.com/google/go-tpm", "github.com/mender-agent/mender-agent"} {
			if dep == self {
				continue
			}
			assert.False(t, dep == bad || strings.HasPrefix(dep, bad+"/"), "trust depends on %s; it must stay a leaf", dep)
		}
	}
}
