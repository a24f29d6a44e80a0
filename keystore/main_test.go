package keystore

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mender-agent/mender-agent/test/testenv"
	"github.com/stretchr/testify/require"
)

// The test binary doubles as a helper process: with helperEnv set it runs
// one helper mode instead of the tests. The crash test kills such helpers,
// and the permission test runs one as an unprivileged user.
const (
	helperEnv     = "KEYSTORE_TEST_HELPER"
	helperArgEnv  = "KEYSTORE_TEST_HELPER_ARG"
	helperLoad    = "load"
	helperCrash   = "crash"
	helperReady   = "ready"
	crashKeyType  = TypeEd25519
	crashSubdirs  = 1000
	crashSavedTag = "saved"
	crashRotTag   = "rotated"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case helperLoad:
		_, err := Load(os.Getenv(helperArgEnv), nil)
		fmt.Print(err)
		os.Exit(0)
	case helperCrash:
		os.Exit(crashHelper(os.Getenv(helperArgEnv), os.Stdout))
	default:
		fmt.Fprintf(os.Stderr, "unknown %s %q\n", helperEnv, os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// crashHelper creates and rotates keys in base/0, base/1, ... reporting
// each completed step on out with one write, until it is killed.
func crashHelper(base string, out io.Writer) int {
	fmt.Fprintln(out, helperReady)
	for i := range crashSubdirs {
		opts := Options{Path: filepath.Join(base, fmt.Sprint(i), DefaultFileName), Generate: true, Type: crashKeyType}
		k, err := LoadOrCreate(opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintf(out, "%s %d %s\n", crashSavedTag, i, k.Fingerprint())
		k, err = Rotate(opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintf(out, "%s %d %s\n", crashRotTag, i, k.Fingerprint())
	}
	return 0
}

// sharedDir returns a fresh directory any user may enter (0755).
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "keystore-test-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	return dir
}

// runHelperAsNobody runs this test binary in helper mode as user nobody and
// returns its stdout. dir must be shared (sharedDir): the binary is copied
// there so the unprivileged user can execute it.
func runHelperAsNobody(t *testing.T, dir, mode, arg string) string {
	t.Helper()
	setpriv := testenv.LookPath(t, "setpriv")
	self, err := os.Executable()
	require.NoError(t, err)
	bin, err := os.ReadFile(self)
	require.NoError(t, err)
	copyPath := filepath.Join(dir, "keystore.test")
	require.NoError(t, os.WriteFile(copyPath, bin, 0o755))
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", copyPath)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperArgEnv+"="+arg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "helper: %s", stderr.String())
	return strings.TrimSpace(string(out))
}
