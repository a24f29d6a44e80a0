package dbus

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/agent"
	"github.com/mender-agent/mender-agent/test/dbustest"
	"github.com/mender-agent/mender-agent/test/testenv"
)

const (
	testURL     = "http://127.0.0.1:4321"
	policyFile  = "../dist/io.mender.AuthenticationManager.conf"
	testTimeout = 30 * time.Second
)

// startBus starts a private system-like bus that loads the shipped policy.
// The policy grants the name and the methods to root only, so the tests
// that own the name must run as root.
func startBus(t testing.TB) *dbustest.Bus {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "the shipped D-Bus policy grants io.mender.AuthenticationManager to root only; run the tests as root")
	}
	return dbustest.Start(t, policyFile)
}

// logBuffer collects log output so tests can check that no token leaks.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type served struct {
	svc    *fakeService
	logs   *logBuffer
	cancel context.CancelFunc
	done   chan error
}

// serve runs a Server for svc on bus until the test ends and returns once
// it owns the name.
func serve(t testing.TB, bus *dbustest.Bus, svc *fakeService) *served {
	t.Helper()
	sv := serveAt(t, bus.Address, svc)
	waitOwned(t, bus.Address)
	return sv
}

// serveAt runs a Server for svc connecting to address until the test ends.
func serveAt(t testing.TB, address string, svc *fakeService) *served {
	t.Helper()
	logs := &logBuffer{}
	logger := logrus.New()
	logger.SetOutput(logs)
	logger.SetLevel(logrus.DebugLevel)
	s, err := New(Config{
		Service:      svc,
		Address:      address,
		LocalURL:     func(agent.Token) string { return testURL },
		Logger:       logger,
		ReconnectMin: 10 * time.Millisecond,
		ReconnectMax: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	sv := &served{svc: svc, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { sv.done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-sv.done
	})
	return sv
}

// stop cancels Serve and returns its error.
func (s *served) stop(t testing.TB) error {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		return err
	case <-time.After(testTimeout):
		t.Fatal("Serve did not return after cancel")
		return nil
	}
}

func dial(t testing.TB, address string) *godbus.Conn {
	t.Helper()
	conn, err := Dial(address)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// waitOwned returns once BusName has an owner on the bus at address,
// waiting for NameOwnerChanged rather than polling.
func waitOwned(t testing.TB, address string) {
	t.Helper()
	conn := dial(t, address)
	defer conn.Close()
	ch := make(chan *godbus.Signal, 16)
	conn.Signal(ch)
	require.NoError(t, conn.AddMatchSignal(
		godbus.WithMatchSender("org.freedesktop.DBus"),
		godbus.WithMatchMember("NameOwnerChanged"),
		godbus.WithMatchArg(0, BusName)))
	var has bool
	require.NoError(t, conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, BusName).Store(&has))
	timeout := time.After(testTimeout)
	for !has {
		select {
		case sig := <-ch:
			if sig.Name == "org.freedesktop.DBus.NameOwnerChanged" && len(sig.Body) == 3 && sig.Body[2] != "" {
				has = true
			}
		case <-timeout:
			t.Fatalf("%s was not owned within %s", BusName, testTimeout)
		}
	}
}

// subscribe delivers JwtTokenStateChange signals from the agent to the
// returned channel.
func subscribe(t testing.TB, conn *godbus.Conn) <-chan *godbus.Signal {
	t.Helper()
	ch := make(chan *godbus.Signal, 64)
	conn.Signal(ch)
	require.NoError(t, conn.AddMatchSignal(
		godbus.WithMatchSender(BusName),
		godbus.WithMatchObjectPath(ObjectPath),
		godbus.WithMatchInterface(Interface),
		godbus.WithMatchMember(SignalName)))
	return ch
}

// nextState returns the body of the next JwtTokenStateChange.
func nextState(t testing.TB, ch <-chan *godbus.Signal) (string, string) {
	t.Helper()
	for {
		select {
		case sig := <-ch:
			if sig.Name != Interface+"."+SignalName {
				continue
			}
			require.Equal(t, ObjectPath, sig.Path)
			require.Len(t, sig.Body, 2)
			jwt, ok1 := sig.Body[0].(string)
			url, ok2 := sig.Body[1].(string)
			require.True(t, ok1 && ok2, "signal body %#v is not (ss)", sig.Body)
			return jwt, url
		case <-time.After(testTimeout):
			t.Fatalf("no %s within %s", SignalName, testTimeout)
			return "", ""
		}
	}
}

func run(t testing.TB, tool string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(testenv.LookPath(t, tool), args...).CombinedOutput()
	return string(out), err
}

func busctlCall(t testing.TB, address, method string) (string, error) {
	return run(t, "busctl", "--address="+address, "call", BusName, string(ObjectPath), Interface, method)
}

func TestGetJwtTokenBeforeAndAfterAuth(t *testing.T) {
	bus := startBus(t)
	sv := serve(t, bus, newFakeService())
	conn := dial(t, bus.Address)
	ctx := context.Background()

	jwt, url, err := GetToken(ctx, conn)
	require.NoError(t, err)
	assert.Empty(t, jwt)
	assert.Empty(t, url)
	out, err := busctlCall(t, bus.Address, "GetJwtToken")
	require.NoError(t, err, out)
	assert.Equal(t, "ss \"\" \"\"\n", out)

	tok := testToken(t, "https://server.example", 1)
	sv.svc.complete(agent.Result{Token: tok})

	jwt, url, err = GetToken(ctx, conn)
	require.NoError(t, err)
	assert.Equal(t, tok.JWT(), jwt)
	assert.Equal(t, testURL, url)
	out, err = busctlCall(t, bus.Address, "GetJwtToken")
	require.NoError(t, err, out)
	assert.Equal(t, "ss \""+tok.JWT()+"\" \""+testURL+"\"\n", out)
	out, err = run(t, "dbus-send", "--bus="+bus.Address, "--print-reply", "--dest="+BusName, string(ObjectPath), Interface+".GetJwtToken")
	require.NoError(t, err, out)
	assert.Regexp(t, `(?s)method return .*string "`+regexp.QuoteMeta(tok.JWT())+`"\s+string "`+regexp.QuoteMeta(testURL)+`"`, out)

	require.ErrorIs(t, sv.stop(t), context.Canceled)
	assert.NotEmpty(t, sv.logs.String())
	assert.NotContains(t, sv.logs.String(), tok.JWT(), "the token must never be logged")
}

func TestFetchJwtTokenSignalsOutcome(t *testing.T) {
	bus := startBus(t)
	sv := serve(t, bus, newFakeService())
	conn := dial(t, bus.Address)
	tok := testToken(t, "https://server.example", 2)

	tests := []struct {
		name      string
		result    agent.Result
		wantJWT   string
		wantURL   string
		wantErr   error
		wantAfter string
	}{
		{name: "success", result: agent.Result{Token: tok}, wantJWT: tok.JWT(), wantURL: testURL},
		{name: "failure", result: agent.Result{Err: agent.ErrUnauthorized}, wantErr: ErrAuthFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type fetched struct {
				jwt, url string
				err      error
			}
			got := make(chan fetched, 1)
			go func() {
				jwt, url, err := FetchToken(context.Background(), conn, testTimeout)
				got <- fetched{jwt, url, err}
			}()
			sv.svc.waitRefresh(t)
			sv.svc.complete(tt.result)
			f := <-got
			if tt.wantErr != nil {
				require.ErrorIs(t, f.err, tt.wantErr)
			} else {
				require.NoError(t, f.err)
			}
			assert.Equal(t, tt.wantJWT, f.jwt)
			assert.Equal(t, tt.wantURL, f.url)
			jwt, url, err := GetToken(context.Background(), conn)
			require.NoError(t, err)
			assert.Equal(t, tt.wantJWT, jwt, "GetJwtToken agrees with the signal")
			assert.Equal(t, tt.wantURL, url)
		})
	}
}

// TestSignalWithStockTools checks FetchJwtToken and the signal's signature
// as busctl and dbus-monitor see them.
func TestSignalWithStockTools(t *testing.T) {
	bus := startBus(t)
	sv := serve(t, bus, newFakeService())
	monitor := exec.Command(testenv.LookPath(t, "dbus-monitor"), "--address", bus.Address,
		"type='signal',sender='"+BusName+"',interface='"+Interface+"',member='"+SignalName+"'")
	stdout, err := monitor.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, monitor.Start())
	t.Cleanup(func() {
		_ = monitor.Process.Kill()
		_ = monitor.Wait()
	})
	lines := make(chan string, 64)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	// dbus-monitor reports its own NameAcquired once it is monitoring.
	waitLine(t, lines, "member=NameAcquired")

	tok := testToken(t, "https://server.example", 3)
	// Success, then a transient failure (the token is kept, so it is
	// announced again), then a 401 (the token is gone: empty strings).
	steps := []struct {
		r          agent.Result
		authorized bool
	}{
		{r: agent.Result{Token: tok}, authorized: true},
		{r: agent.Result{Err: errors.New("connection refused")}, authorized: true},
		{r: agent.Result{Err: agent.ErrUnauthorized}, authorized: false},
	}
	for _, st := range steps {
		r := st.r
		out, err := busctlCall(t, bus.Address, "FetchJwtToken")
		require.NoError(t, err, out)
		assert.Equal(t, "b true\n", out)
		sv.svc.waitRefresh(t)
		sv.svc.complete(r)
		header := waitLine(t, lines, "member="+SignalName)
		assert.Contains(t, header, "path="+string(ObjectPath)+"; interface="+Interface+"; member="+SignalName)
		wantJWT, wantURL := "", ""
		if st.authorized {
			wantJWT, wantURL = tok.JWT(), testURL
		}
		assert.Equal(t, `string "`+wantJWT+`"`, strings.TrimSpace(<-lines))
		assert.Equal(t, `string "`+wantURL+`"`, strings.TrimSpace(<-lines))
	}
}

func waitLine(t testing.TB, lines <-chan string, substr string) string {
	t.Helper()
	timeout := time.After(testTimeout)
	for {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "dbus-monitor exited before printing %q", substr)
			if strings.Contains(l, substr) {
				return l
			}
		case <-timeout:
			t.Fatalf("dbus-monitor printed no %q within %s", substr, testTimeout)
		}
	}
}

func TestNonRootCallerIsDenied(t *testing.T) {
	bus := startBus(t)
	serve(t, bus, newFakeService())
	setpriv := testenv.LookPath(t, "setpriv")
	busctl := testenv.LookPath(t, "busctl")
	nobody := []string{"--reuid=65534", "--regid=65534", "--clear-groups", busctl, "--address=" + bus.Address}

	for _, method := range []string{"GetJwtToken", "FetchJwtToken"} {
		t.Run(method, func(t *testing.T) {
			out, err := run(t, setpriv, append(nobody, "call", BusName, string(ObjectPath), Interface, method)...)
			require.Error(t, err, out)
			assert.Contains(t, out, "Access denied")
		})
	}
	t.Run("own the name", func(t *testing.T) {
		out, err := run(t, setpriv, append(nobody, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName", "su", BusName, "4")...)
		require.Error(t, err, out)
		assert.Contains(t, out, "Access denied")
	})
	t.Run("root is allowed", func(t *testing.T) {
		out, err := busctlCall(t, bus.Address, "GetJwtToken")
		require.NoError(t, err, out)
	})
}

func TestNameTakenFailsClearly(t *testing.T) {
	bus := startBus(t)
	squatter := dial(t, bus.Address)
	reply, err := squatter.RequestName(BusName, godbus.NameFlagDoNotQueue)
	require.NoError(t, err)
	require.Equal(t, godbus.RequestNameReplyPrimaryOwner, reply)

	s, err := New(Config{Service: newFakeService(), Address: bus.Address})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	err = s.Serve(ctx)
	require.ErrorIs(t, err, ErrNameTaken)
	assert.Contains(t, err.Error(), "pid "+strconv.Itoa(os.Getpid()))
	assert.Contains(t, err.Error(), BusName)
}

func TestServeReleasesNameOnReturn(t *testing.T) {
	bus := startBus(t)
	svc := newFakeService()
	sv := serve(t, bus, svc)
	require.ErrorIs(t, sv.stop(t), context.Canceled)
	conn := dial(t, bus.Address)
	var has bool
	require.NoError(t, conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, BusName).Store(&has))
	assert.False(t, has)
	_, _, err := GetToken(context.Background(), conn)
	require.ErrorIs(t, err, ErrNoAgent)
	assert.Eventually(t, func() bool { return svc.subscribers() == 0 }, testTimeout, time.Millisecond, "Serve cancels its subscription")
}

func TestServeReownsAfterBusRestart(t *testing.T) {
	bus := startBus(t)
	sv := serve(t, bus, newFakeService())
	tok := testToken(t, "https://server.example", 5)
	sv.svc.complete(agent.Result{Token: tok})

	for i := range 2 {
		bus.Restart(t)
		waitOwned(t, bus.Address)
		conn := dial(t, bus.Address)
		jwt, url, err := GetToken(context.Background(), conn)
		require.NoError(t, err, "restart %d", i)
		assert.Equal(t, tok.JWT(), jwt)
		assert.Equal(t, testURL, url)
	}

	conn := dial(t, bus.Address)
	next := testToken(t, "https://server.example", 6)
	got := make(chan string, 1)
	go func() {
		jwt, _, err := FetchToken(context.Background(), conn, testTimeout)
		assert.NoError(t, err)
		got <- jwt
	}()
	sv.svc.waitRefresh(t)
	sv.svc.complete(agent.Result{Token: next})
	assert.Equal(t, next.JWT(), <-got)
}

func TestIntrospectionOnBus(t *testing.T) {
	bus := startBus(t)
	serve(t, bus, newFakeService())
	conn := dial(t, bus.Address)

	var data string
	require.NoError(t, conn.Object(BusName, ObjectPath).Call(introspectableInterface+".Introspect", 0).Store(&data))
	golden, err := os.ReadFile("../dist/io.mender.Authentication1.xml")
	require.NoError(t, err)
	assert.Equal(t, parseInterface(t, golden, Interface), parseInterface(t, []byte(data), Interface))
	var n introspect.Node
	require.NoError(t, xml.Unmarshal([]byte(data), &n))

	out, err := run(t, "busctl", "--address="+bus.Address, "introspect", BusName, string(ObjectPath), Interface)
	require.NoError(t, err, out)
	assert.Regexp(t, `(?m)^\.FetchJwtToken\s+method\s+-\s+b\s+-\s*$`, out)
	assert.Regexp(t, `(?m)^\.GetJwtToken\s+method\s+-\s+ss\s+-\s*$`, out)
	assert.Regexp(t, `(?m)^\.JwtTokenStateChange\s+signal\s+ss\s+-\s+-\s*$`, out)

	out, err = run(t, "busctl", "--address="+bus.Address, "tree", "--list", BusName)
	require.NoError(t, err, out)
	assert.Contains(t, strings.Fields(out), string(ObjectPath))
}

// relay is a unix socket between the agent and the bus that the test can
// cut (the agent loses its connection) and hold (new connections wait), so
// a consumer can be ready before the agent reconnects.
type relay struct {
	address string
	target  string
	mu      sync.Mutex
	gate    chan struct{}
	conns   []net.Conn
}

func startRelay(t *testing.T, bus *dbustest.Bus) *relay {
	t.Helper()
	path := filepath.Join(t.TempDir(), "relay")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	r := &relay{address: "unix:path=" + path, target: strings.TrimPrefix(bus.Address, "unix:path="), gate: make(chan struct{})}
	close(r.gate)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			gate := r.gate
			r.conns = append(r.conns, c)
			r.mu.Unlock()
			go r.splice(c, gate)
		}
	}()
	t.Cleanup(r.cut)
	return r
}

func (r *relay) splice(c net.Conn, gate <-chan struct{}) {
	<-gate
	up, err := net.Dial("unix", r.target)
	if err != nil {
		_ = c.Close()
		return
	}
	r.mu.Lock()
	r.conns = append(r.conns, up)
	r.mu.Unlock()
	go func() {
		_, _ = io.Copy(up, c)
		_ = up.Close()
	}()
	_, _ = io.Copy(c, up)
	_ = c.Close()
}

// hold makes connections accepted from now on wait for release.
func (r *relay) hold() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gate = make(chan struct{})
}

func (r *relay) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	close(r.gate)
}

// cut closes every relayed connection.
func (r *relay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		_ = c.Close()
	}
	r.conns = nil
}

func TestServeReemitsStateAfterReconnect(t *testing.T) {
	tok := testToken(t, "https://server.example", 9)
	tests := []struct {
		name    string
		current agent.Result
		wantJWT string
		wantURL string
	}{
		{name: "authorized", current: agent.Result{Token: tok}, wantJWT: tok.JWT(), wantURL: testURL},
		{name: "not authorized", current: agent.Result{Err: agent.ErrUnauthorized}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus := startBus(t)
			r := startRelay(t, bus)
			sv := serveAt(t, r.address, newFakeService())
			waitOwned(t, bus.Address)
			sv.svc.complete(tt.current)

			r.hold()
			r.cut()
			consumer := dial(t, bus.Address)
			signals := subscribe(t, consumer)
			r.release()
			jwt, url := nextState(t, signals)
			assert.Equal(t, tt.wantJWT, jwt, "the current state is emitted after reconnecting")
			assert.Equal(t, tt.wantURL, url)
		})
	}
}
