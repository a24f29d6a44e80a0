package agent_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/agent"
	"github.com/mender-agent/mender-agent/agent/agenttest"
)

const serverURL = "https://mender.example.com"

// env runs an Agent inside a synctest bubble with a scripted
// Authenticator, an in-memory cache, a log hook and a wall clock that the
// test can step.
type env struct {
	t       *testing.T
	auth    *agenttest.Authenticator
	store   *agenttest.Store
	hook    *logtest.Hook
	offset  atomic.Int64 // wall clock step, in nanoseconds
	ag      *agent.Agent
	results <-chan agent.Result
	cancel  context.CancelFunc
	done    chan struct{} // closed when Run returned
	runErr  error
}

// newEnv builds the agent. The default config has no jitter (Rand returns
// u) and a build time a year before the bubble's clock.
func newEnv(t *testing.T, mod func(*agent.Config)) *env {
	t.Helper()
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	e := &env{t: t, auth: &agenttest.Authenticator{}, store: agenttest.NewStore(agent.Token{}), hook: hook}
	cfg := agent.Config{
		Authenticator:       e.auth,
		Cache:               e.store,
		Logger:              logger,
		Now:                 e.now,
		Rand:                func() float64 { return 0 },
		BuildTime:           time.Now().AddDate(-1, 0, 0),
		BackoffMin:          10 * time.Second,
		BackoffMax:          5 * time.Minute,
		ClockRetryInterval:  5 * time.Second,
		RenewMargin:         time.Minute,
		RenewJitterFraction: 0.10,
	}
	if mod != nil {
		mod(&cfg)
	}
	ag, err := agent.New(cfg)
	require.NoError(t, err)
	e.ag = ag
	return e
}

func (e *env) now() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }

// step moves the wall clock by d without moving the monotonic clock.
func (e *env) step(d time.Duration) { e.offset.Add(int64(d)) }

// start subscribes and runs the agent until the test ends.
func (e *env) start() {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.results = e.ag.Subscribe(ctx)
	e.done = make(chan struct{})
	go func() {
		defer close(e.done)
		e.runErr = e.ag.Run(ctx)
	}()
	e.t.Cleanup(func() { _ = e.stop() })
	synctest.Wait()
}

// stop cancels Run and returns its error.
func (e *env) stop() error {
	e.cancel()
	<-e.done
	return e.runErr
}

// issue makes the Authenticator hand out fresh tokens of the given
// lifetime once its script is exhausted.
func (e *env) issue(life time.Duration) {
	e.auth.Fallback = func(context.Context, int) (agent.Token, error) {
		now := e.now()
		return agenttest.NewToken(serverURL, now, now.Add(life)), nil
	}
}

// fresh returns a token issued now for life.
func (e *env) fresh(life time.Duration) agent.Token {
	now := e.now()
	return agenttest.NewToken(serverURL, now, now.Add(life))
}

// advance sleeps d of bubble time and lets the agent settle.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// drain returns the Results buffered on ch without waiting.
func drain(ch <-chan agent.Result) []agent.Result {
	var out []agent.Result
	for {
		select {
		case r, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, r)
		default:
			return out
		}
	}
}

// messages returns the log messages at level.
func (e *env) messages(level logrus.Level) []string {
	var out []string
	for _, entry := range e.hook.AllEntries() {
		if entry.Level == level {
			out = append(out, entry.Message)
		}
	}
	return out
}

func TestAuthenticatesAtStartAndRenewsAtFraction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		e.issue(time.Hour)
		e.start()

		require.Equal(t, 1, e.auth.Calls(), "authenticates at start")
		first := e.ag.Current()
		require.False(t, first.IsZero())
		assert.Equal(t, serverURL, first.ServerURL)
		assert.Equal(t, first, e.store.Token(), "saved to the cache")
		got := drain(e.results)
		require.Len(t, got, 1)
		assert.Equal(t, first, got[0].Token)
		assert.NoError(t, got[0].Err)

		// 75% of one hour, no jitter: renewal at 45 minutes.
		advance(45*time.Minute - time.Second)
		assert.Equal(t, 1, e.auth.Calls(), "not renewed before 75% of the lifetime")
		advance(2 * time.Second)
		assert.Equal(t, 2, e.auth.Calls(), "renewed at 75% of the lifetime")
		second := e.ag.Current()
		assert.True(t, second.Expires.After(first.Expires))
		assert.Len(t, drain(e.results), 1)

		// The next renewal is 45 minutes after the second token.
		advance(45*time.Minute - 2*time.Second)
		assert.Equal(t, 2, e.auth.Calls())
		advance(2 * time.Second)
		assert.Equal(t, 3, e.auth.Calls())

		info := strings.Join(e.messages(logrus.InfoLevel), "\n")
		assert.Contains(t, info, "authenticated; token valid until ")
	})
}

func TestRenewalJitterBounds(t *testing.T) {
	tests := []struct {
		name      string
		u         float64
		renewedAt time.Duration // after the token was issued
	}{
		// Window: 10% of one hour before the 45-minute mark.
		{name: "no jitter", u: 0, renewedAt: 45 * time.Minute},
		{name: "half jitter", u: 0.5, renewedAt: 42 * time.Minute},
		{name: "full jitter", u: 0.99, renewedAt: 39*time.Minute + 3600*time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, func(c *agent.Config) {
					c.Rand = func() float64 { return tt.u }
					c.RenewJitterFraction = 0.1
				})
				e.issue(time.Hour)
				e.start()
				advance(tt.renewedAt - time.Second)
				assert.Equal(t, 1, e.auth.Calls())
				advance(2 * time.Second)
				assert.Equal(t, 2, e.auth.Calls())
			})
		})
	}
}

// A jitter fraction of zero means no jitter (mender.conf documents 0 as
// "disabled"), not the default: the renewal time ignores the random draw.
func TestZeroJitterMeansNone(t *testing.T) {
	for _, u := range []float64{0, 0.999} {
		synctest.Test(t, func(t *testing.T) {
			e := newEnv(t, func(c *agent.Config) {
				c.Rand = func() float64 { return u }
				c.RenewJitterFraction = 0
			})
			e.issue(time.Hour)
			e.start()
			advance(45*time.Minute - time.Second)
			assert.Equal(t, 1, e.auth.Calls(), "u=%v", u)
			advance(2 * time.Second)
			assert.Equal(t, 2, e.auth.Calls(), "u=%v", u)
		})
	}
}

func TestShortTokenRenewedAtHalfLife(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A 4-minute token cannot keep a 5-minute margin: renew at 2 minutes,
		// and never in a tight loop.
		e := newEnv(t, func(c *agent.Config) { c.RenewMargin = 5 * time.Minute })
		e.issue(4 * time.Minute)
		e.start()
		advance(2*time.Minute - time.Second)
		assert.Equal(t, 1, e.auth.Calls())
		advance(2 * time.Second)
		assert.Equal(t, 2, e.auth.Calls())
	})
}

func TestUnauthorizedAtStartRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		unauthorized := fmt.Errorf("auth request to %s: status 401: %w", serverURL, agent.ErrUnauthorized)
		e.auth.Push(agenttest.Step{Err: unauthorized}, agenttest.Step{Err: unauthorized})
		e.issue(time.Hour)
		e.start()

		require.Equal(t, 1, e.auth.Calls())
		assert.True(t, e.ag.Current().IsZero())
		got := drain(e.results)
		require.Len(t, got, 1)
		assert.ErrorIs(t, got[0].Err, agent.ErrUnauthorized)
		assert.True(t, got[0].Token.IsZero())

		// Rand 0: each retry waits BackoffMin.
		advance(10*time.Second - time.Millisecond)
		assert.Equal(t, 1, e.auth.Calls())
		advance(time.Millisecond)
		assert.Equal(t, 2, e.auth.Calls())
		assert.True(t, e.ag.Current().IsZero())
		advance(10 * time.Second)
		assert.Equal(t, 3, e.auth.Calls())
		assert.False(t, e.ag.Current().IsZero())
		got = drain(e.results)
		require.Len(t, got, 2)
		assert.ErrorIs(t, got[0].Err, agent.ErrUnauthorized)
		assert.NoError(t, got[1].Err)

		warn := e.messages(logrus.WarnLevel)
		require.Len(t, warn, 2)
		assert.Contains(t, warn[0], "not authorized")
		for _, entry := range e.hook.AllEntries() {
			if entry.Level == logrus.WarnLevel {
				assert.Equal(t, 10*time.Second, entry.Data["retry_in"])
			}
		}
	})
}

func TestUnauthorizedOnRenewalDropsToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		e.auth.Push(agenttest.Step{Token: e.fresh(time.Hour)}, agenttest.Step{Err: agent.ErrUnauthorized})
		e.issue(time.Hour)
		e.start()
		require.False(t, e.ag.Current().IsZero())
		_, saves, clears := e.store.Counts()
		require.Equal(t, 1, saves)
		require.Equal(t, 0, clears)

		advance(45*time.Minute + time.Second)
		require.Equal(t, 2, e.auth.Calls())
		assert.True(t, e.ag.Current().IsZero(), "a 401 drops a still-valid token")
		assert.True(t, e.store.Token().IsZero(), "and clears the cache")
		got := drain(e.results)
		require.Len(t, got, 2)
		assert.ErrorIs(t, got[1].Err, agent.ErrUnauthorized)

		advance(10 * time.Second)
		assert.Equal(t, 3, e.auth.Calls())
		assert.False(t, e.ag.Current().IsZero())
	})
}

func TestReportUnauthorized(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		block := make(chan struct{})
		e.auth.Push(agenttest.Step{Token: e.fresh(time.Hour)}, agenttest.Step{Token: e.fresh(time.Hour), Block: block})
		e.issue(time.Hour)
		e.start()
		first := e.ag.Current()
		require.False(t, first.IsZero())
		drain(e.results)

		advance(time.Minute)
		e.ag.ReportUnauthorized()
		synctest.Wait()
		assert.True(t, e.ag.Current().IsZero(), "the rejected token is dropped at once")
		assert.Equal(t, 2, e.auth.Calls(), "and authentication starts at once")

		// A report arriving while the new attempt is in flight concerns
		// no token; the attempt answers it.
		e.ag.ReportUnauthorized()
		close(block)
		synctest.Wait()
		second := e.ag.Current()
		assert.False(t, second.IsZero())
		advance(time.Minute)
		assert.Equal(t, 2, e.auth.Calls(), "no extra attempt for the merged report")
		assert.Equal(t, second, e.ag.Current())
		got := drain(e.results)
		require.Len(t, got, 1)
		assert.Equal(t, second, got[0].Token)
	})
}

func TestReportUnauthorizedAboutReplacedTokenIsIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		block := make(chan struct{})
		e.auth.Push(agenttest.Step{Token: e.fresh(time.Hour)}, agenttest.Step{Token: e.fresh(2 * time.Hour), Block: block})
		e.issue(time.Hour)
		e.start()
		entered := e.auth.Entered()

		// Renewal starts and blocks; a consumer then reports a 401 with the
		// first token, still current. The renewal completes first.
		require.True(t, e.ag.RequestRefresh())
		<-entered
		e.ag.ReportUnauthorized()
		close(block)
		synctest.Wait()
		second := e.ag.Current()
		require.False(t, second.IsZero())
		assert.Equal(t, 2, e.auth.Calls(), "the report about the replaced token starts no attempt")
		advance(time.Second)
		assert.Equal(t, second, e.ag.Current(), "and does not drop the new token")
	})
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name  string
		after time.Duration
		want  time.Duration
	}{
		{name: "longer than backoff", after: 2 * time.Minute, want: 2 * time.Minute},
		{name: "shorter than backoff", after: time.Second, want: 10 * time.Second},
		{name: "capped at an hour", after: 1000 * time.Hour, want: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, nil)
				e.auth.Push(agenttest.Step{Err: &agent.RetryAfterError{After: tt.after, Err: errors.New("status 503")}})
				e.issue(time.Hour)
				e.start()
				require.Equal(t, 1, e.auth.Calls())

				// On-demand refresh waits for Retry-After too.
				advance(tt.want / 2)
				require.True(t, e.ag.RequestRefresh())
				synctest.Wait()
				assert.Equal(t, 1, e.auth.Calls(), "refresh requests honour the server's Retry-After")

				advance(tt.want/2 - time.Millisecond)
				assert.Equal(t, 1, e.auth.Calls())
				advance(time.Millisecond)
				assert.Equal(t, 2, e.auth.Calls())
				assert.False(t, e.ag.Current().IsZero())
			})
		})
	}
}

func TestBackoffGrowthCapAndReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu    sync.Mutex
			times []time.Time
			fail  = true
		)
		e := newEnv(t, func(c *agent.Config) { c.Rand = func() float64 { return 0.999999999 } })
		e.auth.Fallback = func(context.Context, int) (agent.Token, error) {
			mu.Lock()
			defer mu.Unlock()
			times = append(times, time.Now())
			if fail {
				return agent.Token{}, errors.New("connection refused")
			}
			return e.fresh(time.Hour), nil
		}
		e.start()
		// Full jitter at its top: 20s, then each wait as long as the
		// failing before it plus BackoffMin (30s, 60s, 120s, 240s), then
		// capped at 300s.
		advance(20*time.Second + 30*time.Second + 60*time.Second + 120*time.Second + 240*time.Second + 300*time.Second)
		mu.Lock()
		require.Len(t, times, 7)
		var gaps []time.Duration
		for i := 1; i < len(times); i++ {
			gaps = append(gaps, times[i].Sub(times[i-1]).Round(time.Second))
		}
		assert.Equal(t, []time.Duration{20 * time.Second, 30 * time.Second, 60 * time.Second, 120 * time.Second, 240 * time.Second, 300 * time.Second}, gaps)
		fail = false
		mu.Unlock()

		advance(300 * time.Second)
		require.Equal(t, 8, e.auth.Calls())
		require.False(t, e.ag.Current().IsZero())

		// Fail again at renewal: the backoff starts over at its first step.
		mu.Lock()
		fail = true
		mu.Unlock()
		// Renewal at 45 minutes; jitter at u≈1 moves it 6 minutes earlier
		// with the default 10% window.
		advance(time.Hour)
		mu.Lock()
		defer mu.Unlock()
		require.GreaterOrEqual(t, len(times), 11)
		// The token's iat is in whole seconds, so allow one second.
		assert.InDelta(t, float64(39*time.Minute), float64(times[8].Sub(times[7])), float64(time.Second), "renewal at 45 minutes less the full jitter window")
		assert.Equal(t, 20*time.Second, times[9].Sub(times[8]).Round(time.Second), "backoff reset after success")
		assert.Equal(t, 30*time.Second, times[10].Sub(times[9]).Round(time.Second), "failing time counted from the first failure after the success")
	})
}

func TestTransientFailureKeepsTokenUntilExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		e.auth.Push(agenttest.Step{Token: e.fresh(time.Hour)})
		e.auth.Fallback = func(context.Context, int) (agent.Token, error) {
			return agent.Token{}, errors.New("dial tcp: connection refused")
		}
		e.start()
		tok := e.ag.Current()
		require.False(t, tok.IsZero())

		advance(59 * time.Minute)
		assert.Greater(t, e.auth.Calls(), 2, "renewal was retried")
		assert.Equal(t, tok, e.ag.Current(), "the valid token is kept while the server is down")
		for _, r := range drain(e.results)[1:] {
			assert.Error(t, r.Err, "every failed attempt is reported")
		}
		advance(time.Minute)
		assert.True(t, e.ag.Current().IsZero(), "the token is dropped at its exp")
		assert.True(t, e.store.Token().IsZero(), "and cleared from the cache")
		assert.Contains(t, strings.Join(e.messages(logrus.WarnLevel), "\n"), "token expired before it could be renewed")
	})
}

func TestBadRequestRetriesSlowlyAndKeepsToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		e.auth.Push(agenttest.Step{Token: e.fresh(time.Hour)}, agenttest.Step{Err: fmt.Errorf("status 400: %w", agent.ErrBadRequest)})
		e.issue(time.Hour)
		e.start()
		tok := e.ag.Current()

		advance(45*time.Minute + time.Second)
		require.Equal(t, 2, e.auth.Calls())
		assert.Equal(t, tok, e.ag.Current(), "a 400 keeps the still-valid token")
		advance(5*time.Minute - 2*time.Second)
		assert.Equal(t, 2, e.auth.Calls(), "retried only after BackoffMax")
		advance(2 * time.Second)
		assert.Equal(t, 3, e.auth.Calls())
		errs := e.messages(logrus.ErrorLevel)
		require.Len(t, errs, 1)
		assert.Contains(t, errs[0], "malformed")
	})
}

func TestSingleFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		block := make(chan struct{})
		e.auth.Push(agenttest.Step{Token: e.fresh(time.Hour), Block: block})
		e.issue(time.Hour)
		e.start()
		require.Equal(t, 1, e.auth.Calls(), "the start-up attempt is in flight")

		// 100 requests while the attempt is in flight: answered by it.
		refresh100 := func() {
			var wg sync.WaitGroup
			for range 100 {
				wg.Go(func() { assert.True(t, e.ag.RequestRefresh()) })
			}
			wg.Wait()
		}
		refresh100()
		close(block)
		synctest.Wait()
		assert.Equal(t, 1, e.auth.Calls(), "requests made during an attempt are satisfied by it")
		assert.Len(t, drain(e.results), 1)

		// 100 more requests: the first starts an attempt, the others
		// arrive while it is in flight and are merged into it.
		advance(time.Minute)
		block = make(chan struct{})
		e.auth.Push(agenttest.Step{Token: e.fresh(time.Hour), Block: block})
		refresh100()
		synctest.Wait()
		assert.Equal(t, 2, e.auth.Calls())
		close(block)
		synctest.Wait()
		assert.Equal(t, 2, e.auth.Calls())
		assert.Len(t, drain(e.results), 1)
		advance(time.Minute)
		assert.Equal(t, 2, e.auth.Calls(), "no follow-up attempt")
	})
}

func TestSubscribersGetOneResultPerAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		e.auth.Push(
			agenttest.Step{Token: e.fresh(time.Hour)},
			agenttest.Step{Err: errors.New("timeout")},
			agenttest.Step{Token: e.fresh(2 * time.Hour)},
		)
		ctx := context.Background()
		subs := []<-chan agent.Result{e.ag.Subscribe(ctx), e.ag.Subscribe(ctx), e.ag.Subscribe(ctx)}
		e.start()
		advance(time.Minute)
		e.ag.RequestRefresh()
		advance(10 * time.Second) // the failure is retried after BackoffMin
		require.Equal(t, 3, e.auth.Calls())
		for i, ch := range append(subs, e.results) {
			got := drain(ch)
			require.Len(t, got, 3, "subscriber %d", i)
			assert.NoError(t, got[0].Err)
			assert.EqualError(t, got[1].Err, "timeout")
			assert.NoError(t, got[2].Err)
			assert.Equal(t, e.ag.Current(), got[2].Token)
		}
	})
}

func TestSlowSubscriberKeepsLatest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		var n atomic.Int64
		e.auth.Fallback = func(context.Context, int) (agent.Token, error) {
			// Each token lives a little longer so that Results differ.
			now := e.now()
			return agenttest.NewToken(serverURL, now, now.Add(time.Hour+time.Duration(n.Add(1))*time.Second)), nil
		}
		slow := e.ag.Subscribe(context.Background())
		e.start()
		attempts := agent.SubscriberBuffer * 3
		for range attempts - 1 {
			advance(time.Minute)
			e.ag.RequestRefresh()
			synctest.Wait()
		}
		require.Equal(t, attempts, e.auth.Calls(), "Run is never held up by a subscriber that does not read")
		got := drain(slow)
		require.Len(t, got, agent.SubscriberBuffer, "the buffer keeps the newest results")
		assert.Equal(t, e.ag.Current(), got[len(got)-1].Token, "the last result delivered is the latest")
		for i := 1; i < len(got); i++ {
			assert.True(t, got[i].Token.Expires.After(got[i-1].Token.Expires), "in order")
		}
	})
}

func TestSubscribeClosesOnContextAndStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		e.issue(time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		early := e.ag.Subscribe(ctx)
		e.start()
		cancel()
		synctest.Wait()
		got := drain(early)
		assert.Len(t, got, 1, "buffered results stay readable")
		_, ok := <-early
		assert.False(t, ok, "closed when its context is done")

		e.ag.RequestRefresh()
		synctest.Wait()
		require.Equal(t, 2, e.auth.Calls())

		require.ErrorIs(t, e.stop(), context.Canceled)
		assert.Len(t, drain(e.results), 2)
		_, ok = <-e.results
		assert.False(t, ok, "closed when Run returns")
		_, ok = <-e.ag.Subscribe(context.Background())
		assert.False(t, ok, "Subscribe after Run returned gives a closed channel")
		assert.False(t, e.ag.RequestRefresh(), "refresh is refused once stopped")
	})
}

func TestRunReturnsOnCancelDuringAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		block := make(chan struct{})
		defer close(block)
		e.auth.Push(agenttest.Step{Token: e.fresh(time.Hour), Block: block})
		e.start()
		require.Equal(t, 1, e.auth.Calls())
		err := e.stop()
		assert.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, drain(e.results), "a cancelled attempt produces no Result")
		assert.True(t, e.ag.Current().IsZero())
		assert.Error(t, e.ag.Run(context.Background()), "Run runs once")
	})
}

func TestCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		tests := []struct {
			name        string
			cached      agent.Token
			loadErr     error
			wantCalls   int  // authentication calls right after start
			wantCached  bool // Current is the cached token before any attempt
			wantResults int  // Results right after start
		}{
			{name: "hit", cached: agenttest.NewToken(serverURL, now.Add(-10*time.Minute), now.Add(50*time.Minute)),
				wantCalls: 0, wantCached: true, wantResults: 1},
			{name: "hit past renewal time is used and renewed", cached: agenttest.NewToken(serverURL, now.Add(-50*time.Minute), now.Add(10*time.Minute)),
				wantCalls: 1, wantCached: true, wantResults: 2},
			{name: "miss", wantCalls: 1, wantResults: 1},
			{name: "discarded by the store", loadErr: errors.New("token cache /data/x: bound to another server; discarded"),
				wantCalls: 1, wantResults: 1},
			{name: "expired", cached: agenttest.NewToken(serverURL, now.Add(-2*time.Hour), now.Add(-time.Hour)),
				wantCalls: 1, wantResults: 1},
		}
		for _, tt := range tests {
			t.Log(tt.name)
			e := newEnv(t, nil)
			e.store = agenttest.NewStore(tt.cached)
			e.store.FailLoad(tt.loadErr)
			block := make(chan struct{})
			e.auth.Push(agenttest.Step{Token: e.fresh(time.Hour), Block: block})
			ag, err := agent.New(agent.Config{Authenticator: e.auth, Cache: e.store, Now: e.now, Rand: func() float64 { return 0 }})
			require.NoError(t, err)
			e.ag = ag
			e.start()
			assert.Equal(t, tt.wantCalls, e.auth.Calls(), tt.name)
			if tt.wantCached {
				assert.Equal(t, tt.cached, e.ag.Current(), tt.name)
			} else {
				assert.True(t, e.ag.Current().IsZero(), tt.name)
			}
			close(block)
			synctest.Wait()
			assert.Len(t, drain(e.results), tt.wantResults, tt.name)
			loads, _, _ := e.store.Counts()
			assert.Equal(t, 1, loads, tt.name)
			require.ErrorIs(t, e.stop(), context.Canceled)
		}
	})
}

func TestCacheHitRenewsOnSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		now := time.Now()
		cached := agenttest.NewToken(serverURL, now.Add(-30*time.Minute), now.Add(30*time.Minute))
		require.NoError(t, e.store.Save(cached))
		e.issue(time.Hour)
		e.start()
		assert.Equal(t, cached, e.ag.Current())
		got := drain(e.results)
		require.Len(t, got, 1, "the cached token is announced")
		assert.Equal(t, cached, got[0].Token)
		advance(15*time.Minute - time.Second)
		assert.Equal(t, 0, e.auth.Calls())
		advance(2 * time.Second)
		assert.Equal(t, 1, e.auth.Calls(), "renewed at 75% of the cached token's lifetime")
	})
}

func TestClockBeforeBuildTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, func(c *agent.Config) { c.BuildTime = time.Now().AddDate(0, 0, 1) })
		e.auth.Push(
			agenttest.Step{Err: errors.New("tls: certificate not yet valid")},
			agenttest.Step{Err: errors.New("tls: certificate not yet valid")},
			agenttest.Step{Err: errors.New("tls: certificate not yet valid")},
		)
		e.issue(time.Hour)
		e.start()
		require.Equal(t, 1, e.auth.Calls())

		// Retries every ClockRetryInterval (5s), not on the backoff (10s+).
		advance(5 * time.Second)
		assert.Equal(t, 2, e.auth.Calls())
		advance(5 * time.Second)
		assert.Equal(t, 3, e.auth.Calls())

		// NTP sets the clock; the next attempt succeeds.
		e.step(48 * time.Hour)
		advance(5 * time.Second)
		assert.Equal(t, 4, e.auth.Calls())
		assert.False(t, e.ag.Current().IsZero())

		var waiting int
		for _, m := range e.messages(logrus.WarnLevel) {
			if m == "waiting for a valid system time" {
				waiting++
			}
		}
		assert.Equal(t, 1, waiting, "logged once")
	})
}

func TestClockBehindCachedToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		// The cached token was issued a day "in the future": the clock went
		// back at reboot.
		now := time.Now()
		require.NoError(t, e.store.Save(agenttest.NewToken(serverURL, now.Add(24*time.Hour), now.Add(48*time.Hour))))
		e.auth.Push(agenttest.Step{Err: errors.New("tls: handshake failure")})
		e.issue(time.Hour)
		e.start()
		require.Equal(t, 0, e.auth.Calls())
		require.True(t, e.ag.RequestRefresh())
		synctest.Wait()
		require.Equal(t, 1, e.auth.Calls())
		advance(5 * time.Second)
		assert.Equal(t, 2, e.auth.Calls(), "retried on the clock interval, not the backoff")
		assert.Contains(t, e.messages(logrus.WarnLevel), "waiting for a valid system time")
	})
}

func TestClockErrorRetriesOnShortInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		clockErr := &agent.ClockError{Err: errors.New("x509: certificate has expired or is not yet valid")}
		e.auth.Push(agenttest.Step{Err: clockErr}, agenttest.Step{Err: clockErr})
		e.issue(time.Hour)
		e.start()
		advance(5 * time.Second)
		assert.Equal(t, 2, e.auth.Calls())
		advance(5 * time.Second)
		assert.Equal(t, 3, e.auth.Calls())
		assert.False(t, e.ag.Current().IsZero())
		got := drain(e.results)
		require.Len(t, got, 3)
		var ce *agent.ClockError
		assert.ErrorAs(t, got[0].Err, &ce)
	})
}

func TestWallClockStepForwardMakesRenewalDue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		e.issue(7 * 24 * time.Hour)
		e.start()
		require.Equal(t, 1, e.auth.Calls())

		// The wall clock jumps six days ahead (past the 5.25-day renewal
		// point); monotonic time barely moves.
		e.step(6 * 24 * time.Hour)
		advance(time.Minute)
		assert.Equal(t, 2, e.auth.Calls(), "renewal noticed within a minute of the step")
	})
}

func TestWallClockStepPastExpiryDropsToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		e.auth.Push(agenttest.Step{Token: e.fresh(time.Hour)})
		e.auth.Fallback = func(context.Context, int) (agent.Token, error) {
			return agent.Token{}, errors.New("connection refused")
		}
		e.start()
		require.False(t, e.ag.Current().IsZero())
		e.step(2 * time.Hour)
		advance(time.Minute)
		assert.True(t, e.ag.Current().IsZero())
		assert.GreaterOrEqual(t, e.auth.Calls(), 2)
	})
}

func TestWallClockStepDoesNotStretchBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		e.auth.Push(agenttest.Step{Err: errors.New("connection refused")})
		e.issue(time.Hour)
		e.start()
		e.step(-time.Hour) // the wall clock goes back an hour
		advance(10 * time.Second)
		assert.Equal(t, 2, e.auth.Calls(), "backoff waits are monotonic")
	})
}

func TestFreshTokenExpiredByLocalClockIsAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		now := time.Now()
		e.auth.Push(agenttest.Step{Token: agenttest.NewToken(serverURL, now.Add(-2*time.Hour), now.Add(-time.Hour))})
		e.issue(time.Hour)
		e.start()
		got := drain(e.results)
		require.Len(t, got, 1)
		require.Error(t, got[0].Err)
		assert.Contains(t, got[0].Err.Error(), "check the system clock")
		assert.True(t, e.ag.Current().IsZero())
		advance(10 * time.Second)
		assert.Equal(t, 2, e.auth.Calls(), "retried on the backoff, not in a loop")
	})
}

func TestLogsNeverContainTheToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		tok := e.fresh(time.Hour)
		e.auth.Push(agenttest.Step{Token: tok}, agenttest.Step{Err: agent.ErrUnauthorized})
		e.issue(time.Hour)
		e.start()
		e.ag.ReportUnauthorized()
		advance(time.Hour)
		require.NotEmpty(t, e.hook.AllEntries())
		payload := strings.Split(tok.JWT(), ".")[1]
		for _, entry := range e.hook.AllEntries() {
			line, err := entry.String()
			require.NoError(t, err)
			assert.NotContains(t, line, payload)
		}
	})
}

func TestNewValidatesConfig(t *testing.T) {
	auth := &agenttest.Authenticator{}
	tests := []struct {
		name    string
		cfg     agent.Config
		wantErr string
	}{
		{name: "defaults", cfg: agent.Config{Authenticator: auth}},
		{name: "no authenticator", cfg: agent.Config{}, wantErr: "Authenticator is nil"},
		{name: "fraction above one", cfg: agent.Config{Authenticator: auth, RenewAtFraction: 1.5}, wantErr: "RenewAtFraction is 1.5"},
		{name: "fraction one allowed", cfg: agent.Config{Authenticator: auth, RenewAtFraction: 1}},
		{name: "negative jitter", cfg: agent.Config{Authenticator: auth, RenewJitterFraction: -0.1}, wantErr: "RenewJitterFraction is -0.1"},
		{name: "jitter one", cfg: agent.Config{Authenticator: auth, RenewJitterFraction: 1}, wantErr: "RenewJitterFraction is 1; it must be in [0, 1)"},
		{name: "negative margin", cfg: agent.Config{Authenticator: auth, RenewMargin: -time.Second}, wantErr: "RenewMargin is -1s"},
		{name: "min above max", cfg: agent.Config{Authenticator: auth, BackoffMin: time.Hour, BackoffMax: time.Minute}, wantErr: "BackoffMin 1h0m0s is longer than BackoffMax 1m0s"},
		{name: "min above default max", cfg: agent.Config{Authenticator: auth, BackoffMin: time.Hour}, wantErr: "longer than BackoffMax 5m0s"},
		{name: "negative clock retry", cfg: agent.Config{Authenticator: auth, ClockRetryInterval: -1}, wantErr: "ClockRetryInterval"},
		{name: "several errors", cfg: agent.Config{Authenticator: auth, BackoffMin: -1, BackoffMax: -1}, wantErr: "BackoffMin is -1ns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ag, err := agent.New(tt.cfg)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Nil(t, ag)
				return
			}
			require.NoError(t, err)
			assert.NotNil(t, ag)
			assert.True(t, ag.Current().IsZero())
			assert.Equal(t, 0, auth.Calls(), "New does no I/O")
		})
	}
}
