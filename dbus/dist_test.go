package dbus

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/test/testenv"
)

// iniValues reads key=value lines of one [section] of a systemd-style file;
// repeated keys keep every value.
func iniValues(t *testing.T, file, section string) map[string][]string {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	values := map[string][]string{}
	in := false
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			in = line == "["+section+"]"
		case in:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "%s: line %q is not key=value", file, line)
			values[k] = append(values[k], v)
		}
	}
	require.NoError(t, s.Err())
	return values
}

// TestShippedFilesAgree checks that the activation file, the systemd unit
// and the package name one service.
func TestShippedFilesAgree(t *testing.T) {
	activation := iniValues(t, "../dist/io.mender.AuthenticationManager.service", "D-BUS Service")
	assert.Equal(t, []string{BusName}, activation["Name"])
	assert.Equal(t, []string{"mender-authd.service"}, activation["SystemdService"])
	assert.Equal(t, []string{"root"}, activation["User"])

	unit := iniValues(t, "../dist/mender-authd.service", "Service")
	assert.Equal(t, []string{"dbus"}, unit["Type"])
	assert.Equal(t, []string{BusName}, unit["BusName"])
	assert.Equal(t, []string{"/usr/bin/mender-agent daemon"}, unit["ExecStart"])
	assert.Equal(t, []string{"always"}, unit["Restart"])
	assert.Equal(t, []string{"yes"}, unit["NoNewPrivileges"])
	assert.Equal(t, []string{"strict"}, unit["ProtectSystem"])
	assert.Equal(t, []string{"/var/lib/mender -/data/mender"}, unit["ReadWritePaths"])
	assert.Equal(t, []string{""}, unit["CapabilityBoundingSet"])

	policy, err := os.ReadFile("../dist/io.mender.AuthenticationManager.conf")
	require.NoError(t, err)
	assert.Contains(t, string(policy), `<allow own="`+BusName+`"/>`)
}

// TestUnitVerifies runs systemd-analyze on the unit, with ExecStart pointed
// at a binary that exists here.
func TestUnitVerifies(t *testing.T) {
	analyze := testenv.LookPath(t, "systemd-analyze")
	data, err := os.ReadFile("../dist/mender-authd.service")
	require.NoError(t, err)
	unit := filepath.Join(t.TempDir(), "mender-authd.service")
	require.NoError(t, os.WriteFile(unit, []byte(strings.ReplaceAll(string(data), "/usr/bin/mender-agent", "/bin/true")), 0o644))
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify has no complaints")

	out, err = exec.Command(analyze, "security", "--offline=yes", "--threshold=30", unit).CombinedOutput()
	require.NoError(t, err, "exposure above 3.0:\n%s", out)
}
