package main

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/mender-agent/mender-agent/dbus"
)

type options struct {
	root, out, goBench   string
	mender, menderRoot   string
	overlay, overlayNote string
	runs, calls          int
	idle                 time.Duration
	since                int64
	duringIdle           string
	artifactSize         string
}

type bench struct {
	o      options
	log    io.Writer
	agent  string
	server *testServer
	work   string
	idDir  string // MENDER_DATA_DIR for our agent: holds identity/mender-device-identity
	// menderOK is empty when the Debian client can run here, else why not.
	menderWhy string
	// unitEnv holds the Environment= assignments of the shipped systemd
	// unit, which our daemon runs with.
	unitEnv []string
	rep     report
	summary []string
	seq     atomic.Int64
}

func newBench(o options, log io.Writer) (*bench, error) {
	root, err := filepath.Abs(o.root)
	if err != nil {
		return nil, fmt.Errorf("resolve -root %q: %w", o.root, err)
	}
	o.root = root
	if !filepath.IsAbs(o.out) {
		o.out = filepath.Join(root, o.out)
	}
	b := &bench{o: o, log: log, agent: filepath.Join(root, "bin", "mender-agent"), work: filepath.Join(o.out, "work")}
	unit := filepath.Join(root, "dist", "mender-authd.service")
	data, err := os.ReadFile(unit)
	if err != nil {
		return nil, fmt.Errorf("read the daemon's unit: %w", err)
	}
	if b.unitEnv, err = unitEnvironment(string(data)); err != nil {
		return nil, fmt.Errorf("%s: %w", unit, err)
	}
	return b, nil
}

// unitEnvironment returns the assignments of a systemd unit's
// Environment= lines, in order: whitespace-separated NAME=value words, a
// word in double quotes kept whole.
func unitEnvironment(unit string) ([]string, error) {
	var env []string
	for i, line := range strings.Split(unit, "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "Environment=")
		if !ok {
			continue
		}
		for v = strings.TrimSpace(v); v != ""; v = strings.TrimSpace(v) {
			var word string
			if rest, quoted := strings.CutPrefix(v, `"`); quoted {
				end := strings.IndexByte(rest, '"')
				if end < 0 {
					return nil, fmt.Errorf("line %d: unterminated quote in %q", i+1, line)
				}
				word, v = rest[:end], rest[end+1:]
			} else if end := strings.IndexAny(v, " \t"); end >= 0 {
				word, v = v[:end], v[end:]
			} else {
				word, v = v, ""
			}
			if name, _, ok := strings.Cut(word, "="); !ok || name == "" {
				return nil, fmt.Errorf("line %d: %q is not NAME=value", i+1, word)
			}
			env = append(env, word)
		}
	}
	return env, nil
}

func (b *bench) close() {
	if b.server != nil {
		b.server.p.stop()
	}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "bench: "+format+"\n", args...)
}

func (b *bench) run(ctx context.Context) error {
	if err := os.RemoveAll(b.work); err != nil {
		return fmt.Errorf("clean %s: %w", b.work, err)
	}
	if err := os.MkdirAll(b.work, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", b.work, err)
	}
	b.rep.Generated = time.Now().UTC().Format(time.RFC3339)
	b.rep.Machine = machine()
	load0 := loadAvg()
	if err := b.identity(); err != nil {
		return err
	}
	srv, err := startServer(ctx, filepath.Join(b.o.root, "bin", "mender-testserver"), filepath.Join(b.work, "server"))
	if err != nil {
		return err
	}
	b.server = srv

	b.sizes()
	b.coldStart(ctx)
	b.daemons(ctx)
	b.goFigures()
	b.diagnose()

	b.rep.Machine += fmt.Sprintf("; load average %s at the start of the measurements, %s at the end (other work on the machine slows every figure alike, ours and the references)", load0, loadAvg())
	if b.o.since > 0 {
		b.rep.Elapsed = time.Since(time.Unix(b.o.since, 0)).Round(time.Second).String()
	}
	md := b.rep.markdown(b.summary)
	if err := os.WriteFile(filepath.Join(b.o.out, "report.md"), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write report.md: %w", err)
	}
	js, err := b.rep.json()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.o.out, "report.json"), js, 0o644); err != nil {
		return fmt.Errorf("write report.json: %w", err)
	}
	b.logf("report written to %s", filepath.Join(b.o.out, "report.md"))
	return nil
}

func machine() string {
	cpu := ""
	if c, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(c), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s/%s, %s", runtime.NumCPU(), cpu, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// loadAvg returns the 1-minute load average from /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

// identity sets up the device identity script both clients run. It prints
// a MAC taken from MENDER_BENCH_MAC so that every run is a new device.
func (b *bench) identity() error {
	script := "#!/bin/sh\necho \"mac=${MENDER_BENCH_MAC:-02:00:5e:10:00:01}\"\necho \"bench=mender-bench\"\n"
	if b.o.overlay != "" {
		// bench.sh overlaid this directory on /usr/share; check that the
		// Debian client will see the script where it looks.
		got, err := os.ReadFile("/usr/share/mender/identity/mender-device-identity")
		if err == nil && strings.Contains(string(got), "mender-bench") {
			b.idDir = filepath.Join(b.o.overlay, "mender")
		} else {
			b.menderWhy = "the /usr/share overlay is not in effect (the Debian client reads its identity script only from /usr/share/mender/identity)"
		}
	} else {
		b.menderWhy = b.o.overlayNote
		if b.menderWhy == "" {
			b.menderWhy = "no -identity-overlay: the Debian client reads its identity script only from /usr/share/mender/identity"
		}
	}
	if b.o.mender == "" {
		b.menderWhy = "the Debian mender-client package could not be downloaded (see bench.sh output)"
	}
	if b.idDir == "" {
		b.idDir = filepath.Join(b.work, "share", "mender")
		if err := os.MkdirAll(filepath.Join(b.idDir, "identity"), 0o755); err != nil {
			return fmt.Errorf("create identity directory: %w", err)
		}
		if err := os.WriteFile(filepath.Join(b.idDir, "identity", "mender-device-identity"), []byte(script), 0o755); err != nil {
			return fmt.Errorf("write identity script: %w", err)
		}
	}
	return nil
}

// device prepares a new device: an empty data directory, a configuration
// and a unique identity.
type device struct {
	dir, data, conf string
	env             []string
}

func (b *bench) newDevice(kind, keyType string, menderClient bool) (*device, error) {
	n := b.seq.Add(1)
	d := &device{dir: filepath.Join(b.work, fmt.Sprintf("%s-%03d", kind, n))}
	d.data = filepath.Join(d.dir, "data")
	d.conf = filepath.Join(d.dir, "mender.conf")
	if err := os.MkdirAll(d.data, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	conf := map[string]any{
		"ServerURL":         b.server.url,
		"ServerCertificate": b.server.ca,
	}
	if menderClient {
		// Production-like poll intervals: without them 3.4.0 polls in a
		// tight loop.
		conf["UpdatePollIntervalSeconds"] = 1800
		conf["InventoryPollIntervalSeconds"] = 28800
		conf["RetryPollIntervalSeconds"] = 300
		if err := os.WriteFile(filepath.Join(d.data, "device_type"), []byte("device_type=bench\n"), 0o644); err != nil {
			return nil, fmt.Errorf("write device_type: %w", err)
		}
	} else if keyType != "" {
		conf["Security"] = map[string]any{"AuthKeyType": keyType}
	}
	if err := writeJSON(d.conf, conf); err != nil {
		return nil, fmt.Errorf("write %s: %w", d.conf, err)
	}
	d.env = []string{
		fmt.Sprintf("MENDER_BENCH_MAC=02:00:5e:%02x:%02x:%02x", (n>>16)&0xff, (n>>8)&0xff, n&0xff),
		"MENDER_DATA_DIR=" + b.idDir,
	}
	return d, nil
}

// ---- binary size ----

func (b *bench) sizes() {
	const sec = "Binary size (stripped, static)"
	mib := func(n int64) *float64 { return val(float64(n) / (1 << 20)) }
	var ref *float64
	refNote := ""
	if b.o.mender != "" {
		total, libs, err := dynSize(b.o.mender)
		if err != nil {
			refNote = err.Error()
		} else {
			ref = mib(total)
			refNote = "mender " + libs
		}
	}
	targets, _ := filepath.Glob(filepath.Join(b.o.root, "bin", "linux-*", "mender-agent"))
	for _, t := range targets {
		st, err := os.Stat(t)
		if err != nil {
			continue
		}
		name := filepath.Base(filepath.Dir(t))
		f := figure{Section: sec, Name: name, Unit: "MiB", Ours: mib(st.Size()), Note: checkStatic(t)}
		var bud *budget
		if name == "linux-armv7" {
			bud = &budget{text: "<= 9 MiB", max: 9}
		}
		if name == "linux-amd64" && ref != nil {
			f.RefName, f.Reference = "Debian mender 3.4.0 amd64 + shared libraries", ref
			f.Note = strings.TrimSpace(f.Note + " " + refNote)
		}
		b.rep.add(f, bud)
	}
	if len(targets) == 0 {
		b.rep.note("no cross binaries under bin/linux-*: run `make cross` first")
	}
	if b.o.mender != "" {
		if st, err := os.Stat(b.o.mender); err == nil {
			b.rep.note("The Debian `mender` 3.4.0 binary alone is %.2f MiB (already stripped); the total counts every shared library `ldd` resolves for it (glib, gio, OpenSSL 3, liblzma, libc, ...). The package is built for amd64 here, so only linux-amd64 has a reference; an armhf device pays about the same for the libraries.", float64(st.Size())/(1<<20))
		}
	}
}

// dynSize sums a dynamically linked binary and every shared library ldd
// resolves for it (symlinks followed).
func dynSize(bin string) (int64, string, error) {
	st, err := os.Stat(bin)
	if err != nil {
		return 0, "", fmt.Errorf("stat %s: %w", bin, err)
	}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return 0, "", fmt.Errorf("ldd %s: %w", bin, err)
	}
	total := st.Size()
	var libs []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		path := ""
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			path = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			path = f[0]
		}
		if path == "" {
			continue
		}
		ls, err := os.Stat(path)
		if err != nil {
			continue
		}
		total += ls.Size()
		libs = append(libs, fmt.Sprintf("%s %.2f", filepath.Base(path), float64(ls.Size())/(1<<20)))
	}
	return total, fmt.Sprintf("%.2f MiB + %d libraries (MiB: %s)", float64(st.Size())/(1<<20), len(libs), strings.Join(libs, ", ")), nil
}

// checkStatic says whether an ELF file is static and stripped, in words
// for the report (empty when both).
func checkStatic(path string) string {
	f, err := elf.Open(path)
	if err != nil {
		return "not ELF: " + err.Error()
	}
	defer f.Close()
	var w []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			w = append(w, "DYNAMIC")
		}
	}
	if f.Section(".symtab") != nil {
		w = append(w, "NOT STRIPPED")
	}
	if len(w) == 0 {
		return "static, stripped"
	}
	return strings.Join(w, ", ")
}

// ---- cold start ----

var keyTypes = []string{"ed25519", "ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096"}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (b *bench) runsFor(typ string) int {
	if typ == "rsa-4096" {
		return max(1, min(b.o.runs, 3))
	}
	return b.o.runs
}

// bootstrapOnce runs `bootstrap` of either client on a new device and
// returns its wall time.
func (b *bench) bootstrapOnce(ctx context.Context, keyType string, menderClient bool) (time.Duration, error) {
	kind := "agent-bootstrap"
	if menderClient {
		kind = "mender-bootstrap"
	}
	d, err := b.newDevice(kind, keyType, menderClient)
	if err != nil {
		return 0, err
	}
	var cmd *exec.Cmd
	if menderClient {
		cmd = exec.CommandContext(ctx, b.o.mender, "-c", d.conf, "-d", d.data, "--no-syslog", "bootstrap")
	} else {
		cmd = exec.CommandContext(ctx, b.agent, "-c", d.conf, "-d", d.data, "bootstrap")
	}
	cmd.Env = append(os.Environ(), d.env...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	_ = os.WriteFile(filepath.Join(d.dir, "bootstrap.log"), []byte(out.String()), 0o644)
	if err != nil {
		return 0, fmt.Errorf("%s bootstrap: %w (log %s)", kind, err, filepath.Join(d.dir, "bootstrap.log"))
	}
	if menderClient && !strings.Contains(out.String(), "successfully received new authorization data") {
		return 0, fmt.Errorf("mender bootstrap exited 0 without a token (log %s)", filepath.Join(d.dir, "bootstrap.log"))
	}
	return took, nil
}

func (b *bench) coldStart(ctx context.Context) {
	const sec = "Cold start to first token (empty data directory, local test server on loopback)"
	var menderRef *float64
	menderNote := ""
	if b.menderWhy == "" {
		var ds []time.Duration
		for range b.o.runs {
			d, err := b.bootstrapOnce(ctx, "", true)
			if err != nil {
				menderNote = err.Error()
				break
			}
			ds = append(ds, d)
		}
		if len(ds) > 0 {
			menderRef = val(ms(median(ds)))
			menderNote = fmt.Sprintf("mender: median of %d, runs %s", len(ds), fmtDurations(ds))
		}
		b.logf("cold start: mender bootstrap %s", fmtDurations(ds))
	} else {
		menderNote = "reference not run: " + b.menderWhy
	}
	for _, typ := range keyTypes {
		var ds []time.Duration
		var note string
		for range b.runsFor(typ) {
			d, err := b.bootstrapOnce(ctx, typ, false)
			if err != nil {
				note = err.Error()
				break
			}
			ds = append(ds, d)
		}
		b.logf("cold start: mender-agent bootstrap %s %s", typ, fmtDurations(ds))
		f := figure{Section: sec, Name: "`bootstrap` " + typ, Unit: "ms"}
		if len(ds) > 0 {
			f.Ours = val(ms(median(ds)))
			note = fmt.Sprintf("median of %d, runs %s", len(ds), fmtDurations(ds))
		}
		f.Note = note
		if typ == "rsa-3072" {
			f.RefName, f.Reference = "`mender bootstrap` (RSA-3072)", menderRef
			f.Note += "; " + menderNote
		} else if menderRef != nil {
			f.RefName, f.Reference = "`mender bootstrap` (RSA-3072)", menderRef
		}
		var bud *budget
		if typ == "ed25519" {
			bud = &budget{text: "<= 100 ms", max: 100}
		}
		b.rep.add(f, bud)
	}
	// Daemon start to a token at a D-Bus consumer, our daemon per key
	// type: what mender-update waits for after boot.
	bus, err := startBus(ctx, filepath.Join(b.work, "bus-cold"), []string{filepath.Join(b.o.root, "dist", "io.mender.AuthenticationManager.conf")})
	if err != nil {
		b.rep.note("daemon cold start not measured: %v", err)
		return
	}
	defer bus.p.stop()
	conn, err := dbus.Dial(bus.address)
	if err != nil {
		b.rep.note("daemon cold start not measured: %v", err)
		return
	}
	defer conn.Close()
	for _, typ := range []string{"ed25519", "ecdsa-p256", "rsa-3072"} {
		var ds []time.Duration
		note := ""
		for range b.o.runs {
			dm, err := b.startDaemon(ctx, bus, typ, false)
			if err != nil {
				note = err.Error()
				break
			}
			d, err := dm.waitToken(ctx, conn)
			dm.p.stop()
			if err != nil {
				note = err.Error()
				break
			}
			ds = append(ds, d)
		}
		b.logf("cold start: mender-agent daemon to D-Bus token %s %s", typ, fmtDurations(ds))
		f := figure{Section: sec, Name: "`daemon` start to token at a D-Bus consumer, " + typ, Unit: "ms", Note: note}
		if len(ds) > 0 {
			f.Ours = val(ms(median(ds)))
			f.Note = fmt.Sprintf("median of %d, runs %s", len(ds), fmtDurations(ds))
		}
		b.rep.add(f, nil)
	}
}

func fmtDurations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = fmt.Sprintf("%.0f", ms(d))
	}
	return strings.Join(s, ", ") + " ms"
}

// ---- daemons: memory, D-Bus calls, idle CPU ----

type daemon struct {
	p       *proc
	started time.Time
	dev     *device
}

func (b *bench) startDaemon(ctx context.Context, bus *privateBus, keyType string, menderClient bool) (*daemon, error) {
	kind := "agent-daemon"
	if menderClient {
		kind = "mender-daemon"
	}
	d, err := b.newDevice(kind, keyType, menderClient)
	if err != nil {
		return nil, err
	}
	env := append(d.env, "DBUS_SYSTEM_BUS_ADDRESS="+bus.address)
	if !menderClient {
		// Our daemon runs as the shipped unit runs it on a device.
		env = append(env, b.unitEnv...)
	}
	var p *proc
	started := time.Now()
	if menderClient {
		p, err = start(kind, filepath.Join(d.dir, "daemon.log"), env, b.o.mender, "-c", d.conf, "-d", d.data, "--no-syslog", "daemon")
	} else {
		p, err = start(kind, filepath.Join(d.dir, "daemon.log"), env, b.agent, "-c", d.conf, "-d", d.data, "daemon")
	}
	if err != nil {
		return nil, err
	}
	return &daemon{p: p, started: started, dev: d}, nil
}

// waitToken polls GetJwtToken every 2 ms until the daemon serves a token
// and returns the time since the daemon was started.
func (dm *daemon) waitToken(ctx context.Context, conn *godbus.Conn) (time.Duration, error) {
	deadline := dm.started.Add(60 * time.Second)
	for {
		tok, _, err := dbus.GetToken(ctx, conn)
		if err == nil && tok != "" {
			return time.Since(dm.started), nil
		}
		if err != nil && !errors.Is(err, dbus.ErrNoAgent) {
			return 0, fmt.Errorf("GetJwtToken from %s: %w", dm.p.name, err)
		}
		if dm.p.exited() {
			return 0, fmt.Errorf("%s exited before serving a token: %v (log %s)", dm.p.name, dm.p.err, filepath.Join(dm.dev.dir, "daemon.log"))
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s served no token within 60 s (log %s)", dm.p.name, filepath.Join(dm.dev.dir, "daemon.log"))
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// daemonFigures is what one daemon measured.
type daemonFigures struct {
	coldStart         time.Duration
	auth, calls       memStatus
	callsPerSec       float64
	p50, p99          time.Duration
	idleTicks, idleNs time.Duration
	idleWindow        time.Duration
	err               error
}

// measureDaemon starts a daemon on its own bus, waits for its token,
// reads its memory, makes the calls and reads again. The returned
// function waits for the idle window (started right after the calls),
// reads the CPU time and stops everything.
func (b *bench) measureDaemon(ctx context.Context, menderClient bool) (*daemonFigures, func()) {
	res := &daemonFigures{}
	name := "bus-agent"
	policies := []string{filepath.Join(b.o.root, "dist", "io.mender.AuthenticationManager.conf")}
	if menderClient {
		name = "bus-mender"
		policies, _ = filepath.Glob(filepath.Join(b.o.menderRoot, "usr", "share", "dbus-1", "system.d", "*.conf"))
	}
	var cleanup []func()
	done := func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	fail := func(err error) (*daemonFigures, func()) {
		res.err = err
		return res, done
	}
	bus, err := startBus(ctx, filepath.Join(b.work, name), policies)
	if err != nil {
		return fail(err)
	}
	cleanup = append(cleanup, bus.p.stop)
	conn, err := dbus.Dial(bus.address)
	if err != nil {
		return fail(err)
	}
	cleanup = append(cleanup, func() { conn.Close() })
	dm, err := b.startDaemon(ctx, bus, "", menderClient)
	if err != nil {
		return fail(err)
	}
	cleanup = append(cleanup, dm.p.stop)
	if res.coldStart, err = dm.waitToken(ctx, conn); err != nil {
		return fail(err)
	}
	// Let the start-up work (inventory, first update check) settle.
	time.Sleep(2 * time.Second)
	pid := dm.p.pid()
	if res.auth, err = procStatus(pid); err != nil {
		return fail(err)
	}
	lat := make([]time.Duration, 0, b.o.calls)
	start := time.Now()
	for range b.o.calls {
		t := time.Now()
		tok, _, err := dbus.GetToken(ctx, conn)
		lat = append(lat, time.Since(t))
		if err != nil || tok == "" {
			return fail(fmt.Errorf("GetJwtToken call %d to %s: token %t, %v", len(lat), dm.p.name, tok != "", err))
		}
	}
	res.callsPerSec = float64(b.o.calls) / time.Since(start).Seconds()
	slices.Sort(lat)
	res.p50, res.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	if res.calls, err = procStatus(pid); err != nil {
		return fail(err)
	}
	t0, s0, err := cpuTime(pid)
	if err != nil {
		return fail(err)
	}
	idleStart := time.Now()
	return res, func() {
		defer done()
		select {
		case <-ctx.Done():
			res.err = ctx.Err()
			return
		case <-time.After(time.Until(idleStart.Add(b.o.idle))):
		}
		t1, s1, err := cpuTime(pid)
		if err != nil {
			res.err = err
			return
		}
		res.idleWindow = time.Since(idleStart)
		res.idleTicks, res.idleNs = t1-t0, s1-s0
	}
}

func (b *bench) daemons(ctx context.Context) {
	b.logf("daemons: our daemon: token, memory, %d GetJwtToken calls", b.o.calls)
	ours, oursWait := b.measureDaemon(ctx, false)
	var ref *daemonFigures
	refWait := func() {}
	if b.menderWhy == "" {
		b.logf("daemons: mender daemon: token, memory, %d GetJwtToken calls", b.o.calls)
		ref, refWait = b.measureDaemon(ctx, true)
	}
	b.logf("daemons: idle window of %s for both", b.o.idle)
	if b.o.duringIdle != "" {
		b.logf("daemons: running %s during the idle window", b.o.duringIdle)
		cmd := exec.CommandContext(ctx, b.o.duringIdle)
		cmd.Stdout, cmd.Stderr = b.log, b.log
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.rep.note("%s: %v", b.o.duringIdle, err)
		}
		b.logf("daemons: %s took %s", b.o.duringIdle, time.Since(start).Round(time.Second))
	}
	oursWait()
	refWait()
	refName := "`mender daemon` 3.4.0"
	refErr := ""
	switch {
	case b.menderWhy != "":
		refErr = "reference not run: " + b.menderWhy
		ref = nil
	case ref != nil && ref.err != nil:
		refErr = "reference failed: " + ref.err.Error()
		ref = nil
	}
	if ours.err != nil {
		b.rep.note("our daemon could not be measured: %v", ours.err)
	}
	pick := func(f func(*daemonFigures) float64, d *daemonFigures) *float64 {
		if d == nil || d.err != nil {
			return nil
		}
		return val(f(d))
	}
	const memSec = "Daemon resident memory and D-Bus (private bus, authenticated daemon)"
	add := func(sec, name, unit string, f func(*daemonFigures) float64, bud *budget, note string) {
		fig := figure{Section: sec, Name: name, Unit: unit, Ours: pick(f, ours), RefName: refName, Reference: pick(f, ref), Note: note}
		if refErr != "" {
			fig.Note = strings.TrimSpace(note + " " + refErr)
		}
		b.rep.add(fig, bud)
	}
	kib := func(x float64) float64 { return x / 1024 }
	add(memSec, "`daemon` start to token at a D-Bus consumer (default key type)", "ms",
		func(d *daemonFigures) float64 { return ms(d.coldStart) }, nil, "ours: ed25519 (default); mender: RSA-3072")
	split := func(m func(*daemonFigures) memStatus) string {
		s := ""
		if ours.err == nil {
			s = fmt.Sprintf("ours: RssAnon %.1f MiB + RssFile %.1f MiB", kib(m(ours).anon), kib(m(ours).file))
		}
		if ref != nil {
			s += fmt.Sprintf("; mender: RssAnon %.1f MiB + RssFile %.1f MiB", kib(m(ref).anon), kib(m(ref).file))
		}
		return s
	}
	envNote := ""
	if len(b.unitEnv) > 0 {
		envNote = "; our daemon ran with the Environment= of dist/mender-authd.service: " + strings.Join(b.unitEnv, " ")
	}
	authM := func(d *daemonFigures) memStatus { return d.auth }
	callsM := func(d *daemonFigures) memStatus { return d.calls }
	add(memSec, "VmRSS after authentication", "MiB", func(d *daemonFigures) float64 { return kib(d.auth.rss) }, nil, split(authM))
	add(memSec, "VmHWM after authentication", "MiB", func(d *daemonFigures) float64 { return kib(d.auth.hwm) }, nil, "")
	add(memSec, fmt.Sprintf("VmRSS after %d GetJwtToken calls", b.o.calls), "MiB", func(d *daemonFigures) float64 { return kib(d.calls.rss) }, &budget{text: "<= 12 MiB", max: 12}, split(callsM)+envNote)
	add(memSec, fmt.Sprintf("VmHWM after %d GetJwtToken calls", b.o.calls), "MiB", func(d *daemonFigures) float64 { return kib(d.calls.hwm) }, nil, "")
	add(memSec, "GetJwtToken calls/s, one consumer, real daemon", "calls/s", func(d *daemonFigures) float64 { return d.callsPerSec }, nil, "sequential calls over the private dbus-daemon")
	add(memSec, "GetJwtToken p50, real daemon", "µs", func(d *daemonFigures) float64 { return float64(d.p50) / 1e3 }, nil, "")
	add(memSec, "GetJwtToken p99, real daemon", "µs", func(d *daemonFigures) float64 { return float64(d.p99) / 1e3 }, nil, "")
	const idleSec = "Idle CPU after authentication"
	perMin := func(x time.Duration, d *daemonFigures) float64 {
		return ms(x) * float64(time.Minute) / float64(d.idleWindow)
	}
	add(idleSec, "CPU time per minute idle (all threads' schedstat run time)", "ms/min",
		func(d *daemonFigures) float64 { return perMin(d.idleNs, d) }, &budget{text: "<= 10 ms/min", max: 10},
		fmt.Sprintf("window %s right after the calls", b.o.idle))
	add(idleSec, "CPU time per minute idle (utime+stime, 10 ms ticks)", "ms/min",
		func(d *daemonFigures) float64 { return perMin(d.idleTicks, d) }, nil, "")
	if ref != nil {
		b.rep.note("`mender daemon` 3.4.0 is the whole updater (auth, inventory, update checks, local proxy); it ran with UpdatePollIntervalSeconds 1800, InventoryPollIntervalSeconds 28800, an /etc/mender/artifact_info and the test server answering 404 to its deployment checks. It is what a device running the 3.x client pays for authentication today.")
	}
}
