package dbus

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/agent"
	"github.com/mender-agent/mender-agent/test/dbustest"
	"github.com/mender-agent/mender-agent/test/testenv"
)

// listenerEnv makes TestHelperSignalListener act as an unprivileged
// consumer on the bus at the given address.
const listenerEnv = "MENDER_AGENT_TEST_SIGNAL_LISTENER"

const (
	markerPath  = godbus.ObjectPath("/io/mender/test")
	markerIface = "io.mender.test.Marker"
)

// TestHelperSignalListener is not a test: TestNonRootCannotReadTokenSignal
// runs the test binary as nobody with this test selected. It subscribes to
// JwtTokenStateChange and to a marker signal, prints "ready", prints
// "token" for every token signal it receives and stops at the marker.
func TestHelperSignalListener(t *testing.T) {
	address := os.Getenv(listenerEnv)
	if address == "" {
		t.Skip("helper process of TestNonRootCannotReadTokenSignal")
	}
	conn, err := godbus.Connect(address)
	if err != nil {
		fmt.Println("error", err)
		return
	}
	defer conn.Close()
	ch := make(chan *godbus.Signal, 16)
	conn.Signal(ch)
	// No sender in the rule: an eavesdropper would not restrict itself.
	if err := conn.AddMatchSignal(godbus.WithMatchInterface(Interface), godbus.WithMatchMember(SignalName)); err != nil {
		fmt.Println("error", err)
		return
	}
	if err := conn.AddMatchSignal(godbus.WithMatchInterface(markerIface)); err != nil {
		fmt.Println("error", err)
		return
	}
	fmt.Println("ready")
	for sig := range ch {
		switch sig.Name {
		case Interface + "." + SignalName:
			fmt.Println("token")
		case markerIface + ".Done":
			fmt.Println("marker")
			return
		}
	}
}

// copyForNobody copies the test binary where an unprivileged user can run
// it (the build directory is private).
func copyForNobody(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		require.NoError(t, os.Chmod(d, 0o755))
	}
	src, err := os.Open(os.Args[0])
	require.NoError(t, err)
	defer src.Close()
	bin := filepath.Join(dir, "dbus.test")
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
	return bin
}

// startListener runs TestHelperSignalListener as nobody on bus and returns
// a function reading its next line, once it is subscribed.
func startListener(t *testing.T, bus *dbustest.Bus) func() string {
	t.Helper()
	setpriv := testenv.LookPath(t, "setpriv")
	bin := copyForNobody(t)
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin, "-test.run=^TestHelperSignalListener$")
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = append(os.Environ(), listenerEnv+"="+bus.Address)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &logBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string, 16)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	next := func() string {
		t.Helper()
		select {
		case l, ok := <-lines:
			require.True(t, ok, "listener exited: %s", stderr.String())
			return l
		case <-time.After(testTimeout):
			t.Fatalf("listener silent for %s", testTimeout)
			return ""
		}
	}
	require.Equal(t, "ready", next())
	return next
}

// broadcast completes an attempt with a new token, waits until a root
// consumer has received its signal (by then the bus has routed it to every
// allowed recipient) and then sends the marker, which reaches the listener
// after anything routed before it.
func broadcast(t *testing.T, bus *dbustest.Bus, sv *served, n int) agent.Token {
	t.Helper()
	root := dial(t, bus.Address)
	signals := subscribe(t, root)
	tok := testToken(t, "https://server.example", n)
	sv.svc.complete(agent.Result{Token: tok})
	jwt, _ := nextState(t, signals)
	require.Equal(t, tok.JWT(), jwt)
	require.NoError(t, root.Emit(markerPath, markerIface+".Done"))
	return tok
}

// TestNonRootCannotReadTokenSignal checks that the policy keeps the token
// from unprivileged processes that subscribe to the broadcast signal; the
// system bus lets everyone receive signals unless a policy says otherwise.
func TestNonRootCannotReadTokenSignal(t *testing.T) {
	bus := startBus(t)
	sv := serve(t, bus, newFakeService())
	next := startListener(t, bus)
	broadcast(t, bus, sv, 7)
	assert.Equal(t, "marker", next(), "nobody must not receive JwtTokenStateChange")
}

// TestGroupPolicyRecipe checks the policy file's own instructions for
// granting a group access: applied verbatim (to nobody's group), they let
// its members call the methods and receive the signal.
func TestGroupPolicyRecipe(t *testing.T) {
	conf, err := os.ReadFile(policyFile)
	require.NoError(t, err)
	m := regexp.MustCompile(`(?s)<policy group="mender-consumers">.*?</policy>`).Find(conf)
	require.NotNil(t, m, "the policy file documents a group recipe")
	local := filepath.Join(t.TempDir(), "io.mender.AuthenticationManager-local.conf")
	recipe := strings.Replace(string(m), "mender-consumers", "nogroup", 1)
	require.NoError(t, os.WriteFile(local, []byte("<busconfig>"+recipe+"</busconfig>"), 0o644))

	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "the shipped D-Bus policy grants io.mender.AuthenticationManager to root only; run the tests as root")
	}
	bus := dbustest.Start(t, policyFile, local)
	sv := serve(t, bus, newFakeService())
	next := startListener(t, bus)
	tok := broadcast(t, bus, sv, 8)
	assert.Equal(t, "token", next(), "a member of the group receives the signal")
	assert.Equal(t, "marker", next())

	out, err := run(t, testenv.LookPath(t, "setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups",
		testenv.LookPath(t, "busctl"), "--address="+bus.Address, "call", BusName, string(ObjectPath), Interface, "GetJwtToken")
	require.NoError(t, err, out)
	assert.Equal(t, "ss \""+tok.JWT()+"\" \""+testURL+"\"\n", out)
}
