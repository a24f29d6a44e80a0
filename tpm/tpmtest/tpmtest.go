// Package tpmtest starts a private swtpm for tests: one software TPM 2.0
// per test, listening on a Unix socket in a temporary directory, stopped by
// PID when the test ends. The data socket's control channel is
// "<socket>.ctrl", which is what the tpm2-tss swtpm TCTI expects, so
// tpm2-tools and tpm2-openssl can share the instance via TCTI().
//
// It is test infrastructure: shipped code must not import it. It imports
// the standard library and test/testenv only.
package tpmtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mender-agent/mender-agent/test/testenv"
)

// startTimeout bounds how long Start waits for swtpm's socket to appear.
const startTimeout = 20 * time.Second

// SWTPM is a running swtpm process. Its methods are not safe for concurrent
// use; one test goroutine owns it.
type SWTPM struct {
	// StateDir holds the TPM's persistent state (seeds, NV). Starting a new
	// swtpm on the same StateDir is a TPM reboot; a fresh StateDir is a new
	// (or cleared) TPM.
	StateDir string
	// Socket is the path of the TPM command socket.
	Socket string

	bin    string
	proc   *os.Process
	exited chan error
}

// Start runs a swtpm with a fresh state directory. The test is skipped (or
// failed under `make test`) when swtpm is not installed. The process is
// stopped and its directories removed in t.Cleanup.
func Start(t testing.TB) *SWTPM {
	t.Helper()
	testenv.LookPath(t, "swtpm")
	return StartWithState(t, shortTempDir(t))
}

// StartWithState runs a swtpm on an existing state directory, for example
// one left by an earlier SWTPM that was stopped. swtpm's option syntax
// cannot express paths with commas.
func StartWithState(t testing.TB, stateDir string) *SWTPM {
	t.Helper()
	bin := testenv.LookPath(t, "swtpm")
	if strings.Contains(stateDir, ",") {
		t.Fatalf("swtpm state directory %q contains a comma, which swtpm options cannot express", stateDir)
	}
	// Unix socket paths are limited to 108 bytes; t.TempDir paths built
	// from long test names exceed that, so the sockets get a short dir.
	s := &SWTPM{StateDir: stateDir, Socket: filepath.Join(shortTempDir(t), "tpm.sock"), bin: bin}
	t.Cleanup(s.Stop)
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	return s
}

// shortTempDir returns a new directory with a short, comma-free path,
// removed in t.Cleanup.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "swtpm")
	if err != nil {
		t.Fatalf("swtpm directory: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// Device returns the device string for the tpm package ("unix:" + Socket).
func (s *SWTPM) Device() string { return "unix:" + s.Socket }

// TCTI returns the tpm2-tss TCTI configuration for this instance, for
// TPM2TOOLS_TCTI and TPM2OPENSSL_TCTI.
func (s *SWTPM) TCTI() string { return "swtpm:path=" + s.Socket }

// Restart stops swtpm and starts it again on the same state, like a reboot:
// transient objects are gone, seeds and persistent objects stay.
func (s *SWTPM) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

func (s *SWTPM) start() error {
	_ = os.Remove(s.Socket)
	_ = os.Remove(s.Socket + ".ctrl")
	out, err := os.CreateTemp(filepath.Dir(s.Socket), "log")
	if err != nil {
		return fmt.Errorf("swtpm log: %w", err)
	}
	cmd := exec.Command(s.bin, "socket", "--tpm2",
		"--tpmstate", "dir="+s.StateDir,
		"--server", "type=unixio,path="+s.Socket,
		"--ctrl", "type=unixio,path="+s.Socket+".ctrl",
		"--flags", "not-need-init,startup-clear")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	_ = out.Close() // the child keeps its own descriptor
	if err != nil {
		return fmt.Errorf("start swtpm: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.proc, s.exited = cmd.Process, exited
	deadline := time.Now().Add(startTimeout)
	for {
		// swtpm binds before it listens: wait until a connection is
		// accepted, not just for the socket file.
		if c, err := net.Dial("unix", s.Socket); err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case err := <-exited:
			s.proc = nil
			log, _ := os.ReadFile(out.Name())
			return fmt.Errorf("swtpm exited before listening (%v): %s", err, log)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return errors.New("swtpm did not create its socket within " + startTimeout.String())
		}
	}
}

// Stop terminates swtpm by its PID and waits for it to exit, so its state
// is on disk. It is idempotent.
func (s *SWTPM) Stop() {
	if s.proc == nil {
		return
	}
	p := s.proc
	s.proc = nil
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = p.Kill()
		<-s.exited
	}
}
