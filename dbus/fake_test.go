package dbus

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/agent"
)

// fakeService is a hand-written TokenService. Like the agent, it merges
// refresh requests made while one is pending (a size-1 queue); the test
// plays the agent's loop by reading refresh and calling complete.
type fakeService struct {
	mu       sync.Mutex
	current  agent.Token
	subs     map[chan agent.Result]struct{}
	refresh  chan struct{}
	requests atomic.Int64
	stopped  atomic.Bool
}

func newFakeService() *fakeService {
	return &fakeService{subs: map[chan agent.Result]struct{}{}, refresh: make(chan struct{}, 1)}
}

func (f *fakeService) Current() agent.Token {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current
}

func (f *fakeService) RequestRefresh() bool {
	f.requests.Add(1)
	select {
	case f.refresh <- struct{}{}:
	default:
	}
	return !f.stopped.Load()
}

func (f *fakeService) Subscribe(ctx context.Context) <-chan agent.Result {
	ch := make(chan agent.Result, 16)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		delete(f.subs, ch)
		close(ch)
		f.mu.Unlock()
	}()
	return ch
}

// complete finishes one attempt: it updates the current token and tells
// every subscriber.
func (f *fakeService) complete(r agent.Result) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Like the agent: a 401 drops the token, other failures keep it.
	switch {
	case r.Err == nil:
		f.current = r.Token
	case errors.Is(r.Err, agent.ErrUnauthorized):
		f.current = agent.Token{}
	}
	for ch := range f.subs {
		ch <- r
	}
}

func (f *fakeService) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// waitRefresh returns once a refresh was requested.
func (f *fakeService) waitRefresh(t testing.TB) {
	t.Helper()
	select {
	case <-f.refresh:
	case <-time.After(30 * time.Second):
		t.Fatal("no refresh was requested")
	}
}

// testToken makes a parseable token issued by serverURL; n makes it unique.
func testToken(t testing.TB, serverURL string, n int) agent.Token {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	exp := time.Now().Add(time.Hour).Unix()
	jwt := enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." +
		enc(fmt.Appendf(nil, `{"exp":%d,"sub":"device-%d"}`, exp, n)) + "." + enc([]byte("signature"))
	tok, err := agent.ParseToken(jwt, serverURL, time.Now())
	require.NoError(t, err)
	return tok
}
