package fleet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/agent"
	"github.com/mender-agent/mender-agent/agent/authapi"
	"github.com/mender-agent/mender-agent/test/authserver"
	"github.com/mender-agent/mender-agent/test/testpki"
)

// Environment knobs of BenchmarkFleetRecovery (flags would break `go test
// ./...` for the other packages).
const (
	envAgents = "MENDER_AGENT_FLEET_AGENTS" // default 1000
	envOutage = "MENDER_AGENT_FLEET_OUTAGE" // default 6s; 60s is the full-scale run
)

// fullScaleOutage is the outage the scenario models. A shorter outage
// compresses every duration of the run (backoff bounds, buckets) by the
// same factor, which keeps the shape of the request curve.
const fullScaleOutage = 60 * time.Second

// bucket is the width of one request-rate bucket at full scale.
const bucket = 5 * time.Second

type fleetConfig struct {
	agents int
	outage time.Duration
}

func (c fleetConfig) scale() float64 { return float64(c.outage) / float64(fullScaleOutage) }

func (c fleetConfig) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * c.scale())
}

func configFromEnv(tb testing.TB) fleetConfig {
	c := fleetConfig{agents: 1000, outage: 6 * time.Second}
	if v := os.Getenv(envAgents); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(tb, err, "%s=%q", envAgents, v)
		c.agents = n
	}
	if v := os.Getenv(envOutage); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(tb, err, "%s=%q", envOutage, v)
		c.outage = d
	}
	return c
}

// fleetResult is what one run measured, in real (compressed) time.
//
// The recovery window runs from the end of the outage (the server answers
// again) to the moment the last agent holds a token.
type fleetResult struct {
	agents int
	// window is the length of the recovery window.
	window time.Duration
	// authed holds, in ascending order, the time from recovery to each
	// agent's first token.
	authed []time.Duration
	// outageRequests counts the auth requests the server received during
	// the outage.
	outageRequests int
	// recoveryRequests holds, for every auth request received inside the
	// recovery window, its time after recovery.
	recoveryRequests []time.Duration
	// lateRequests counts auth requests received after the window (none
	// is expected: tokens live a day).
	lateRequests int
}

// authedBy returns the time after recovery by which share (0..1] of the
// agents held a token.
func (r fleetResult) authedBy(share float64) time.Duration {
	i := int(math.Ceil(share*float64(len(r.authed)))) - 1
	return r.authed[min(max(i, 0), len(r.authed)-1)]
}

// perBucket counts the requests received from recovery to until (at most
// the recovery window) in consecutive buckets of width w starting at
// recovery; the last bucket may extend past until and also takes a
// request received at until.
func (r fleetResult) perBucket(w, until time.Duration) []int {
	until = min(until, r.window)
	n := max(int((until+w-1)/w), 1)
	counts := make([]int, n)
	for _, d := range r.recoveryRequests {
		if d <= until {
			counts[min(int(d/w), n-1)]++
		}
	}
	return counts
}

// rates returns the peak and mean request rates (per second of the run's
// time) from recovery to until (at most the recovery window): the peak is
// the busiest bucket of width w, the mean is every request received until
// then over that time. A span shorter than one bucket counts as one bucket,
// so a fleet that came back within one bucket scores 1.
func (r fleetResult) rates(w, until time.Duration) (peak, mean float64) {
	counts := r.perBucket(w, until)
	total := 0
	for _, n := range counts {
		total += n
	}
	peak = float64(slices.Max(counts)) / w.Seconds()
	mean = float64(total) / max(min(until, r.window), w).Seconds()
	return peak, mean
}

// network says how agents reach the server.
type network int

const (
	// loopback serves on 127.0.0.1 over TCP with real timers.
	loopback network = iota
	// pipes serves over in-memory connections (net.Pipe), TLS and HTTP
	// unchanged, so that the run fits in a synctest bubble and takes
	// virtual time.
	pipes
)

// runFleet boots c.agents agents while the server is down, ends the
// outage after c.outage, and waits until every agent holds a token. With
// pipes it must run inside a synctest bubble.
func runFleet(tb testing.TB, c fleetConfig, nw network) fleetResult {
	ca := testpki.NewCA("fleet CA")
	leaf := ca.Issue(testpki.Options{DNSNames: []string{"fleet.test", "localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	serverTLS := &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}, MinVersion: tls.VersionTLS12}
	maxLog := 100 * c.agents
	srv := authserver.New(authserver.Options{
		TLS:           serverTLS,
		AutoAccept:    true,
		TokenLifetime: 24 * time.Hour,
		MaxLog:        maxLog,
	})
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: testpki.Pool(ca), MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: c.agents,
	}
	defer tr.CloseIdleConnections()
	serverURL := ""
	switch nw {
	case loopback:
		require.NoError(tb, srv.Start(""))
		defer srv.Close()
		serverURL = srv.URL()
	case pipes:
		ln := newPipeListener()
		hs := &http.Server{Handler: srv.Handler(), TLSConfig: serverTLS}
		served := make(chan struct{})
		go func() { defer close(served); _ = hs.ServeTLS(ln, "", "") }()
		defer func() { _ = hs.Close(); <-served }()
		tr.DialContext = ln.dial
		serverURL = "https://fleet.test"
	}
	// The outage is a load balancer answering 503 without Retry-After
	// while the backend is down: connections stay up, so the run measures
	// the agents' retry policy rather than TLS handshakes on a shared CPU.
	srv.SetFault(authserver.Fault{Status: http.StatusServiceUnavailable})
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	ctx, cancel := context.WithCancel(context.Background())
	authed := make(chan time.Time, c.agents)
	failed := make(chan struct{}, c.agents)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := range c.agents {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(tb, err)
		id := fmt.Sprintf(`{"mac":"02:00:00:%02x:%02x:%02x"}`, i>>16&0xff, i>>8&0xff, i&0xff)
		ac, err := authapi.New(authapi.Config{
			Servers:    []string{serverURL},
			Signer:     key,
			Identity:   func(context.Context) (string, error) { return id, nil },
			HTTPClient: client,
			UserAgent:  "mender-agent/fleet",
		})
		require.NoError(tb, err)
		a, err := agent.New(agent.Config{
			Authenticator:      ac,
			BackoffMin:         c.scaled(agent.DefaultBackoffMin),
			BackoffMax:         c.scaled(agent.DefaultBackoffMax),
			ClockRetryInterval: c.scaled(agent.DefaultClockRetryInterval),
			AttemptTimeout:     30 * time.Second,
		})
		require.NoError(tb, err)
		results := a.Subscribe(ctx)
		wg.Add(2)
		go func() { defer wg.Done(); _ = a.Run(ctx) }()
		go func() {
			defer wg.Done()
			first := true
			for r := range results {
				if r.Err == nil && !r.Token.IsZero() {
					authed <- time.Now()
					break
				}
				if first {
					first = false
					failed <- struct{}{}
				}
			}
			for range results { //nolint:revive // drain until Run closes the channel
			}
		}()
	}

	// The outage is timed from the moment every agent has failed once, so
	// that the time a loaded machine needs to start the agents and their
	// first TLS handshakes does not eat into it.
	booted := time.NewTimer(time.Minute)
	defer booted.Stop()
	for i := range c.agents {
		select {
		case <-failed:
		case <-booted.C:
			tb.Fatalf("only %d of %d agents made their first attempt within a minute", i, c.agents)
		}
	}
	time.Sleep(c.outage)
	recovered := time.Now()
	srv.ClearFault()

	limit := time.NewTimer(3*c.scaled(agent.DefaultBackoffMax) + time.Minute)
	defer limit.Stop()
	got := make([]time.Duration, 0, c.agents)
	for i := range c.agents {
		select {
		case at := <-authed:
			got = append(got, max(at.Sub(recovered), 0))
		case <-limit.C:
			tb.Fatalf("only %d of %d agents authenticated after the outage", i, c.agents)
		}
	}
	cancel()

	slices.Sort(got)
	res := fleetResult{agents: c.agents, window: got[len(got)-1], authed: got}
	reqLog := srv.RequestLog()
	// The log drops its oldest tenth when full; below this length it never
	// did, so the counts are complete.
	require.Less(tb, len(reqLog), maxLog-maxLog/10-1, "the server's request log overflowed; raise MaxLog")
	for _, r := range reqLog {
		if r.Path != authserver.PathAuth {
			continue
		}
		switch d := r.Time.Sub(recovered); {
		case d < 0:
			res.outageRequests++
		case d <= res.window:
			res.recoveryRequests = append(res.recoveryRequests, d)
		default:
			res.lateRequests++
		}
	}
	return res
}

// pipeListener hands out in-memory connections: dial returns one end of a
// net.Pipe and Accept the other.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "fleet.test:443" }

// runVirtual runs the fleet over pipes in a synctest bubble, so that a
// full-scale outage and backoff take virtual time only. synctest needs a
// *testing.T, which a benchmark does not have, so the run is a test of its
// own started with testing.RunTests.
func runVirtual(b *testing.B, c fleetConfig) fleetResult {
	var res fleetResult
	ok := testing.RunTests(func(string, string) (bool, error) { return true, nil }, []testing.InternalTest{{
		Name: b.Name(),
		F: func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { res = runFleet(t, c, pipes) })
		},
	}})
	if !ok {
		b.Fatal("the virtual fleet run failed; see its output above")
	}
	return res
}

// BenchmarkFleetRecovery boots a fleet of agents (1000 by default) while
// the server is down, brings the server back after the outage and measures
// how the fleet returns. It logs the auth request rate per 5 s bucket
// after recovery and reports, per run (averaged when b.N > 1):
//
//   - peak/mean: over the recovery window, which runs from the moment the
//     server answers again to the moment the last agent holds a token, the
//     busiest 5 s bucket's request rate over the window's mean rate (all
//     auth requests received in the window divided by its length; a window
//     under one bucket counts as one bucket). Issue 4 asks for under 3.
//   - peak/mean-90%: the same from recovery until 90% of the agents held a
//     token, which leaves out the thin tail of the last agents.
//   - s-to-50%-authed, s-to-90%-authed, s-to-all-authed: seconds from
//     recovery until that share of the agents held a token; the last is the
//     window's length.
//   - outage-req/agent, recovery-req/agent: auth requests per agent
//     received during the outage, and from recovery on (1 is the least
//     possible: the server accepts every device at once).
//   - peak-req/s, mean-req/s: the two rates behind peak/mean.
//
// Times and rates are given at full scale (a 60 s outage).
//
//   - virtual: the full-scale 60 s outage and the agent's default backoff
//     in virtual time (testing/synctest), with TLS and HTTP over in-memory
//     pipes, so the figures depend on the retry policy alone, not on the
//     machine's load.
//   - loopback: the same over TCP on 127.0.0.1 with real timers. Every
//     duration (outage, backoff bounds, buckets) is compressed by
//     MENDER_AGENT_FLEET_OUTAGE/60s (default 6s) and reported at full
//     scale; set it to 60s for an uncompressed run. CPU contention between
//     the agents, the server and the rest of the machine shows up here.
//
// MENDER_AGENT_FLEET_AGENTS changes the fleet size. Run it with
// -benchtime 1x and -count N for a distribution.
func BenchmarkFleetRecovery(b *testing.B) {
	c := configFromEnv(b)
	b.Run("virtual", func(b *testing.B) {
		vc := fleetConfig{agents: c.agents, outage: fullScaleOutage}
		var m metrics
		for range b.N {
			m.add(b, vc, runVirtual(b, vc))
		}
		m.report(b)
	})
	b.Run("loopback", func(b *testing.B) {
		var m metrics
		for range b.N {
			m.add(b, c, runFleet(b, c, loopback))
		}
		m.report(b)
	})
}

// sparks draws a bucket's share of the busiest bucket, from none to all.
var sparks = []rune(" ▁▂▃▄▅▆▇█")

// metrics sums the figures of BenchmarkFleetRecovery over runs, at full
// scale.
type metrics struct {
	runs                                         int
	agents                                       int
	peakToMean, peakToMean90, peakRate, meanRate float64
	to50, to90, toAll                            float64
	outagePerAgent, recoveryPerAgent             float64
}

// add logs one run's request rate over time and summary and adds its
// figures. The logs stay short (benchmark logs are cut after ten lines)
// and go through b.Log so that they do not split the benchmark's result
// line.
func (m *metrics) add(b *testing.B, c fleetConfig, res fleetResult) {
	full := func(d time.Duration) float64 { return d.Seconds() / c.scale() }
	w := c.scaled(bucket)
	peak, mean := res.rates(w, res.window)
	// Rates at full scale: the run's rates times the compression.
	peak, mean = peak*c.scale(), mean*c.scale()
	peak90, mean90 := res.rates(w, res.authedBy(0.9))
	recovery := len(res.recoveryRequests) + res.lateRequests

	counts := res.perBucket(w, res.window)
	rates := make([]string, len(counts))
	top := slices.Max(counts)
	shape := make([]rune, len(counts))
	for i, n := range counts {
		rates[i] = strconv.FormatFloat(float64(n)/bucket.Seconds(), 'f', 1, 64)
		shape[i] = sparks[(n*(len(sparks)-1)+top-1)/max(top, 1)]
	}
	b.Logf("%d agents, %s outage (time scale x%.2f; figures at full scale)", c.agents, fullScaleOutage, c.scale())
	b.Logf("auth requests per second after recovery, per %s: %s", bucket, strings.Join(rates, " "))
	b.Logf("rate over the recovery window: |%s|", string(shape))
	b.Logf("requests per agent %.2f during the outage, %.2f after; recovery window %.0fs: peak %.1f req/s, mean %.1f req/s, peak/mean %.2f (%.2f until 90%% held a token); authenticated: 50%% after %.0fs, 90%% after %.0fs, all after %.0fs",
		float64(res.outageRequests)/float64(c.agents), float64(recovery)/float64(c.agents), full(res.window),
		peak, mean, peak/mean, peak90/mean90, full(res.authedBy(0.5)), full(res.authedBy(0.9)), full(res.window))

	m.runs++
	m.agents = c.agents
	m.peakToMean += peak / mean
	m.peakToMean90 += peak90 / mean90
	m.peakRate += peak
	m.meanRate += mean
	m.to50 += full(res.authedBy(0.5))
	m.to90 += full(res.authedBy(0.9))
	m.toAll += full(res.window)
	m.outagePerAgent += float64(res.outageRequests) / float64(c.agents)
	m.recoveryPerAgent += float64(recovery) / float64(c.agents)
}

// report reports the mean of every figure over the runs.
func (m *metrics) report(b *testing.B) {
	if m.runs == 0 {
		return
	}
	n := float64(m.runs)
	b.ReportMetric(0, "ns/op") // a run's wall time says nothing about the policy
	b.ReportMetric(float64(m.agents), "agents")
	b.ReportMetric(m.peakToMean/n, "peak/mean")
	b.ReportMetric(m.peakToMean90/n, "peak/mean-90%")
	b.ReportMetric(m.to50/n, "s-to-50%-authed")
	b.ReportMetric(m.to90/n, "s-to-90%-authed")
	b.ReportMetric(m.toAll/n, "s-to-all-authed")
	b.ReportMetric(m.outagePerAgent/n, "outage-req/agent")
	b.ReportMetric(m.recoveryPerAgent/n, "recovery-req/agent")
	b.ReportMetric(m.peakRate/n, "peak-req/s")
	b.ReportMetric(m.meanRate/n, "mean-req/s")
}

// TestRecoveryRates pins the definition of the benchmark's figures on
// hand-made runs.
func TestRecoveryRates(t *testing.T) {
	s := time.Second
	tests := []struct {
		name       string
		res        fleetResult
		until      time.Duration // 0: the whole window
		buckets    []int
		peak, mean float64
	}{
		{
			name:    "even",
			res:     fleetResult{window: 20 * s, recoveryRequests: []time.Duration{1 * s, 6 * s, 11 * s, 16 * s}},
			buckets: []int{1, 1, 1, 1}, peak: 0.2, mean: 0.2,
		},
		{
			name:    "burst then tail",
			res:     fleetResult{window: 20 * s, recoveryRequests: []time.Duration{0, 1 * s, 2 * s, 3 * s, 4 * s, 6 * s, 20 * s}},
			buckets: []int{5, 1, 0, 1}, peak: 1, mean: 0.35,
		},
		{
			name:    "last request at the window's end falls in the last bucket",
			res:     fleetResult{window: 10 * s, recoveryRequests: []time.Duration{2 * s, 10 * s}},
			buckets: []int{1, 1}, peak: 0.2, mean: 0.2,
		},
		{
			name:    "until 90% leaves out the tail",
			res:     fleetResult{window: 20 * s, recoveryRequests: []time.Duration{0, 1 * s, 2 * s, 3 * s, 4 * s, 6 * s, 20 * s}},
			until:   7 * s,
			buckets: []int{5, 1}, peak: 1, mean: 6.0 / 7,
		},
		{
			name:    "until past the window is the window",
			res:     fleetResult{window: 10 * s, recoveryRequests: []time.Duration{2 * s, 10 * s}},
			until:   time.Minute,
			buckets: []int{1, 1}, peak: 0.2, mean: 0.2,
		},
		{
			name:    "window shorter than a bucket",
			res:     fleetResult{window: s, recoveryRequests: []time.Duration{0, s / 2, s}},
			buckets: []int{3}, peak: 0.6, mean: 0.6,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			until := tt.until
			if until == 0 {
				until = tt.res.window
			}
			assert.Equal(t, tt.buckets, tt.res.perBucket(5*s, until))
			peak, mean := tt.res.rates(5*s, until)
			assert.InDelta(t, tt.peak, peak, 1e-9)
			assert.InDelta(t, tt.mean, mean, 1e-9)
		})
	}
}

func TestAuthedBy(t *testing.T) {
	res := fleetResult{authed: []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}
	assert.Equal(t, time.Duration(5), res.authedBy(0.5))
	assert.Equal(t, time.Duration(9), res.authedBy(0.9))
	assert.Equal(t, time.Duration(10), res.authedBy(1))
	assert.Equal(t, time.Duration(1), res.authedBy(0))
}

// TestFleetSmall runs a small, heavily compressed fleet so that plain `go
// test` keeps the benchmark's machinery working; it asserts outcomes, not
// timings.
func TestFleetSmall(t *testing.T) {
	res := runFleet(t, fleetConfig{agents: 20, outage: 600 * time.Millisecond}, loopback)
	require.Len(t, res.authed, 20)
	require.Positive(t, res.outageRequests, "the fleet tried during the outage")
	require.GreaterOrEqual(t, len(res.recoveryRequests), 20, "every agent authenticated after recovery")
}

// TestFleetVirtual runs a small fleet through a full-scale outage in
// virtual time.
func TestFleetVirtual(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res := runFleet(t, fleetConfig{agents: 50, outage: fullScaleOutage}, pipes)
		require.Len(t, res.authed, 50)
		require.GreaterOrEqual(t, res.outageRequests, 50*3, "every agent retried during the minute-long outage")
		require.Len(t, res.recoveryRequests, 50, "one request per agent after recovery: the server answers at once")
		require.Zero(t, res.lateRequests)
		// The backoff window never grows wider than the time spent
		// failing, so every agent retries within the outage's length
		// plus BackoffMin of the server's return.
		require.LessOrEqual(t, res.window, fullScaleOutage+agent.DefaultBackoffMin, "the last agent came back later than the outage plus BackoffMin")
	})
}
