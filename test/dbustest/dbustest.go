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

// systemConfig mirrors the default policy of Debian's system.conf: every
// user may connect and talk to the bus driver, signals and replies flow, but
// owning names and calling methods need a hole punched by an included policy
// file.
const systemConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=%s</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
%s</busconfig>
`

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
	var includes strings.Builder
	for _, p := range policyFiles {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatalf("dbustest: policy file %s: %v", p, err)
		}
		fmt.Fprintf(&includes, "  <include>%s</include>\n", html.EscapeString(abs))
	}
	config := filepath.Join(dir, "bus.conf")
	body := fmt.Sprintf(systemConfig, html.EscapeString(socket), includes.String())
	if err := os.WriteFile(config, []byte(body), 0o644); err != nil {
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
