// Package dbustest starts private dbus-daemon instances for tests. Each bus
// is configured like a distribution's system bus (method calls and name
// ownership denied by default, holes punched only by the policy files the
// test includes), listens on a unix socket in the test's temporary
// directory, and is stopped when the test ends.
//
// It is test infrastructure: shipped code must not import it. It imports the
// standard library and test/testenv only.
package dbustest

import (
	"bufio"
	_ "embed"
	"fmt"
	"html"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mender-agent/mender-agent/test/testenv"
)

// Bus is a running private dbus-daemon. Its methods must be called from the
// test goroutine.
type Bus struct {
	// Address is the D-Bus address clients connect to, for example
	// "unix:path=/tmp/TestX/001/bus".
	Address string

	daemon string
	config string
	socket string
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *lockedWriter
}

// lockedWriter collects the daemon's stderr for failure messages.
type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// systemConfig is the bus configuration template; see its comment.
//
//go:embed system-like.conf
var systemConfig string

// Config returns a system-like bus configuration listening on the Unix
// socket path and including each of policyFiles with <include>, which makes
// dbus-daemon fail loudly on a missing or malformed file (<includedir>
// would skip it silently).
func Config(socket string, policyFiles ...string) string {
	var inc strings.Builder
	for _, p := range policyFiles {
		fmt.Fprintf(&inc, "  <include>%s</include>\n", html.EscapeString(p))
	}
	return strings.NewReplacer("@SOCKET@", html.EscapeString(socket), "@INCLUDES@", inc.String()).Replace(systemConfig)
}

// Start starts a private system-like bus that includes each of policyFiles
// (a missing or malformed file makes dbus-daemon, and so the test, fail).
// The bus is stopped in t.Cleanup. The socket's directory is made
// world-searchable so tests can connect as an unprivileged user.
func Start(t testing.TB, policyFiles ...string) *Bus {
	t.Helper()
	daemon := testenv.LookPath(t, "dbus-daemon")
	dir := t.TempDir()
	// Let an unprivileged caller (setpriv --reuid=65534) reach the socket.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatalf("dbustest: make %s searchable: %v", d, err)
		}
	}
	socket := filepath.Join(dir, "bus")
	abs := make([]string, len(policyFiles))
	for i, p := range policyFiles {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatalf("dbustest: policy file %s: %v", p, err)
		}
		abs[i] = a
	}
	config := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(config, []byte(Config(socket, abs...)), 0o644); err != nil {
		t.Fatalf("dbustest: write %s: %v", config, err)
	}
	b := &Bus{daemon: daemon, config: config, socket: socket}
	b.start(t)
	t.Cleanup(func() { b.stop(t) })
	return b
}

func (b *Bus) start(t testing.TB) {
	t.Helper()
	// A daemon killed with SIGKILL leaves its socket behind.
	if err := os.Remove(b.socket); err != nil && !os.IsNotExist(err) {
		t.Fatalf("dbustest: remove stale socket %s: %v", b.socket, err)
	}
	cmd := exec.Command(b.daemon, "--config-file="+b.config, "--nofork", "--nopidfile", "--nosyslog", "--print-address=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("dbustest: stdout pipe: %v", err)
	}
	b.stderr = &lockedWriter{}
	cmd.Stderr = b.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("dbustest: start %s: %v", b.daemon, err)
	}
	b.cmd = cmd
	b.done = make(chan struct{})
	line := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		s, _ := r.ReadString('\n')
		line <- strings.TrimSpace(s)
		_, _ = io.Copy(io.Discard, r)
	}()
	go func() {
		_ = cmd.Wait()
		close(b.done)
	}()
	select {
	case addr := <-line:
		if addr == "" {
			<-b.done
			t.Fatalf("dbustest: dbus-daemon exited before listening: %s", b.stderr.String())
		}
		// The printed address carries a guid; clients only need the path.
		b.Address = "unix:path=" + b.socket
	case <-time.After(30 * time.Second):
		b.kill()
		t.Fatalf("dbustest: dbus-daemon did not print its address within 30s: %s", b.stderr.String())
	}
}

func (b *Bus) kill() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(b.cmd.Process.Pid, syscall.SIGKILL)
	<-b.done
	b.cmd = nil
}

func (b *Bus) stop(t testing.TB) {
	t.Helper()
	if b.cmd == nil {
		return
	}
	_ = syscall.Kill(b.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-b.done:
		b.cmd = nil
	case <-time.After(10 * time.Second):
		b.kill()
	}
}

// Restart kills the daemon abruptly (every client loses its connection and
// its names) and starts a new one at the same address.
func (b *Bus) Restart(t testing.TB) {
	t.Helper()
	b.kill()
	b.start(t)
}

// PID returns the process ID of the running daemon.
func (b *Bus) PID() int { return b.cmd.Process.Pid }
