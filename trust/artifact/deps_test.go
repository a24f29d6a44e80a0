package artifact

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestArtifactDeps keeps the verifier a leaf: no project package, no HTTP,
// D-Bus or TPM code, no cgo, no test helpers in shipped code, and no regexp
// (about 0.12 MB of the armv7 binary for one name rule).
func TestArtifactDeps(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as release builds are made
	out, err := cmd.Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/mender-agent/mender-agent/trust/artifact", "go list must list the package itself")
	for _, dep := range deps {
		if dep == "github.com/mender-agent/mender-agent/trust/artifact" {
			continue
		}
		for _, bad := range []string{"github.com/mender-agent/mender-agent", "github.com/godbus/dbus", "github.com/google/go-tpm", "net/http", "runtime/cgo", "testing", "regexp"} {
			assert.False(t, dep == bad || strings.HasPrefix(dep, bad+"/"), "trust/artifact depends on %s", dep)
		}
	}
}
