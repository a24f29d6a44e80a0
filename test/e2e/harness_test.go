package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/test/authserver"
	"github.com/mender-agent/mender-agent/test/dbustest"
	"github.com/mender-agent/mender-agent/test/testenv"
	"github.com/mender-agent/mender-agent/test/testpki"
)

// agentBin is the mender-agent binary built once for all tests.
var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mender-agent-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "mender-agent")
	args := []string{"build", "-o", agentBin, "-ldflags", "-X main.version=e2e -X main.buildTime=2025-01-01T00:00:00Z"}
	cgo := "CGO_ENABLED=0"
	if raceEnabled {
		args, cgo = append(args, "-race"), "CGO_ENABLED=1"
	}
	build := exec.Command("go", append(args, "github.com/mender-agent/mender-agent/cmd/mender-agent")...)
	build.Env = append(os.Environ(), cgo)
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build mender-agent: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// syncBuffer collects a process's output safely.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is one device plus its server and bus.
type env struct {
	t        *testing.T
	dir      string
	dataDir  string
	confPath string
	shareDir string
	bus      *dbustest.Bus
	ca       *testpki.CA
	server   *authserver.Server
	conf     map[string]any
	// outputs of every mender-agent process this env ran
	outputs []*syncBuffer
}

type envOptions struct {
	autoAccept    bool
	tokenLifetime time.Duration
	conf          map[string]any // merged over the defaults
	noServer      bool           // do not start the server yet
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	testenv.LookPath(t, "dbus-daemon")
	dir := t.TempDir()
	e := &env{
		t:        t,
		dir:      dir,
		dataDir:  filepath.Join(dir, "data"),
		confPath: filepath.Join(dir, "etc", "mender.conf"),
		shareDir: filepath.Join(dir, "share", "mender"),
		ca:       testpki.NewCA("e2e CA"),
	}
	e.bus = dbustest.Start(t, filepath.Join(repoRoot(t), "dist", "io.mender.AuthenticationManager.conf"))
	require.NoError(t, os.MkdirAll(filepath.Join(e.shareDir, "identity"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Dir(e.confPath), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(e.shareDir, "identity", "mender-device-identity"),
		[]byte("#!/bin/sh\necho mac=02:00:5e:10:00:01\necho serial=E2E-1\n"), 0o755))
	caPath := testpki.WriteFile(filepath.Join(dir, "server.crt"), e.ca.CertPEM())
	lifetime := o.tokenLifetime
	if lifetime == 0 {
		lifetime = time.Hour
	}
	leaf := e.ca.Issue(testpki.Options{})
	e.server = authserver.New(authserver.Options{
		TLS:           &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}, MinVersion: tls.VersionTLS12},
		AutoAccept:    o.autoAccept,
		TokenLifetime: lifetime,
	})
	if !o.noServer {
		require.NoError(t, e.server.Start("127.0.0.1:0"))
		t.Cleanup(func() { _ = e.server.Close() })
	}
	e.conf = map[string]any{
		"ServerCertificate": caPath,
		"Agent":             map[string]any{"BackoffMinSeconds": 1, "BackoffMaxSeconds": 2},
	}
	if !o.noServer {
		e.conf["ServerURL"] = e.server.URL()
	}
	for k, v := range o.conf {
		e.conf[k] = v
	}
	e.writeConf()
	return e
}

func (e *env) writeConf() {
	data, err := json.MarshalIndent(e.conf, "", "  ")
	require.NoError(e.t, err)
	require.NoError(e.t, os.WriteFile(e.confPath, data, 0o600))
}

func (e *env) environ() []string {
	return append(os.Environ(),
		"DBUS_SYSTEM_BUS_ADDRESS="+e.bus.Address,
		"MENDER_DATA_DIR="+e.shareDir,
		"JOURNAL_STREAM=",
	)
}

func (e *env) globalArgs() []string {
	return []string{"-c", e.confPath, "-d", e.dataDir}
}

// daemon is a running `mender-agent daemon`.
type daemon struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

func (e *env) startDaemon(extra ...string) *daemon {
	e.t.Helper()
	args := append(e.globalArgs(), extra...)
	args = append(args, "daemon")
	cmd := exec.Command(agentBin, args...)
	cmd.Env = e.environ()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	e.outputs = append(e.outputs, out)
	require.NoError(e.t, cmd.Start())
	d := &daemon{cmd: cmd, out: out, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait() }()
	e.t.Cleanup(func() {
		_ = d.stop(e.t)
		if strings.Contains(out.String(), "WARNING: DATA RACE") {
			e.t.Errorf("the race detector found a data race in the daemon")
		}
		if e.t.Failed() {
			e.t.Logf("daemon output:\n%s", out.String())
		}
	})
	return d
}

// stop sends SIGTERM and waits; it reports the exit error.
func (d *daemon) stop(t testing.TB) error {
	select {
	case err := <-d.done:
		d.done <- err
		return err
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err
		return err
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		t.Errorf("daemon did not stop within 30s of SIGTERM")
		return <-d.done
	}
}

// run runs a mender-agent command to completion.
func (e *env) run(args ...string) (string, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, append(e.globalArgs(), args...)...)
	cmd.Env = e.environ()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	e.outputs = append(e.outputs, out)
	err := cmd.Run()
	return out.String(), err
}

// tokenReport mirrors `mender-agent token --json`.
type tokenReport struct {
	ServerURL string         `json:"server_url"`
	Claims    map[string]any `json:"claims"`
	Token     string         `json:"token"`
}

func (e *env) fetchToken(extra ...string) tokenReport {
	e.t.Helper()
	out, err := e.run(append([]string{"token", "--fetch", "--wait", "30s", "--json"}, extra...)...)
	require.NoError(e.t, err, out)
	var r tokenReport
	require.NoError(e.t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &r), out)
	return r
}

// authRequests counts auth requests the server received.
func (e *env) authRequests() int {
	n := 0
	for _, r := range e.server.RequestLog() {
		if r.Path == authserver.PathAuth {
			n++
		}
	}
	return n
}

// allOutput is everything every mender-agent process printed.
func (e *env) allOutput() string {
	var b strings.Builder
	for _, o := range e.outputs {
		b.WriteString(o.String())
	}
	return b.String()
}
