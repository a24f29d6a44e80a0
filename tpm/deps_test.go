package tpm_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDependencies keeps the shipped packages a cgo-free leaf: no agent or
// test helpers, no simulator (cgo) outside the tpmsimulator tests, and no
// direct use of go-tpm's legacy API (go-tpm's transport package uses it
// internally; that is go-tpm's business).
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	pkgs := []string{"github.com/mender-agent/mender-agent/tpm", "github.com/mender-agent/mender-agent/tpm/tss2"}
	golist := func(args ...string) []string {
		cmd := exec.Command("go", append([]string{"list"}, append(args, pkgs...)...)...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.Output()
		require.NoError(t, err)
		return strings.Fields(string(out))
	}

	deps := golist("-deps")
	require.Contains(t, deps, "github.com/google/go-tpm/tpm2")
	for _, d := range deps {
		for _, bad := range []string{
			"github.com/mender-agent/mender-agent/agent",
			"github.com/mender-agent/mender-agent/test",
			"github.com/mender-agent/mender-agent/tpm/tpmtest",
			"github.com/google/go-tpm-tools",
			"github.com/google/go-tpm/tpm2/transport/simulator",
		} {
			assert.False(t, d == bad || strings.HasPrefix(d, bad+"/"), "tpm must not depend on %s", d)
		}
	}
	for _, imp := range golist("-f", `{{join .Imports " "}}`) {
		assert.False(t, strings.HasPrefix(imp, "github.com/google/go-tpm/legacy"), "tpm must use the tpm2 API, not %s", imp)
	}
}
