package artifact

import (
	"testing"

	"github.com/mender-agent/mender-agent/test/testenv"
)

// TestArtifactDeps keeps the verifier a leaf: no project package, no HTTP,
// D-Bus or TPM code, no cgo, no test helpers in shipped code, and no regexp
// (about 0.12 MB of the armv7 binary for one name rule).
func TestArtifactDeps(t *testing.T) {
	testenv.ForbidDeps(t, "github.com/mender-agent/mender-agent/trust/artifact", "github.com/mender-agent/mender-agent", "github.com/godbus/dbus", "github.com/google/go-tpm",
		"net/http", "runtime/cgo", "testing", "regexp")
}
