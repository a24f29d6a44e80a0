package keystore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// crashKills is how many times the crash test SIGKILLs a key writer.
const crashKills = 200

// TestCrashSafety SIGKILLs a child process (this test binary in
// helperCrash mode) at random moments while it creates and rotates keys.
// After every kill each key path is absent or holds a complete valid key,
// a key the child reported saved is still there (or, mid-rotation, kept as
// .previous), and loading afterwards never replaces a key on disk.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs hundreds of processes")
	}
	self, err := os.Executable()
	require.NoError(t, err)
	seed := uint64(time.Now().UnixNano())
	t.Logf("random kill delays seeded with %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	base := privateDir(t)

	var stats struct{ dirs, keys, rotated, midCreate, midRotate, temps int }
	for run := range crashKills {
		runDir := filepath.Join(base, fmt.Sprint(run))
		require.NoError(t, os.Mkdir(runDir, 0o700))
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), helperEnv+"="+helperCrash, helperArgEnv+"="+runDir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		out := bufio.NewReader(stdout)
		if first, err := out.ReadString('\n'); err != nil || first != helperReady+"\n" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait() // stderr may be read only after Wait
			t.Fatalf("run %d: helper did not start (%q, %v): %s", run, first, err, stderr.String())
		}

		// Random moment within the first few key writes (each is a few
		// fsyncs); not a timing assertion, only where the kill lands.
		time.Sleep(time.Duration(rng.IntN(15000)) * time.Microsecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		rest, _ := io.ReadAll(out)
		err = cmd.Wait()
		var exitErr *exec.ExitError
		require.True(t, errors.As(err, &exitErr), "run %d: helper must die by SIGKILL, got %v; stderr: %s", run, err, stderr.String())

		saved, rotated := parseCrashReport(t, string(rest))
		entries, err := os.ReadDir(runDir)
		require.NoError(t, err)
		for _, e := range entries {
			stats.dirs++
			dir := filepath.Join(runDir, e.Name())
			path := filepath.Join(dir, DefaultFileName)
			cur := fileFingerprint(t, path)
			prev := fileFingerprint(t, path+PreviousSuffix)
			s, r := saved[e.Name()], rotated[e.Name()]
			switch {
			case r != "":
				stats.rotated++
				assert.Equal(t, r, cur, "run %d dir %s: reported rotated key", run, e.Name())
				assert.Equal(t, s, prev, "run %d dir %s: the replaced key is kept", run, e.Name())
			case s != "":
				require.NotEmpty(t, cur, "run %d dir %s: a key reported saved disappeared", run, e.Name())
				if cur != s {
					stats.midRotate++
					assert.Equal(t, s, prev, "run %d dir %s: a rotated-away key must be kept as .previous", run, e.Name())
				}
				if prev != "" {
					assert.Equal(t, s, prev, "run %d dir %s: .previous holds the saved key", run, e.Name())
				}
			default:
				if cur == "" {
					stats.midCreate++
				}
				if prev != "" {
					assert.NotEmpty(t, cur, "run %d dir %s: .previous without a current key", run, e.Name())
				}
			}
			if temps, _ := filepath.Glob(filepath.Join(dir, ".*.tmp-*")); len(temps) > 0 {
				stats.temps++
			}

			// Loading again never replaces what is on disk, and tidies up
			// temporary files of the interrupted write.
			k, err := LoadOrCreate(Options{Path: path, Generate: true, Type: crashKeyType})
			require.NoError(t, err, "run %d dir %s", run, e.Name())
			if cur != "" {
				stats.keys++
				assert.Equal(t, cur, k.Fingerprint(), "run %d dir %s: a key on disk was replaced", run, e.Name())
			}
			temps, err := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
			require.NoError(t, err)
			assert.Empty(t, temps, "run %d dir %s: temporary files left", run, e.Name())
		}
	}
	t.Logf("%d kills: %d key dirs, %d with a key, %d fully rotated, %d killed mid-rotation, %d killed before the first key, %d with leftover temporary files",
		crashKills, stats.dirs, stats.keys, stats.rotated, stats.midRotate, stats.midCreate, stats.temps)
	assert.Positive(t, stats.keys, "no child got as far as saving a key; the test checked nothing")
}

// parseCrashReport reads the helper's complete "saved|rotated DIR FP" lines.
func parseCrashReport(t *testing.T, out string) (saved, rotated map[string]string) {
	t.Helper()
	saved, rotated = map[string]string{}, map[string]string{}
	for line := range strings.Lines(out) {
		if !strings.HasSuffix(line, "\n") {
			continue // cut by the kill
		}
		f := strings.Fields(line)
		require.Len(t, f, 3, "helper line %q", line)
		switch f[0] {
		case crashSavedTag:
			saved[f[1]] = f[2]
		case crashRotTag:
			rotated[f[1]] = f[2]
		default:
			t.Fatalf("unexpected helper line %q", line)
		}
	}
	return saved, rotated
}

// fileFingerprint returns the fingerprint of the key at path, "" if there
// is no file; any other state (a partial or invalid file) fails the test.
func fileFingerprint(t *testing.T, path string) string {
	t.Helper()
	k, err := Load(path, nil)
	if errors.Is(err, ErrKeyNotFound) {
		return ""
	}
	require.NoError(t, err, "%s must be absent or a complete valid key", path)
	return k.Fingerprint()
}
