package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNoReflectMethod keeps reflect.Value.Method and MethodByName out of
// the binary: a reachable caller makes the linker keep every exported
// method of every type (about 1.4 MB on armv7, see the size budget).
func TestNoReflectMethod(t *testing.T) {
	cmd := exec.Command("go", "build", "-ldflags=-dumpdep", "-o", "/dev/null", ".")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	var callers []string
	for _, line := range strings.Split(string(out), "\n") {
		from, _, ok := strings.Cut(line, " -> ")
		if ok && strings.HasSuffix(from, "<ReflectMethod>") && !strings.HasPrefix(from, "reflect.") {
			callers = append(callers, line)
		}
	}
	assert.Empty(t, callers, "reachable callers of reflect.Value.Method/MethodByName")
}
