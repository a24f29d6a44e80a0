package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Defaults for the zero values of Config.
const (
	// DefaultRenewAtFraction renews a token after 75% of its lifetime.
	DefaultRenewAtFraction = 0.75
	// DefaultBackoffMin is the shortest wait after a failed attempt.
	DefaultBackoffMin = 10 * time.Second
	// DefaultBackoffMax is the longest wait after failed attempts; it
	// matches Mender's default RetryPollIntervalSeconds of 300.
	DefaultBackoffMax = 5 * time.Minute
	// DefaultClockRetryInterval is the wait between attempts while the
	// system clock is not set.
	DefaultClockRetryInterval = 10 * time.Second
	// DefaultAttemptTimeout bounds one authentication attempt, all servers
	// included.
	DefaultAttemptTimeout = 2 * time.Minute
	// SubscriberBuffer is how many undelivered Results a subscriber's
	// channel holds before the oldest is discarded.
	SubscriberBuffer = 8
)

// maxRetryAfter caps how long a server's Retry-After can hold the agent
// back, so that a broken or hostile header cannot silence a device for
// days. A BackoffMax above it wins.
const maxRetryAfter = time.Hour

// wallClockCheck is the longest the agent sleeps without reading the wall
// clock again, so that a clock step (NTP setting the time after boot) makes
// a renewal or an expiry due within this interval.
const wallClockCheck = time.Minute

// Config configures an Agent. Zero values select the defaults above, except
// for RenewJitterFraction and RenewMargin, whose zero means none.
type Config struct {
	// Authenticator performs authentication attempts. Required.
	Authenticator Authenticator
	// Cache persists the token across restarts; nil disables the cache.
	Cache TokenStore
	// Logger receives the agent's log lines; nil discards them.
	Logger logrus.FieldLogger
	// Now is the wall clock used to judge token times (iat, exp) and the
	// clock floor; nil means time.Now. Waits are measured on the monotonic
	// clock of the time package whatever Now returns.
	Now func() time.Time
	// Rand returns numbers uniformly distributed in [0, 1) for jitter; nil
	// means math/rand/v2.Float64.
	Rand func() float64
	// BuildTime is the clock sanity floor: while the wall clock reads
	// earlier than this (or than the last successful authentication, or
	// the issue time of the cached token), the clock is considered unset:
	// failed attempts are retried every ClockRetryInterval and the wall
	// clock is re-read as often.
	BuildTime time.Time
	// RenewAtFraction is the share of a token's lifetime after which it is
	// renewed, in (0, 1].
	RenewAtFraction float64
	// RenewJitterFraction is the width of the random window before the
	// renewal time, as a share of the lifetime, in [0, 1); zero means no
	// jitter.
	RenewJitterFraction float64
	// RenewMargin is the least time left on a token when it is renewed
	// (zero: none). A token living less than twice the margin is renewed at
	// half-life.
	RenewMargin time.Duration
	// BackoffMin and BackoffMax bound the wait after failed attempts. The
	// wait is drawn uniformly (full jitter) from a window that starts at
	// [BackoffMin, 2·BackoffMin] and doubles with each consecutive failure,
	// but never grows wider than the time spent failing so far nor past
	// BackoffMax: after an outage of length D, a device retries within
	// max(D, BackoffMin) + BackoffMin of the server's return (at most
	// BackoffMax). BackoffMax is also the wait after the server refuses a
	// request as malformed. cmd sets BackoffMax from
	// RetryPollIntervalSeconds.
	BackoffMin, BackoffMax time.Duration
	// ClockRetryInterval is the wait between attempts while the system
	// clock is not set (instead of the backoff).
	ClockRetryInterval time.Duration
	// AttemptTimeout bounds one call to Authenticate.
	AttemptTimeout time.Duration
}

// Agent owns the device's authentication token. Run is the only goroutine
// that changes the token; Current, RequestRefresh, ReportUnauthorized and
// Subscribe are safe for concurrent use from any goroutine and never block
// on I/O.
type Agent struct {
	auth           Authenticator
	cache          TokenStore
	log            logrus.FieldLogger
	now            func() time.Time
	rand           func() float64
	buildTime      time.Time
	renew          renewPolicy
	backoff        backoffPolicy
	clockRetry     time.Duration
	attemptTimeout time.Duration

	// tok is the current token, nil when there is none. Only Run stores.
	tok atomic.Pointer[Token]
	// refresh carries one pending on-demand refresh request (capacity 1).
	refresh chan struct{}
	// reported is the token a consumer last reported as rejected, or
	// &none when it reported while there was no token; unauth wakes Run.
	reported atomic.Pointer[Token]
	none     Token
	unauth   chan struct{}

	started atomic.Bool
	stopped atomic.Bool

	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
}

type subscriber struct {
	ch   chan Result
	stop func() bool
}

// New checks cfg and returns an Agent ready to Run. It does no I/O and
// starts no goroutines.
func New(cfg Config) (*Agent, error) {
	if cfg.Authenticator == nil {
		return nil, errors.New("agent config: Authenticator is nil; the agent needs a way to the server")
	}
	a := &Agent{
		auth:    cfg.Authenticator,
		cache:   cfg.Cache,
		log:     cfg.Logger,
		now:     cfg.Now,
		rand:    cfg.Rand,
		refresh: make(chan struct{}, 1),
		unauth:  make(chan struct{}, 1),
		subs:    make(map[*subscriber]struct{}),

		buildTime: cfg.BuildTime,
	}
	if a.log == nil {
		l := logrus.New()
		l.Out = io.Discard
		a.log = l
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.rand == nil {
		a.rand = rand.Float64
	}

	var err error
	fraction := func(name string, v, def float64, allowOne bool) float64 {
		if v == 0 {
			return def
		}
		if v < 0 || v > 1 || (v == 1 && !allowOne) {
			upper := "1)"
			if allowOne {
				upper = "1]"
			}
			err = errors.Join(err, fmt.Errorf("agent config: %s is %v; it must be in (0, %s", name, v, upper))
		}
		return v
	}
	duration := func(name string, v, def time.Duration) time.Duration {
		if v == 0 {
			return def
		}
		if v < 0 {
			err = errors.Join(err, fmt.Errorf("agent config: %s is %s; it must not be negative", name, v))
		}
		return v
	}
	// Jitter and margin have a meaningful zero (none), so they are taken
	// as given; the configuration supplies their defaults.
	if cfg.RenewJitterFraction < 0 || cfg.RenewJitterFraction >= 1 {
		err = errors.Join(err, fmt.Errorf("agent config: RenewJitterFraction is %v; it must be in [0, 1)", cfg.RenewJitterFraction))
	}
	if cfg.RenewMargin < 0 {
		err = errors.Join(err, fmt.Errorf("agent config: RenewMargin is %s; it must not be negative", cfg.RenewMargin))
	}
	a.renew = renewPolicy{
		atFraction:     fraction("RenewAtFraction", cfg.RenewAtFraction, DefaultRenewAtFraction, true),
		jitterFraction: cfg.RenewJitterFraction,
		margin:         cfg.RenewMargin,
	}
	a.backoff = backoffPolicy{
		min: duration("BackoffMin", cfg.BackoffMin, DefaultBackoffMin),
		max: duration("BackoffMax", cfg.BackoffMax, DefaultBackoffMax),
	}
	a.clockRetry = duration("ClockRetryInterval", cfg.ClockRetryInterval, DefaultClockRetryInterval)
	a.attemptTimeout = duration("AttemptTimeout", cfg.AttemptTimeout, DefaultAttemptTimeout)
	if err == nil && a.backoff.min > a.backoff.max {
		err = fmt.Errorf("agent config: BackoffMin %s is longer than BackoffMax %s", a.backoff.min, a.backoff.max)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Current returns the current token, or the zero Token when the agent has
// none (not authenticated yet, rejected by the server, or expired). It never
// blocks.
func (a *Agent) Current() Token {
	if p := a.tok.Load(); p != nil {
		return *p
	}
	return Token{}
}

// RequestRefresh asks Run to authenticate now and reports whether the
// request was accepted; it is false once Run has returned. It never blocks.
//
// Requests are merged: however many arrive, one attempt answers all that
// arrived before it completed, including those made while it was in flight
// (a request that arrives during an attempt is satisfied by that attempt's
// Result rather than starting another). The outcome arrives on Subscribe
// channels. After a failed attempt an on-demand attempt still waits
// BackoffMin, or as long as the server asked with Retry-After, so that
// eager consumers cannot hammer a struggling server.
func (a *Agent) RequestRefresh() bool {
	if a.stopped.Load() {
		return false
	}
	select {
	case a.refresh <- struct{}{}:
	default:
	}
	return true
}

// ReportUnauthorized tells the agent that a consumer got a 401 with the
// current token. Run drops that token (Current becomes the zero Token) and
// authenticates at once, merged with any other request. A report about a
// token that Run has already replaced is ignored. It never blocks.
func (a *Agent) ReportUnauthorized() {
	p := a.tok.Load()
	if p == nil {
		p = &a.none
	}
	a.reported.Store(p)
	select {
	case a.unauth <- struct{}{}:
	default:
	}
}

// Subscribe returns a channel that receives one Result for every completed
// authentication attempt, whoever asked for it, and one for a cached token
// taken into use at start. The channel is closed when ctx is done or Run
// returns; Subscribe after Run has returned gives a closed channel.
//
// Run never waits for a subscriber: the channel buffers SubscriberBuffer
// Results, and when it is full the oldest undelivered Result is discarded,
// so a slow subscriber always gets the latest one.
func (a *Agent) Subscribe(ctx context.Context) <-chan Result {
	ch := make(chan Result, SubscriberBuffer)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		close(ch)
		return ch
	}
	s := &subscriber{ch: ch}
	a.subs[s] = struct{}{}
	s.stop = context.AfterFunc(ctx, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if _, ok := a.subs[s]; ok {
			delete(a.subs, s)
			close(s.ch)
		}
	})
	return ch
}

func (a *Agent) publish(r Result) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for s := range a.subs {
		select {
		case s.ch <- r:
			continue
		default:
		}
		// Full: discard the oldest so the newest gets through. Only
		// publish sends, under mu, so there is room after one receive.
		select {
		case <-s.ch:
		default:
		}
		select {
		case s.ch <- r:
		default:
		}
		a.log.Debug("subscriber is behind; discarded its oldest result")
	}
}

func (a *Agent) closeSubscribers() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	for s := range a.subs {
		s.stop()
		delete(a.subs, s)
		close(s.ch)
	}
}

// runState is what Run alone knows between iterations.
type runState struct {
	// cur is the held token (also published through Agent.tok).
	cur *Token
	// renewAt is the wall-clock time cur is due for renewal.
	renewAt time.Time
	// renewNotBefore (monotonic) keeps a fresh token from being renewed
	// sooner than BackoffMin after it arrived, whatever its claims say.
	renewNotBefore time.Time
	// failures counts consecutive failed attempts for the backoff.
	failures int
	// failingSince (monotonic) is when the first of those failures ended;
	// the backoff window never grows wider than the time since.
	failingSince time.Time
	// retryAt (monotonic) is when the retry after a failed attempt is due;
	// zero when the last attempt succeeded.
	retryAt time.Time
	// demandAt (monotonic) is the earliest an on-demand attempt may start.
	demandAt time.Time
	// demand records a pending RequestRefresh or ReportUnauthorized.
	demand bool
	// lastGood is the latest wall-clock time known to have passed: the
	// last success, or the issue time of the cached token. It is part of
	// the clock floor.
	lastGood time.Time
	// clockWaiting is set once "waiting for a valid system time" was
	// logged, until an attempt fails for another reason or succeeds.
	clockWaiting bool
}

// Run owns the token until ctx is done: it takes a cached token into use,
// authenticates, renews before expiry, answers refresh requests and backs
// off after failures. It returns ctx.Err() on shutdown, after closing every
// Subscribe channel. An attempt in flight is cancelled through its context
// and produces no Result. Run may be called once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("agent: Run called more than once")
	}
	defer a.closeSubscribers()
	defer a.stopped.Store(true)

	var s runState
	a.loadCache(&s)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		a.takeReport(&s)
		wait, due := a.next(&s)
		if due {
			a.attempt(ctx, &s)
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-a.refresh:
			s.demand = true
		case <-a.unauth:
		case <-timer.C:
		}
	}
}

// loadCache takes a cached token into use at start. A token that is still
// valid is used even if it is due for renewal: consumers get it at once and
// the renewal follows immediately.
func (a *Agent) loadCache(s *runState) {
	if a.cache == nil {
		return
	}
	tok, err := a.cache.Load()
	if err != nil {
		a.log.WithError(err).Info("token cache not used; authenticating")
		return
	}
	if tok.IsZero() {
		a.log.Debug("no cached token; authenticating")
		return
	}
	now := a.now()
	if !tok.Valid(now) {
		a.log.WithField(logExpires, tok.Expires).Info("cached token has expired; authenticating")
		a.clearCache()
		return
	}
	s.cur = &tok
	s.renewAt = a.renew.renewDeadline(tok.IssuedAt, tok.Expires, a.rand())
	s.lastGood = tok.IssuedAt
	a.tok.Store(s.cur)
	log := a.log.WithFields(logrus.Fields{logServerURL: tok.ServerURL, logExpires: tok.Expires, logRenewAt: s.renewAt})
	exp := tok.Expires.UTC().Format(time.RFC3339)
	if now.Before(s.renewAt) {
		log.Infof("using cached token; token valid until %s", exp)
	} else {
		log.Infof("using cached token, valid until %s, while renewing it now", exp)
	}
	a.publish(Result{Token: tok})
}

// takeReport applies a pending ReportUnauthorized.
func (a *Agent) takeReport(s *runState) {
	p := a.reported.Swap(nil)
	switch {
	case p == nil:
	case s.cur == nil:
		s.demand = true
	case p == s.cur:
		a.log.WithField(logExpires, s.cur.Expires).Info("a consumer reports the token was rejected; dropping it and authenticating")
		a.drop(s)
		s.demand = true
	default:
		a.log.Debug("a consumer reported a token that was already replaced; ignoring")
	}
}

// next drops an expired token and reports whether an attempt is due, or
// else how long to sleep before looking again.
func (a *Agent) next(s *runState) (time.Duration, bool) {
	mono, now := time.Now(), a.now()
	if s.cur != nil && !s.cur.Valid(now) {
		a.log.WithField(logExpires, s.cur.Expires).Warn("token expired before it could be renewed; dropping it")
		a.drop(s)
	}

	wait := wallClockCheck
	if a.clockInvalid(now, s) {
		wait = min(wait, a.clockRetry)
	}
	consider := func(d time.Duration) bool {
		if d <= 0 {
			return true
		}
		wait = min(wait, d)
		return false
	}
	if s.demand && consider(s.demandAt.Sub(mono)) {
		return 0, true
	}
	switch {
	case !s.retryAt.IsZero():
		if consider(s.retryAt.Sub(mono)) {
			return 0, true
		}
	case s.cur == nil:
		return 0, true
	default:
		// Both must hold: the wall-clock renewal time and the monotonic
		// floor after the last success.
		if d := s.renewAt.Sub(now); d > 0 {
			consider(d)
		} else if consider(s.renewNotBefore.Sub(mono)) {
			return 0, true
		}
	}
	if s.cur != nil {
		consider(s.cur.Expires.Sub(now))
	}
	return wait, false
}

// clockInvalid reports whether the wall clock reads earlier than the build
// time, the last successful authentication or the issue time of the cached
// token.
func (a *Agent) clockInvalid(now time.Time, s *runState) bool {
	return now.Before(a.buildTime) || now.Before(s.lastGood)
}

func (a *Agent) drop(s *runState) {
	s.cur = nil
	s.renewAt = time.Time{}
	a.tok.Store(nil)
	a.clearCache()
}

func (a *Agent) clearCache() {
	if a.cache == nil {
		return
	}
	if err := a.cache.Clear(); err != nil {
		a.log.WithError(err).Warn("could not clear the token cache; a stale token is checked and discarded at the next start")
	}
}

// attempt runs one authentication attempt and publishes its Result.
func (a *Agent) attempt(ctx context.Context, s *runState) {
	actx, cancel := context.WithTimeout(ctx, a.attemptTimeout)
	tok, err := a.auth.Authenticate(actx)
	cancel()
	// Requests that arrived while the attempt was in flight are answered
	// by its Result.
	s.demand = false
	select {
	case <-a.refresh:
	default:
	}
	if ctx.Err() != nil {
		return
	}
	end, now := time.Now(), a.now()
	if err == nil {
		switch {
		case tok.IsZero():
			err = errors.New("authenticator returned no token and no error")
		case !tok.Valid(now):
			err = fmt.Errorf("token from %s expired at %s, before the local time %s: check the system clock",
				tok.ServerURL, tok.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	if err != nil {
		a.fail(s, err, now, end)
		a.publish(Result{Err: err})
		return
	}

	s.cur = &tok
	s.renewAt = a.renew.renewDeadline(tok.IssuedAt, tok.Expires, a.rand())
	s.renewNotBefore = end.Add(a.backoff.min)
	s.failures = 0
	s.failingSince = time.Time{}
	s.retryAt = time.Time{}
	s.demandAt = time.Time{}
	s.lastGood = now
	s.clockWaiting = false
	a.tok.Store(s.cur)
	a.log.WithFields(logrus.Fields{logServerURL: tok.ServerURL, logExpires: tok.Expires, logRenewAt: s.renewAt}).
		Infof("authenticated; token valid until %s", tok.Expires.UTC().Format(time.RFC3339))
	if a.cache != nil {
		if err := a.cache.Save(tok); err != nil {
			a.log.WithError(err).Warn("could not save the token cache; the next start will authenticate")
		}
	}
	a.publish(Result{Token: tok})
}

// fail decides how long to wait after a failed attempt and what happens to
// the held token, and logs the failure once.
func (a *Agent) fail(s *runState, err error, now, end time.Time) {
	var (
		ra    *RetryAfterError
		ce    *ClockError
		delay time.Duration
		// spacing is the least wait before an on-demand attempt.
		spacing = a.backoff.min
		log     = a.log.WithError(err)
	)
	clockTrouble := false
	switch {
	case errors.Is(err, ErrUnauthorized):
		delay = a.backoffAfter(s, end)
		dropped := s.cur != nil
		if dropped {
			a.drop(s)
		}
		log = log.WithField(logDropped, dropped)
		log.WithFields(logrus.Fields{logRetryIn: delay, logFailures: s.failures}).
			Warn("device not authorized by the server (pending acceptance, rejected or unknown); retrying")
	case errors.Is(err, ErrBadRequest):
		a.backoffAfter(s, end)
		delay = a.backoff.max
		log.WithField(logRetryIn, delay).
			Error("server refused the auth request as malformed; check the identity script output and the configuration")
	case errors.As(err, &ra):
		after := min(ra.After, max(maxRetryAfter, a.backoff.max))
		delay = max(after, a.backoffAfter(s, end))
		spacing = max(spacing, after)
		log.WithFields(logrus.Fields{logRetryIn: delay, logFailures: s.failures}).
			Warn("server is busy and asked to retry later; keeping the current token until it expires")
	case errors.As(err, &ce) || a.clockInvalid(now, s):
		clockTrouble = true
		delay = a.clockRetry
		spacing = delay
		if !s.clockWaiting {
			s.clockWaiting = true
			log.WithFields(logrus.Fields{logSystemTime: now, logBuildTime: a.buildTime, logRetryIn: delay}).
				Warn("waiting for a valid system time")
		} else {
			log.WithField(logRetryIn, delay).Debug("still waiting for a valid system time")
		}
	default:
		delay = a.backoffAfter(s, end)
		log.WithFields(logrus.Fields{logRetryIn: delay, logFailures: s.failures}).
			Warn("authentication failed; keeping the current token until it expires")
	}
	if !clockTrouble {
		s.clockWaiting = false
	}
	s.retryAt = end.Add(delay)
	s.demandAt = end.Add(min(spacing, delay))
}

// backoffAfter counts a failed attempt that ended at end (monotonic) and
// returns the backoff wait after it.
func (a *Agent) backoffAfter(s *runState, end time.Time) time.Duration {
	s.failures++
	if s.failures == 1 {
		s.failingSince = end
	}
	return a.backoff.delay(s.failures, end.Sub(s.failingSince), a.rand())
}
