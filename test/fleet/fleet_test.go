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
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

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
type fleetResult struct {
	requestsDuringOutage int
	// perBucket counts auth requests the server received in each bucket
	// after recovery, until the last agent authenticated.
	perBucket []int
	bucket    time.Duration
	allAuthed time.Duration // from recovery to the last token
	// authed holds, in order, the time from recovery to each agent's token.
	authed     []time.Duration
	afterTotal int
}

// authedBy returns the time by which share (0..1] of the agents held a
// token.
func (r fleetResult) authedBy(share float64) time.Duration {
	i := int(math.Ceil(share*float64(len(r.authed)))) - 1
	return r.authed[max(i, 0)]
}

// peakToMean returns the busiest bucket and the mean per bucket over the
// buckets until the given share of the agents held a token.
func (r fleetResult) peakToMean(share float64) (peak, mean float64) {
	n := min(int(r.authedBy(share)/r.bucket)+1, len(r.perBucket))
	total := 0
	for _, v := range r.perBucket[:n] {
		total += v
		peak = math.Max(peak, float64(v))
	}
	return peak, float64(total) / float64(n)
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
	srv := authserver.New(authserver.Options{
		TLS:           serverTLS,
		AutoAccept:    true,
		TokenLifetime: 24 * time.Hour,
		MaxLog:        20 * c.agents,
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
			for r := range results {
				if r.Err == nil && !r.Token.IsZero() {
					authed <- time.Now()
					break
				}
			}
			for range results { //nolint:revive // drain until Run closes the channel
			}
		}()
	}

	time.Sleep(c.outage)
	recovered := time.Now()
	srv.ClearFault()

	limit := time.NewTimer(3*c.scaled(agent.DefaultBackoffMax) + time.Minute)
	defer limit.Stop()
	var last time.Time
	got := make([]time.Duration, 0, c.agents)
	for i := range c.agents {
		select {
		case last = <-authed:
			got = append(got, max(last.Sub(recovered), 0))
		case <-limit.C:
			tb.Fatalf("only %d of %d agents authenticated after the outage", i, c.agents)
		}
	}
	cancel()

	res := fleetResult{bucket: c.scaled(bucket), allAuthed: last.Sub(recovered), authed: got}
	n := int(res.allAuthed/res.bucket) + 1
	res.perBucket = make([]int, n)
	for _, r := range srv.RequestLog() {
		if r.Path != authserver.PathAuth {
			continue
		}
		if r.Time.Before(recovered) {
			res.requestsDuringOutage++
			continue
		}
		if i := int(r.Time.Sub(recovered) / res.bucket); i < n {
			res.perBucket[i]++
			res.afterTotal++
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
// the server is down, brings the server back after the outage and reports
// how the fleet returns: the request rate per bucket after recovery
// (printed), its peak-to-mean ratio until every agent holds a token and
// until 90% do, and the times until 90% and all hold one.
//
//   - virtual: the full-scale 60 s outage and the agent's default backoff
//     in virtual time (testing/synctest), with TLS and HTTP over in-memory
//     pipes, so the figures depend on the retry policy alone, not on the
//     machine's load.
//   - loopback: the same over TCP on 127.0.0.1 with real timers. Every
//     duration (outage, backoff bounds, buckets) is compressed by
//     MENDER_AGENT_FLEET_OUTAGE/60s (default 6s) and reported at full
//     scale; set it to 60s for an uncompressed run.
//
// MENDER_AGENT_FLEET_AGENTS changes the fleet size. Run it with
// -benchtime 1x.
func BenchmarkFleetRecovery(b *testing.B) {
	c := configFromEnv(b)
	b.Run("virtual", func(b *testing.B) {
		vc := fleetConfig{agents: c.agents, outage: fullScaleOutage}
		var res fleetResult
		for range b.N {
			res = runVirtual(b, vc)
		}
		report(b, vc, res)
	})
	b.Run("loopback", func(b *testing.B) {
		var res fleetResult
		for range b.N {
			res = runFleet(b, c, loopback)
		}
		report(b, c, res)
	})
}

func report(b *testing.B, c fleetConfig, res fleetResult) {
	peak, mean := res.peakToMean(1)
	peak90, mean90 := res.peakToMean(0.9)
	full := func(d time.Duration) float64 { return d.Seconds() / c.scale() }
	// The rate table goes to stdout: benchmark logs are cut after a few
	// lines.
	fmt.Printf("%s: %d agents, %s outage (time scale x%.2f; times at full scale); auth requests per second after recovery, per %s:\n",
		b.Name(), c.agents, fullScaleOutage, c.scale(), bucket)
	for i, n := range res.perBucket {
		rate := float64(n) / full(res.bucket)
		fmt.Printf("  t+%4.0fs %7.1f req/s %s\n", full(time.Duration(i)*res.bucket), rate, strings.Repeat("#", int(math.Ceil(rate))))
	}
	fmt.Printf("%s: during the outage %d requests (%.1f per agent); after recovery %d (%.2f per agent); peak %.1f req/s, mean %.1f req/s, peak/mean %.2f (%.2f until 90%% held a token); authenticated: 50%% after %.0fs, 90%% after %.0fs, all after %.0fs\n",
		b.Name(), res.requestsDuringOutage, float64(res.requestsDuringOutage)/float64(c.agents), res.afterTotal, float64(res.afterTotal)/float64(c.agents),
		peak/full(res.bucket), mean/full(res.bucket), peak/mean, peak90/mean90, full(res.authedBy(0.5)), full(res.authedBy(0.9)), full(res.allAuthed))
	b.ReportMetric(float64(c.agents), "agents")
	b.ReportMetric(peak/mean, "peak/mean")
	b.ReportMetric(peak90/mean90, "peak/mean-90%")
	b.ReportMetric(full(res.allAuthed), "s-to-all-authed")
	b.ReportMetric(full(res.authedBy(0.9)), "s-to-90%-authed")
	b.ReportMetric(peak/full(res.bucket), "peak-req/s")
	b.ReportMetric(mean/full(res.bucket), "mean-req/s")
	b.ReportMetric(float64(res.requestsDuringOutage)/float64(c.agents), "outage-req/agent")
}

// TestFleetSmall runs a small, heavily compressed fleet so that plain `go
// test` keeps the benchmark's machinery working; it asserts outcomes, not
// timings.
func TestFleetSmall(t *testing.T) {
	res := runFleet(t, fleetConfig{agents: 20, outage: 600 * time.Millisecond}, loopback)
	require.NotEmpty(t, res.perBucket)
	require.Positive(t, res.requestsDuringOutage, "the fleet tried during the outage")
	require.GreaterOrEqual(t, res.afterTotal, 20, "every agent authenticated after recovery")
}

// TestFleetVirtual runs a small fleet through a full-scale outage in
// virtual time.
func TestFleetVirtual(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res := runFleet(t, fleetConfig{agents: 50, outage: fullScaleOutage}, pipes)
		require.Len(t, res.authed, 50)
		require.GreaterOrEqual(t, res.requestsDuringOutage, 50*3, "every agent retried during the minute-long outage")
		require.Equal(t, 50, res.afterTotal, "one request per agent after recovery: the server answers at once")
		require.LessOrEqual(t, res.allAuthed, agent.DefaultBackoffMax, "nobody waits longer than the backoff ceiling")
	})
}
