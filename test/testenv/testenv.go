// Package testenv lets tests that drive real system tools (dbus-daemon,
// swtpm, openssl, mender-artifact, qemu) find them, and decides what happens
// when one is missing: a plain `go test` skips with the reason, while
// `make test` (which installs every tool first and sets
// MENDER_AGENT_REQUIRE_TOOLS=1) fails, so CI can never pass by skipping.
//
// It is test infrastructure: shipped code must not import it. It imports the
// standard library only.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// RequireEnv is the environment variable that turns a missing tool from a
// skip into a failure.
const RequireEnv = "MENDER_AGENT_REQUIRE_TOOLS"

// Strict reports whether missing tools must fail tests.
func Strict() bool { return os.Getenv(RequireEnv) == "1" }

// LookPath returns the path of the named tool. When the tool is missing it
// skips the test, or fails it under `make test`, naming the tool and the
// command that installs it.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := name + " not found; run scripts/install-deps.sh all (make test does)"
	if Strict() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Unavailable skips the test, or fails it under `make test`, for a
// precondition other than a missing tool (for example no cgo).
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if Strict() {
		t.Fatal(reason)
	}
	t.Skip(reason)
}
