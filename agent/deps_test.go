package agent

import (
	"testing"

	"github.com/mender-agent/mender-agent/test/testenv"
)

// TestAgentHasNoEdgeDeps keeps the core free of transports: the token
// lifecycle must not depend on D-Bus, the TPM or HTTP.
func TestAgentHasNoEdgeDeps(t *testing.T) {
	testenv.ForbidDeps(t, "github.com/mender-agent/mender-agent/agent", "github.com/godbus/dbus", "github.com/google/go-tpm", "net/http")
}
