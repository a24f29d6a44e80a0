package artifact

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// childEnv makes the test binary act as a one-shot verifier
// ("FILE:KEY"), so benchmarks can measure our wall time and peak RSS in a
// process of its own, like the tools they compare with.
const childEnv = "MENDER_AGENT_ARTIFACT_VERIFY_CHILD"

// runChild verifies and exits when childEnv is set; otherwise it returns.
func runChild() bool {
	spec := os.Getenv(childEnv)
	if spec == "" {
		return false
	}
	file, key, _ := strings.Cut(spec, ":")
	keys, err := LoadKeys(key)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(ExitCode(err))
	}
	f, err := os.Open(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(ExitUsage)
	}
	_, err = Verify(context.Background(), f, Options{Keys: keys})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(ExitCode(err))
	return true
}
