// Package agenttest provides hand-written fakes of the agent package's
// interfaces for tests of the agent and of the packages built on it: a
// scripted Authenticator, an in-memory TokenStore and a helper that makes
// parseable tokens.
//
// It is for tests only. It imports the agent package, the standard library
// and nothing that talks to a network, a bus or a TPM.
package agenttest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mender-agent/mender-agent/agent"
)

// NewToken returns a token issued by serverURL with the given iat and exp
// claims and subject "device-1". The signature part is a placeholder: the
// agent never verifies it. It panics if the claims do not make a parseable
// token, which only happens for times before 1970 or far in the future.
func NewToken(serverURL string, iat, exp time.Time) agent.Token {
	tok, err := agent.ParseToken(JWT(iat, exp), serverURL, iat)
	if err != nil {
		panic(fmt.Sprintf("agenttest: token for iat %s exp %s: %v", iat, exp, err))
	}
	return tok
}

// JWT returns a compact JWT string with the given iat and exp claims, for
// tests that need the raw form (a token cache file, an HTTP body).
func JWT(iat, exp time.Time) string {
	claims, err := json.Marshal(map[string]any{
		"iat": iat.Unix(),
		"exp": exp.Unix(),
		"sub": "device-1",
		"iss": "Mender",
	})
	if err != nil {
		panic(err) // a map of ints and strings always marshals
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc(claims) + "." + enc([]byte("signature"))
}

// Step is one scripted answer of Authenticator.
type Step struct {
	// Token is returned when Err is nil.
	Token agent.Token
	// Err is returned when set.
	Err error
	// Block, when set, makes the call wait until Block is closed before
	// answering. If the call's context is done first, the call returns the
	// context's error; a Block already closed always wins.
	Block <-chan struct{}
}

// Authenticator is a scripted agent.Authenticator. Each call takes the
// next Step pushed with Push; once the script is exhausted, calls answer
// with Fallback, or with an error when Fallback is nil. It counts calls and
// is safe for concurrent use.
type Authenticator struct {
	// Fallback answers calls after the script is exhausted. It receives the
	// 1-based number of the call. Set it before the first call.
	Fallback func(ctx context.Context, call int) (agent.Token, error)

	mu      sync.Mutex
	steps   []Step
	calls   int
	entered chan int
}

var _ agent.Authenticator = (*Authenticator)(nil)

// ErrScriptExhausted is returned by calls beyond the script when Fallback
// is nil.
var ErrScriptExhausted = errors.New("agenttest: no scripted answer left")

// Push appends steps to the script.
func (a *Authenticator) Push(steps ...Step) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.steps = append(a.steps, steps...)
}

// Calls reports how many times Authenticate has been called.
func (a *Authenticator) Calls() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

// Entered returns a channel that receives the number of each call as it
// starts (buffered; calls never wait for a reader, extra notices beyond the
// buffer are dropped). Call it before the calls of interest.
func (a *Authenticator) Entered() <-chan int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.entered == nil {
		a.entered = make(chan int, 64)
	}
	return a.entered
}

// Authenticate answers with the next scripted Step.
func (a *Authenticator) Authenticate(ctx context.Context) (agent.Token, error) {
	a.mu.Lock()
	a.calls++
	call := a.calls
	var (
		step   Step
		script bool
	)
	if len(a.steps) > 0 {
		step, a.steps, script = a.steps[0], a.steps[1:], true
	}
	fallback := a.Fallback
	if a.entered != nil {
		select {
		case a.entered <- call:
		default:
		}
	}
	a.mu.Unlock()

	if !script {
		if fallback == nil {
			return agent.Token{}, fmt.Errorf("call %d: %w", call, ErrScriptExhausted)
		}
		return fallback(ctx, call)
	}
	if step.Block != nil {
		select {
		case <-step.Block: // already open: answer, whatever ctx says
		default:
			select {
			case <-step.Block:
			case <-ctx.Done():
				return agent.Token{}, ctx.Err()
			}
		}
	}
	if step.Err != nil {
		return agent.Token{}, step.Err
	}
	return step.Token, nil
}

// Store is an in-memory agent.TokenStore that counts its calls. Set LoadErr
// or SaveErr to make Load or Save fail. It is safe for concurrent use.
type Store struct {
	mu      sync.Mutex
	tok     agent.Token
	loadErr error
	saveErr error
	loads   int
	saves   int
	clears  int
}

var _ agent.TokenStore = (*Store)(nil)

// NewStore returns a Store holding tok (the zero Token for an empty store).
func NewStore(tok agent.Token) *Store { return &Store{tok: tok} }

// FailLoad makes Load return err (nil restores normal behaviour).
func (s *Store) FailLoad(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadErr = err
}

// FailSave makes Save return err (nil restores normal behaviour).
func (s *Store) FailSave(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saveErr = err
}

// Load returns the stored token.
func (s *Store) Load() (agent.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads++
	if s.loadErr != nil {
		return agent.Token{}, s.loadErr
	}
	return s.tok, nil
}

// Save stores tok.
func (s *Store) Save(tok agent.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves++
	if s.saveErr != nil {
		return s.saveErr
	}
	s.tok = tok
	return nil
}

// Clear empties the store.
func (s *Store) Clear() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clears++
	s.tok = agent.Token{}
	return nil
}

// Token returns what the store holds.
func (s *Store) Token() agent.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok
}

// Counts reports how many times Load, Save and Clear were called.
func (s *Store) Counts() (loads, saves, clears int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loads, s.saves, s.clears
}
