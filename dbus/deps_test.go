package dbus

import (
	"testing"

	"github.com/mender-agent/mender-agent/test/testenv"
)

// TestDBusStaysThin keeps the adapter free of HTTP, keys and the forwarder:
// the URL it hands out comes from Config.LocalURL.
func TestDBusStaysThin(t *testing.T) {
	testenv.ForbidDeps(t, "github.com/mender-agent/mender-agent/dbus", "net/http", "github.com/google/go-tpm",
		"github.com/mender-agent/mender-agent/forwarder", "github.com/mender-agent/mender-agent/trust", "github.com/mender-agent/mender-agent/keystore", "github.com/mender-agent/mender-agent/tpm")
}
