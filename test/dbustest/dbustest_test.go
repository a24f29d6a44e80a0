package dbustest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/test/testenv"
)

func busctl(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(testenv.LookPath(t, "busctl"), append([]string{"--address=" + addr}, args...)...).CombinedOutput()
	return string(out), err
}

func TestStartAnswersAndRestarts(t *testing.T) {
	b := Start(t)
	require.True(t, strings.HasPrefix(b.Address, "unix:path="), b.Address)
	out, err := busctl(t, b.Address, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId")
	require.NoError(t, err, out)
	assert.True(t, strings.HasPrefix(out, "s "), out)

	pid := b.PID()
	b.Restart(t)
	assert.NotEqual(t, pid, b.PID())
	out2, err := busctl(t, b.Address, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId")
	require.NoError(t, err, out2)
	assert.NotEqual(t, out, out2, "a restarted bus has a new id")
}

func TestDefaultPolicyDeniesOwnership(t *testing.T) {
	b := Start(t)
	out, err := busctl(t, b.Address, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName", "su", "io.example.Test", "4")
	require.Error(t, err)
	assert.Contains(t, out, "Access denied")
}

func TestPolicyFileGrantsOwnership(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "p.conf")
	require.NoError(t, os.WriteFile(policy, []byte(`<busconfig><policy user="root"><allow own="io.example.Test"/></policy></busconfig>`), 0o644))
	b := Start(t, policy)
	out, err := busctl(t, b.Address, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName", "su", "io.example.Test", "4")
	if os.Geteuid() != 0 {
		require.Error(t, err, "only root is granted the name")
		return
	}
	require.NoError(t, err, out)
	assert.Equal(t, "u 1\n", out, "primary owner")
}

func TestMalformedPolicyFailsLoudly(t *testing.T) {
	testenv.LookPath(t, "dbus-daemon")
	policy := filepath.Join(t.TempDir(), "bad.conf")
	require.NoError(t, os.WriteFile(policy, []byte(`<busconfig><policy user="root"><allow own=`), 0o644))
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() { _ = recover() }()
		Start(ft, policy)
	}()
	assert.True(t, ft.failed, "a malformed policy file must stop the bus from starting")
	assert.Contains(t, ft.msg, "exited before listening")
}

// fatalRecorder turns Fatalf into a recorded failure and a panic, so a test
// can check that Start refuses to run.
type fatalRecorder struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
	panic("fatal")
}
