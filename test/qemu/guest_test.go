//go:build qemu

package qemu

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
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
	"github.com/mender-agent/mender-agent/test/testenv"
	"github.com/mender-agent/mender-agent/test/testpki"
)

// Guest network layout: QEMU's user network with restrict=on, where a
// guestfwd rule maps serverAddr:443 to the host test server on loopback.
const (
	serverName = "server.test"
	serverAddr = "10.0.2.100"
	// bootTimeout bounds one boot, from QEMU start to power-off; a boot
	// takes 5-30 s under TCG on a busy 2-core machine.
	bootTimeout = 4 * time.Minute
	// diskSize is the size of the persistent data disk.
	diskSize = 32 << 20
	// resultMarker starts the one line /init prints with the result.
	resultMarker = "QEMU-TEST-RESULT: "
	// relayEnv, when set in the test binary's environment, turns the binary
	// into the per-connection relay QEMU's guestfwd rule spawns: it copies
	// between its standard input/output (the guest's connection) and the
	// host test server at the address the variable holds.
	relayEnv = "MENDER_AGENT_QEMU_RELAY"
	// relayMaxLife bounds one relayed connection, so no relay outlives a
	// test run even if a side never closes.
	relayMaxLife = 10 * time.Minute
)

// TestMain runs the guestfwd relay when QEMU starts the test binary as one,
// and the tests otherwise.
func TestMain(m *testing.M) {
	if addr := os.Getenv(relayEnv); addr != "" {
		os.Exit(relay(addr))
	}
	os.Exit(m.Run())
}

// relay connects one guest connection (standard input and output, a socket
// QEMU's user network hands over) to the host server at addr. A guestfwd
// rule with a chardev target serves a single connection for the lifetime of
// QEMU; spawning a relay per connection lets the guest reconnect, as the
// agent does after an outage, while QEMU still only reaches loopback.
func relay(addr string) int {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 1
	}
	tcp := conn.(*net.TCPConn)
	_ = tcp.SetDeadline(time.Now().Add(relayMaxLife))
	go func() {
		_, _ = io.Copy(tcp, os.Stdin)
		_ = tcp.CloseWrite()
	}()
	_, _ = io.Copy(os.Stdout, tcp)
	_ = tcp.Close()
	return 0
}

// guestArch describes one guest architecture.
type guestArch struct {
	name    string // Debian architecture, the directory under the prepare dir
	goarch  string
	goarm   string
	qemu    string   // system emulator
	machine []string // machine and CPU options
	console string
	nic     string
	tpm     bool // swtpm attached; the device key lives in the TPM
}

// guestArches lists the architectures the tier boots. TPM-in-guest is
// x86-64 only: Debian's ARM kernels lack CONFIG_TCG_TIS, so QEMU's TIS
// device has no driver there.
func guestArches() []guestArch {
	return []guestArch{
		{
			name: "amd64", goarch: "amd64", qemu: "qemu-system-x86_64",
			machine: []string{"-M", "pc", "-m", "512"}, console: "ttyS0", nic: "e1000", tpm: true,
		},
		{
			name: "arm64", goarch: "arm64", qemu: "qemu-system-aarch64",
			machine: []string{"-M", "virt", "-cpu", "cortex-a57", "-m", "512"}, console: "ttyAMA0", nic: "virtio-net-pci",
		},
		{
			name: "armhf", goarch: "arm", goarm: "7", qemu: "qemu-system-arm",
			machine: []string{"-M", "virt,highmem=off", "-cpu", "cortex-a15", "-m", "512"}, console: "ttyAMA0", nic: "virtio-net-pci",
		},
	}
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// PrepareDirEnv names the directory scripts/qemu-prepare.sh filled; the
// default is build/qemu in the repository.
const PrepareDirEnv = "MENDER_AGENT_QEMU_DIR"

// prepared returns the prepare directory of arch a, running
// scripts/qemu-prepare.sh for it when its ready stamp is missing.
func prepared(t *testing.T, a guestArch) string {
	t.Helper()
	dir := os.Getenv(PrepareDirEnv)
	if dir == "" {
		dir = filepath.Join(repoRoot(), "build", "qemu")
	}
	if _, err := os.Stat(filepath.Join(dir, a.name, "ready")); err != nil {
		testenv.LookPath(t, "apt-get")
		start := time.Now()
		cmd := exec.Command(filepath.Join(repoRoot(), "scripts", "qemu-prepare.sh"), dir, a.name)
		out, err := cmd.CombinedOutput()
		t.Logf("scripts/qemu-prepare.sh %s %s (%s):\n%s", dir, a.name, time.Since(start).Round(time.Second), out)
		require.NoError(t, err, "scripts/qemu-prepare.sh %s %s", dir, a.name)
	}
	return filepath.Join(dir, a.name)
}

// buildAgent cross-compiles the static agent for a.
func buildAgent(t *testing.T, a guestArch) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "mender-agent")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out,
		"-ldflags", "-X main.version=qemu-test",
		"github.com/mender-agent/mender-agent/cmd/mender-agent")
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+a.goarch, "GOARM="+a.goarm)
	start := time.Now()
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build for %s:\n%s", a.name, b)
	t.Logf("built mender-agent for %s in %s", a.name, time.Since(start).Round(100*time.Millisecond))
	return out
}

// guestFiles is what the test puts into a guest besides the prepared
// kernel and userland.
type guestFiles struct {
	agent  string // host path of the cross-compiled agent
	caPEM  []byte
	config []byte
}

// buildInitramfs writes the guest's initramfs (an uncompressed newc cpio:
// the guest spends no time decompressing it under TCG) and returns its path.
func buildInitramfs(t *testing.T, prep string, g guestFiles) string {
	t.Helper()
	sysroot := filepath.Join(prep, "sysroot")
	a := newArchive()
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "var/lib/mender", "sbin", "usr/sbin"} {
		a.dir(d, 0o755)
	}
	a.charDev("dev/console", 0o600, 5, 1)
	a.symlink("var/run", "/run")
	require.NoError(t, a.copyFile("bin/busybox", filepath.Join(sysroot, "bin", "busybox"), 0o755))
	init, err := os.ReadFile(filepath.Join("testdata", "init.sh"))
	require.NoError(t, err)
	a.file("init", 0o755, init)

	// dbus-daemon with its libraries, Debian's system.conf and the shipped
	// policy where `make install` puts it.
	libs, err := sharedClosure(sysroot, "/usr/bin/dbus-daemon")
	require.NoError(t, err)
	for guest, host := range libs {
		require.NoError(t, a.copyFile(guest, host, 0o755))
	}
	require.NoError(t, a.copyFile("usr/share/dbus-1/system.conf", filepath.Join(sysroot, "usr", "share", "dbus-1", "system.conf"), 0o644))
	require.NoError(t, a.copyFile("usr/share/dbus-1/system.d/io.mender.AuthenticationManager.conf",
		filepath.Join(repoRoot(), "dist", "io.mender.AuthenticationManager.conf"), 0o644))
	a.file("etc/machine-id", 0o444, []byte("5f3b5e1b0c6a4f0e9d2c8b7a6f5e4d3c\n"))

	// The agent, its configuration, the server CA and the identity script.
	require.NoError(t, a.copyFile("usr/bin/mender-agent", g.agent, 0o755))
	a.file("etc/mender/mender.conf", 0o600, g.config)
	a.file("etc/mender/server.crt", 0o644, g.caPEM)
	a.file("usr/share/mender/identity/mender-device-identity", 0o755, []byte(
		"#!/bin/sh\necho \"mac=$(cat /sys/class/net/eth0/address)\"\necho \"machine=$(uname -m)\"\n"))

	a.file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"+
		"messagebus:x:100:101::/nonexistent:/bin/false\n"+
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	a.file("etc/group", 0o644, []byte("root:x:0:\nmessagebus:x:101:\nnogroup:x:65534:\n"))
	a.file("etc/hosts", 0o644, []byte("127.0.0.1 localhost\n"+serverAddr+" "+serverName+"\n"))
	a.file("etc/nsswitch.conf", 0o644, []byte("passwd: files\ngroup: files\nhosts: files\n"))

	// Kernel modules in dependency order.
	paths, err := filepath.Glob(filepath.Join(prep, "modules", "*.ko"))
	require.NoError(t, err)
	var mods []kmod
	for _, p := range paths {
		m, err := readModule(p)
		require.NoError(t, err)
		mods = append(mods, m)
	}
	mods, err = loadOrder(mods)
	require.NoError(t, err)
	var order bytes.Buffer
	for _, m := range mods {
		require.NoError(t, a.copyFile("lib/modules/"+m.name+".ko", m.path, 0o644))
		order.WriteString(m.name + "\n")
	}
	a.file("etc/modules.order", 0o644, order.Bytes())

	out := filepath.Join(t.TempDir(), "initramfs.cpio")
	f, err := os.Create(out)
	require.NoError(t, err)
	_, err = a.writeTo(f)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return out
}

// serialLog collects the guest's console, each line stamped with the host
// seconds since boot start.
type serialLog struct {
	mu    sync.Mutex
	start time.Time
	buf   bytes.Buffer
	part  []byte
}

func (s *serialLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.part = append(s.part, p...)
	for {
		i := bytes.IndexByte(s.part, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(s.part[:i]), "\r")
		fmt.Fprintf(&s.buf, "[%7.2f] %s\n", time.Since(s.start).Seconds(), line)
		s.part = s.part[i+1:]
	}
	return len(p), nil
}

func (s *serialLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String() + string(s.part)
}

// bootResult is what one boot printed.
type bootResult struct {
	log     string
	markers []string          // result marker lines
	checks  map[string]string // QT-CHECK name → "ok" or "FAIL ..."
	values  map[string]string // QT-VALUE name → value
	elapsed time.Duration
}

func parseSerial(log string) bootResult {
	r := bootResult{log: log, checks: map[string]string{}, values: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		// Firmware output without a newline (SeaBIOS clears the screen)
		// can precede the guest's first line.
		for _, p := range []string{resultMarker, "QT-CHECK ", "QT-VALUE "} {
			if i := strings.Index(line, p); i >= 0 {
				line = line[i:]
				break
			}
		}
		switch {
		case strings.HasPrefix(line, resultMarker):
			r.markers = append(r.markers, strings.TrimPrefix(line, resultMarker))
		case strings.HasPrefix(line, "QT-CHECK "):
			name, res, _ := strings.Cut(strings.TrimPrefix(line, "QT-CHECK "), ": ")
			r.checks[name] = res
		case strings.HasPrefix(line, "QT-VALUE "):
			k, v, _ := strings.Cut(strings.TrimPrefix(line, "QT-VALUE "), "=")
			r.values[k] = v
		}
	}
	return r
}

// machine is one guest: its kernel, initramfs, persistent disk and, on
// x86-64, its TPM state, booted as many times as a scenario needs.
type machine struct {
	t       *testing.T
	arch    guestArch
	prep    string
	initrd  string
	disk    string
	tpmDir  string
	port    string // host test server port
	relay   string // the relay program guestfwd spawns per connection
	results []bootResult
}

// startSWTPM starts a TPM 2.0 simulator on a Unix socket QEMU connects to.
// Its state lives in m.tpmDir, so the TPM survives reboots of the guest.
// It returns a function that stops it (by PID) once QEMU is gone.
func (m *machine) startSWTPM(ctx context.Context) (sock string, stop func()) {
	t := m.t
	swtpm := testenv.LookPath(t, "swtpm")
	sock = filepath.Join(m.tpmDir, "swtpm.sock")
	_ = os.Remove(sock)
	cmd := exec.Command(swtpm, "socket", "--tpm2",
		"--tpmstate", "dir="+m.tpmDir,
		"--ctrl", "type=unixio,path="+sock,
		"--flags", "not-need-init")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop = func() {
		// swtpm ends by itself when QEMU disconnects; make sure of it.
		select {
		case <-done:
			return
		case <-time.After(5 * time.Second):
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	for {
		if _, err := os.Stat(sock); err == nil {
			return sock, stop
		}
		select {
		case <-done:
			t.Fatalf("swtpm exited before creating %s:\n%s", sock, out.String())
		case <-ctx.Done():
			stop()
			t.Fatalf("swtpm did not create %s: %v", sock, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// boot runs the guest once with QT_BOOT=n, to power-off, and returns what
// it printed. The test fails, with the serial log attached, when QEMU
// fails, times out or the guest reports anything but exactly one PASS.
func (m *machine) boot(n int) bootResult {
	t := m.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	qemu := testenv.LookPath(t, m.arch.qemu)
	tpm := 0
	var tpmArgs []string
	if m.arch.tpm {
		tpm = 1
		sock, stop := m.startSWTPM(ctx)
		defer stop()
		tpmArgs = []string{
			"-chardev", "socket,id=chrtpm,path=" + sock,
			"-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
			"-device", "tpm-tis,tpmdev=tpm0",
		}
	}
	args := []string{"-accel", "tcg"}
	args = append(args, m.arch.machine...)
	args = append(args,
		"-nographic", "-no-reboot",
		"-kernel", filepath.Join(m.prep, "vmlinuz"),
		"-initrd", m.initrd,
		"-append", fmt.Sprintf("console=%s panic=-1 quiet loglevel=3 QT_BOOT=%d QT_TPM=%d", m.arch.console, n, tpm),
		"-netdev", "user,id=n0,ipv6=off,restrict=on,guestfwd=tcp:"+serverAddr+":443-cmd:"+strings.ReplaceAll(m.relay, ",", ",,"),
		"-device", m.arch.nic+",netdev=n0,romfile=",
		"-drive", "file="+m.disk+",format=raw,if=none,id=d0",
		"-device", "virtio-blk-pci,drive=d0",
	)
	args = append(args, tpmArgs...)
	cmd := exec.CommandContext(ctx, qemu, args...)
	cmd.Env = append(os.Environ(), relayEnv+"=127.0.0.1:"+m.port)
	log := &serialLog{start: time.Now()}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Cancel = func() error { return cmd.Process.Kill() }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	r := parseSerial(log.String())
	r.elapsed = time.Since(log.start)
	m.results = append(m.results, r)
	t.Logf("%s boot %d: %s in %s", m.arch.name, n, strings.Join(r.markers, " | "), r.elapsed.Round(100*time.Millisecond))
	if err != nil || len(r.markers) != 1 || r.markers[0] != "PASS" {
		t.Logf("%s boot %d serial log:\n%s", m.arch.name, n, r.log)
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			t.Fatalf("%s boot %d: no power-off within %s", m.arch.name, n, bootTimeout)
		case err != nil:
			t.Fatalf("%s boot %d: %s: %v", m.arch.name, n, m.arch.qemu, err)
		case len(r.markers) != 1:
			t.Fatalf("%s boot %d: want exactly one %q line, got %q", m.arch.name, n, resultMarker, r.markers)
		default:
			t.Fatalf("%s boot %d: %s%s", m.arch.name, n, resultMarker, r.markers[0])
		}
	}
	return r
}

// agentConfig is the guest's /etc/mender/mender.conf.
func agentConfig(t *testing.T, a guestArch) []byte {
	conf := map[string]any{
		"ServerURL":         "https://" + serverName,
		"ServerCertificate": "/etc/mender/server.crt",
		"Agent":             map[string]any{"BackoffMinSeconds": 1, "BackoffMaxSeconds": 2},
	}
	if a.tpm {
		conf["Security"] = map[string]any{"AuthKeyBackend": "tpm", "TPMDevice": "/dev/tpmrm0"}
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	require.NoError(t, err)
	return b
}

// newMachine prepares everything a guest of arch a needs and a test server
// on host loopback for it.
func newMachine(t *testing.T, a guestArch, srv *authserver.Server, ca *testpki.CA) *machine {
	t.Helper()
	testenv.LookPath(t, a.qemu)
	prep := prepared(t, a)
	agent := buildAgent(t, a)
	dir := t.TempDir()
	m := &machine{t: t, arch: a, prep: prep, disk: filepath.Join(dir, "data.img"), tpmDir: filepath.Join(dir, "tpm")}
	require.NoError(t, os.MkdirAll(m.tpmDir, 0o700))
	f, err := os.Create(m.disk)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(diskSize))
	require.NoError(t, f.Close())
	m.initrd = buildInitramfs(t, prep, guestFiles{agent: agent, caPEM: ca.CertPEM(), config: agentConfig(t, a)})
	u := srv.URL()
	m.port = u[strings.LastIndex(u, ":")+1:]
	m.relay, err = os.Executable()
	require.NoError(t, err)
	require.NotContains(t, m.relay, " ", "QEMU splits the guestfwd command at spaces")
	return m
}

// endOutageAfterFailure ends the server's outage as soon as the agent's
// first authentication attempt has been cut off, and reports whether that
// happened before ctx ended.
func endOutageAfterFailure(ctx context.Context, srv *authserver.Server) <-chan bool {
	seen := make(chan bool, 1)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, r := range srv.RequestLog() {
				if r.Path == authserver.PathAuth && r.Status == 0 {
					srv.SetOutage(false)
					seen <- true
					return
				}
			}
			select {
			case <-ctx.Done():
				srv.SetOutage(false)
				seen <- false
				return
			case <-tick.C:
			}
		}
	}()
	return seen
}

func newServer(t *testing.T) (*authserver.Server, *testpki.CA) {
	t.Helper()
	ca := testpki.NewCA("qemu test CA")
	leaf := ca.Issue(testpki.Options{DNSNames: []string{serverName}})
	srv := authserver.New(authserver.Options{
		TLS:           &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}, MinVersion: tls.VersionTLS12},
		AutoAccept:    true,
		TokenLifetime: time.Hour,
	})
	require.NoError(t, srv.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = srv.Close() })
	return srv, ca
}

// copyFile adds the host file src at p with permissions perm.
func (a *archive) copyFile(p, src string, perm fs.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("initramfs %s: %w", p, err)
	}
	a.file(p, perm, data)
	return nil
}

// readModule reads a module's name and dependencies from its .modinfo
// section, for any architecture (what modinfo prints, without kmod).
func readModule(p string) (kmod, error) {
	f, err := elf.Open(p)
	if err != nil {
		return kmod{}, fmt.Errorf("kernel module %s: %w", p, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return kmod{}, fmt.Errorf("kernel module %s: no .modinfo section", p)
	}
	data, err := s.Data()
	if err != nil {
		return kmod{}, fmt.Errorf("kernel module %s: .modinfo: %w", p, err)
	}
	return parseModinfo(p, data)
}
