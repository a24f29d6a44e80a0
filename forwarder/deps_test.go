package forwarder

import (
	"testing"

	"github.com/mender-agent/mender-agent/test/testenv"
)

// TestForwarderHasNoBusOrKeyDeps keeps the forwarder an HTTP component: the
// transport to the server is injected and D-Bus is another edge's job.
func TestForwarderHasNoBusOrKeyDeps(t *testing.T) {
	testenv.ForbidDeps(t, "github.com/mender-agent/mender-agent/forwarder", "github.com/godbus/dbus", "github.com/google/go-tpm",
		"github.com/mender-agent/mender-agent/dbus", "github.com/mender-agent/mender-agent/keystore", "github.com/mender-agent/mender-agent/tpm", "github.com/mender-agent/mender-agent/trust")
}
