package dbus

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/test/testenv"
)

// forgerEnv makes TestHelperSignalForger act as an unprivileged process
// that forges the agent's signal on the bus at the given address.
const forgerEnv = "MENDER_AGENT_TEST_SIGNAL_FORGER"

// TestHelperSignalForger is not a test: TestNonRootCannotForgeTokenSignal
// runs the test binary as nobody with this test selected. It emits a
// JwtTokenStateChange pointing at an attacker's URL and prints "sent".
func TestHelperSignalForger(t *testing.T) {
	address := os.Getenv(forgerEnv)
	if address == "" {
		t.Skip("helper process of TestNonRootCannotForgeTokenSignal")
	}
	conn, err := godbus.Connect(address)
	if err != nil {
		fmt.Println("error", err)
		return
	}
	defer conn.Close()
	if err := conn.Emit(ObjectPath, Interface+"."+SignalName, "forged.jwt.token", "http://127.0.0.1:6666"); err != nil {
		fmt.Println("error", err)
		return
	}
	// A round trip to the bus makes sure the signal was processed.
	var id string
	_ = conn.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&id)
	fmt.Println("sent")
}

// TestNonRootCannotForgeTokenSignal: mender-update subscribes to
// JwtTokenStateChange by interface and member only and trusts the URL it
// carries, so the policy must stop other users from sending it.
func TestNonRootCannotForgeTokenSignal(t *testing.T) {
	bus := startBus(t)
	serve(t, bus, newFakeService())
	// A root consumer with mender-update's match rule (no sender).
	consumer := dial(t, bus.Address)
	ch := make(chan *godbus.Signal, 16)
	consumer.Signal(ch)
	require.NoError(t, consumer.AddMatchSignal(godbus.WithMatchInterface(Interface), godbus.WithMatchMember(SignalName)))
	require.NoError(t, consumer.AddMatchSignal(godbus.WithMatchInterface(markerIface)))

	setpriv := testenv.LookPath(t, "setpriv")
	bin := copyForNobody(t)
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin, "-test.run=^TestHelperSignalForger$")
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = append(os.Environ(), forgerEnv+"="+bus.Address)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "sent", "the forger must have tried")

	// The marker is sent after the forgery was processed; the consumer must
	// see the marker and nothing before it.
	root := dial(t, bus.Address)
	require.NoError(t, root.Emit(markerPath, markerIface+".Done"))
	for {
		select {
		case sig := <-ch:
			switch sig.Name {
			case Interface + "." + SignalName:
				t.Fatalf("a signal forged by nobody reached the consumer: %v", sig.Body)
			case markerIface + ".Done":
				return
			}
		case <-time.After(testTimeout):
			t.Fatal("the marker signal did not arrive")
		}
	}
}
