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
	"slices"
	"strings"
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

// ForbidDeps fails t for every package that the package in the test's
// directory (import path self) depends on, in a cgo-free build as releases
// are made, and that is one of bad or below one of them. self itself is
// never reported, so a prefix may name the whole module.
func ForbidDeps(t testing.TB, self string, bad ...string) {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, self) {
		t.Fatalf("go list -deps did not list %s itself; call ForbidDeps from that package's tests", self)
	}
	for _, dep := range deps {
		if dep == self {
			continue
		}
		for _, b := range bad {
			if dep == b || strings.HasPrefix(dep, b+"/") {
				t.Errorf("%s depends on %s (forbidden: %s)", self, dep, b)
			}
		}
	}
}
