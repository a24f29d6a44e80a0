package agenttest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/agent"
	"github.com/mender-agent/mender-agent/agent/agenttest"
)

func TestNewToken(t *testing.T) {
	iat := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tok := agenttest.NewToken("https://s", iat, iat.Add(time.Hour))
	assert.Equal(t, iat, tok.IssuedAt)
	assert.Equal(t, iat.Add(time.Hour), tok.Expires)
	assert.Equal(t, "https://s", tok.ServerURL)
	assert.Equal(t, "device-1", tok.Subject)
	again, err := agent.ParseToken(agenttest.JWT(iat, iat.Add(time.Hour)), "https://s", time.Time{})
	require.NoError(t, err)
	assert.Equal(t, tok, again)
}

func TestAuthenticatorScript(t *testing.T) {
	iat := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tok := agenttest.NewToken("https://s", iat, iat.Add(time.Hour))
	boom := errors.New("boom")
	a := &agenttest.Authenticator{}
	entered := a.Entered()
	a.Push(agenttest.Step{Token: tok}, agenttest.Step{Err: boom})
	ctx := context.Background()

	got, err := a.Authenticate(ctx)
	require.NoError(t, err)
	assert.Equal(t, tok, got)
	_, err = a.Authenticate(ctx)
	assert.ErrorIs(t, err, boom)
	_, err = a.Authenticate(ctx)
	assert.ErrorIs(t, err, agenttest.ErrScriptExhausted)
	assert.Equal(t, 3, a.Calls())
	assert.Equal(t, []int{1, 2, 3}, []int{<-entered, <-entered, <-entered})

	a.Fallback = func(_ context.Context, call int) (agent.Token, error) {
		assert.Equal(t, 4, call)
		return tok, nil
	}
	got, err = a.Authenticate(ctx)
	require.NoError(t, err)
	assert.Equal(t, tok, got)
}

func TestAuthenticatorBlock(t *testing.T) {
	a := &agenttest.Authenticator{}
	block := make(chan struct{})
	a.Push(agenttest.Step{Err: errors.New("late"), Block: block}, agenttest.Step{Block: block})

	done := make(chan error)
	go func() { _, err := a.Authenticate(context.Background()); done <- err }()
	close(block)
	assert.EqualError(t, <-done, "late", "answers once unblocked")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a.Push(agenttest.Step{Block: make(chan struct{})})
	_, err := a.Authenticate(ctx) // the second step: block already closed
	require.NoError(t, err)
	_, err = a.Authenticate(ctx)
	assert.ErrorIs(t, err, context.Canceled, "a blocked call ends with its context")
}

func TestStore(t *testing.T) {
	iat := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tok := agenttest.NewToken("https://s", iat, iat.Add(time.Hour))
	s := agenttest.NewStore(agent.Token{})
	got, err := s.Load()
	require.NoError(t, err)
	assert.True(t, got.IsZero())
	require.NoError(t, s.Save(tok))
	assert.Equal(t, tok, s.Token())
	require.NoError(t, s.Clear())
	assert.True(t, s.Token().IsZero())

	s.FailLoad(errors.New("bad"))
	_, err = s.Load()
	assert.EqualError(t, err, "bad")
	s.FailSave(errors.New("full"))
	assert.EqualError(t, s.Save(tok), "full")
	assert.True(t, s.Token().IsZero())
	loads, saves, clears := s.Counts()
	assert.Equal(t, []int{2, 2, 1}, []int{loads, saves, clears})
}
