package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mender-agent/mender-agent/test/dbustest"
)

// proc is a child process this command started and must stop.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// start runs name with args, its output appended to logPath.
func start(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", logPath, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process (SIGTERM, then SIGKILL after 5 s) and waits.
func (p *proc) stop() {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitFile waits until path exists and is not empty.
func waitFile(ctx context.Context, path string, p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if st, err := os.Stat(path); err == nil && st.Size() > 0 {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited before writing %s: %v", p.name, path, p.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not write %s within %s", p.name, path, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// testServer is the local test server on loopback with a CA of its own.
type testServer struct {
	url, ca string
	p       *proc
}

func startServer(ctx context.Context, bin, dir string) (*testServer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create server directory: %w", err)
	}
	ready := filepath.Join(dir, "url")
	p, err := start("mender-testserver", filepath.Join(dir, "server.log"), nil, bin,
		"-listen", "127.0.0.1:0", "-tls-dir", filepath.Join(dir, "tls"), "-auto-accept", "-ready-file", ready)
	if err != nil {
		return nil, err
	}
	if err := waitFile(ctx, ready, p, 20*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	u, err := os.ReadFile(ready)
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("read server URL: %w", err)
	}
	return &testServer{url: strings.TrimSpace(string(u)), ca: filepath.Join(dir, "tls", "ca.crt"), p: p}, nil
}

// privateBus is a dbus-daemon of the system type that loads the given
// policy files, listening on a socket in its directory.
type privateBus struct {
	address string
	p       *proc
}

func startBus(ctx context.Context, dir string, policies []string) (*privateBus, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create bus directory: %w", err)
	}
	// The same system-like bus the tests and make run use.
	conf := dbustest.Config(filepath.Join(dir, "socket"), policies...)
	confPath := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("write bus configuration: %w", err)
	}
	p, err := start("dbus-daemon", filepath.Join(dir, "bus.log"), nil, "dbus-daemon",
		"--config-file="+confPath, "--nofork", "--nopidfile")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "socket")
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The socket file appears at bind, before listen: wait until a
		// connection is accepted.
		if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
			c.Close()
			break
		}
		if p.exited() || time.Now().After(deadline) {
			p.stop()
			log, _ := os.ReadFile(filepath.Join(dir, "bus.log"))
			return nil, fmt.Errorf("dbus-daemon did not listen on %s: %s", sock, bytes.TrimSpace(log))
		}
		select {
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return &privateBus{address: "unix:path=" + sock, p: p}, nil
}

// memStatus is the memory part of /proc/PID/status, in KiB.
type memStatus struct {
	rss, hwm, anon, file float64
}

// procStatus reads VmRSS, VmHWM, RssAnon and RssFile (KiB) from
// /proc/PID/status.
func procStatus(pid int) (m memStatus, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			m.rss = v
		case "VmHWM:":
			m.hwm = v
		case "RssAnon:":
			m.anon = v
		case "RssFile:":
			m.file = v
		}
	}
	return m, nil
}

// cpuTime reads the process's CPU time two ways: utime+stime from
// /proc/PID/stat (clock ticks, 10 ms resolution) and the sum of every
// thread's run time from /proc/PID/task/*/schedstat (nanoseconds).
func cpuTime(pid int) (ticks time.Duration, sched time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse stat of pid %d: no ')'", pid)
	}
	f := strings.Fields(s[i+1:])
	// Fields after the command: state is f[0] (field 3), utime field 14,
	// stime field 15.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("parse stat of pid %d: %d fields", pid, len(f))
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	ticks = time.Duration(ut+st) * time.Second / clkTck
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			sched += time.Duration(n)
		}
	}
	return ticks, sched, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
