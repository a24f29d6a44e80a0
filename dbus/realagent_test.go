package dbus

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/agent"
	"github.com/mender-agent/mender-agent/agent/agenttest"
)

// TestConcurrentFetchesJoinOneAttempt puts the real agent behind the D-Bus
// server: 100 concurrent FetchJwtToken calls made while an attempt is in
// flight cause exactly one authentication and exactly one signal.
func TestConcurrentFetchesJoinOneAttempt(t *testing.T) {
	bus := startBus(t)
	now := time.Now()
	first := agenttest.NewToken("https://server.example", now, now.Add(time.Hour))
	marker := agenttest.NewToken("https://server.example", now.Add(time.Second), now.Add(2*time.Hour))
	release := make(chan struct{})
	auth := &agenttest.Authenticator{}
	entered := auth.Entered()
	// The agent authenticates at start; that attempt is held until every
	// caller has asked, so all of them join it.
	auth.Push(agenttest.Step{Token: first, Block: release}, agenttest.Step{Token: marker})
	ag, err := agent.New(agent.Config{Authenticator: auth, BackoffMin: time.Millisecond, BackoffMax: time.Second})
	require.NoError(t, err)
	srv, err := New(Config{Service: ag, Address: bus.Address, LocalURL: func(agent.Token) string { return testURL }})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = ag.Run(ctx) })
	wg.Go(func() { _ = srv.Serve(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitOwned(t, bus.Address)
	conn := dial(t, bus.Address)
	signals := subscribe(t, conn)
	select {
	case <-entered:
	case <-time.After(testTimeout):
		t.Fatal("the agent did not start authenticating")
	}

	const callers = 100
	var calls sync.WaitGroup
	for range callers {
		calls.Go(func() {
			var ok bool
			err := conn.Object(BusName, ObjectPath).Call(Interface+".FetchJwtToken", 0).Store(&ok)
			assert.NoError(t, err)
			assert.True(t, ok)
		})
	}
	calls.Wait()
	close(release)

	jwt, url := nextState(t, signals)
	assert.Equal(t, first.JWT(), jwt)
	assert.Equal(t, testURL, url)
	// A marker attempt: had the joined attempt produced more than one
	// signal, the duplicate would arrive before the marker's.
	var ok bool
	require.NoError(t, conn.Object(BusName, ObjectPath).Call(Interface+".FetchJwtToken", 0).Store(&ok))
	jwt, _ = nextState(t, signals)
	assert.Equal(t, marker.JWT(), jwt, "the next signal is the marker attempt's")
	assert.Equal(t, 2, auth.Calls(), "100 concurrent fetches during one attempt cost one authentication")
}
