package trust

import (
	"testing"

	"github.com/mender-agent/mender-agent/test/testenv"
)

// TestTrustIsALeaf keeps trust a leaf the edges can share: it must not pull
// in the agent core, D-Bus, the TPM stack or any other package of this
// module.
func TestTrustIsALeaf(t *testing.T) {
	testenv.ForbidDeps(t, "github.com/mender-agent/mender-agent/trust", "github.com/godbus/dbus", "github.com/google/go-tpm", "github.com/mender-agent/mender-agent")
}
