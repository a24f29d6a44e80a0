package agent_test

import (
	"context"
	"testing"
	"time"

	"github.com/mender-agent/mender-agent/agent"
	"github.com/mender-agent/mender-agent/agent/agenttest"
)

// BenchmarkCurrent measures the lock-free read every D-Bus GetJwtToken and
// every forwarded request makes, from all CPUs at once.
func BenchmarkCurrent(b *testing.B) {
	auth := &agenttest.Authenticator{Fallback: func(context.Context, int) (agent.Token, error) {
		return agenttest.NewToken(serverURL, time.Now(), time.Now().Add(time.Hour)), nil
	}}
	ag, err := agent.New(agent.Config{Authenticator: auth})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- ag.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for ag.Current().IsZero() {
		time.Sleep(time.Millisecond)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ag.Current().IsZero() {
				b.Error("token lost")
			}
		}
	})
}

// BenchmarkRequestRefresh measures a refresh request that is merged into a
// pending one (the common case under a burst of FetchJwtToken calls).
func BenchmarkRequestRefresh(b *testing.B) {
	ag, err := agent.New(agent.Config{Authenticator: &agenttest.Authenticator{}})
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ag.RequestRefresh()
		}
	})
}
