package forwarder

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mender-agent/mender-agent/test/testpki"
	"github.com/mender-agent/mender-agent/trust"
)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	_, _ = io.WriteString(w, `{"status":"ok"}`)
})

// benchPath is a small device API request, like an inventory or
// deployment poll.
const benchPath = "/api/devices/v1/inventory/device/attributes"

func get(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func benchGet(b *testing.B, c *http.Client, url string) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := get(c, url); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkForwarder measures small requests from one local consumer, one
// after the other, through the forwarder to a TLS server that answers at
// once; compare with BenchmarkDirect. With no network between them the
// difference is the time the extra hop adds to every request.
func BenchmarkForwarder(b *testing.B) {
	p := newPKI(b)
	up := p.upstream(b, okHandler)
	f := startForwarder(b, p, Config{})
	if err := f.SetUpstream(up.URL); err != nil {
		b.Fatal(err)
	}
	benchGet(b, newClient(b), f.URL()+benchPath)
}

// BenchmarkDirect measures the same requests sent straight to the TLS
// server with the server transport.
func BenchmarkDirect(b *testing.B) {
	p := newPKI(b)
	up := p.upstream(b, okHandler)
	benchGet(b, &http.Client{Transport: p.transport}, up.URL+benchPath)
}

// Load of the realistic benchmarks: several consumers (update client,
// remote terminal, inventory, port forwarding) at once, and a server a
// network away.
const (
	benchConsumers     = 8
	benchServerLatency = 2 * time.Millisecond
)

// slowHandler answers like okHandler after benchServerLatency, standing in
// for the round trip to a Mender server on another network.
var slowHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	time.Sleep(benchServerLatency)
	okHandler(w, r)
})

// storeTransport is the transport the daemon gives the forwarder: a
// trust.Store's, trusting only p's CA, with no proxy.
func storeTransport(b *testing.B, p *pki) *http.Transport {
	b.Helper()
	bundle := testpki.WriteFile(filepath.Join(b.TempDir(), "server.crt"), p.ca.CertPEM())
	s, err := trust.New(trust.Config{ServerCertificate: bundle, Env: func(string) string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	tr := s.Transport()
	b.Cleanup(tr.CloseIdleConnections)
	return tr
}

// getConcurrently sends n requests from benchConsumers consumers at once
// and returns the time they took.
func getConcurrently(c *http.Client, url string, n int) (time.Duration, error) {
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		failed atomic.Pointer[error]
	)
	start := time.Now()
	for range benchConsumers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := get(c, url); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		return 0, *err
	}
	return time.Since(start), nil
}

// benchRound is how many requests each path sends before the other's
// turn.
const benchRound = 128

// BenchmarkForwarderRealistic measures what a device's consumers get
// through the forwarder: benchConsumers of them at once, the trust store's
// transport to the server, and a server benchServerLatency away. The same
// load goes straight to the server in alternating rounds of the same
// benchmark, so that other work on the machine weighs on both alike. b.N
// is the number of requests per path. req/s (through the forwarder) and
// direct-req/s (straight to the server) are the median rates of each
// path's rounds: on a shared machine a round now and then stalls for a
// second on either path, which would decide a total.
func BenchmarkForwarderRealistic(b *testing.B) {
	p := newPKI(b)
	up := p.upstream(b, slowHandler)
	f, err := New(Config{Transport: storeTransport(b, p)})
	if err != nil {
		b.Fatal(err)
	}
	runForwarder(b, f)
	if err := f.SetUpstream(up.URL); err != nil {
		b.Fatal(err)
	}
	type path struct {
		c     *http.Client
		url   string
		rates []float64
	}
	fwd := &path{c: newClient(b), url: f.URL() + benchPath}
	direct := &path{c: &http.Client{Transport: storeTransport(b, p)}, url: up.URL + benchPath}
	b.ResetTimer()
	for done, round := 0, 0; done < b.N; round++ {
		n := min(benchRound, b.N-done)
		order := []*path{fwd, direct}
		if round%2 == 1 {
			order[0], order[1] = direct, fwd
		}
		for _, pt := range order {
			d, err := getConcurrently(pt.c, pt.url, n)
			if err != nil {
				b.Fatal(err)
			}
			pt.rates = append(pt.rates, float64(n)/d.Seconds())
		}
		done += n
	}
	b.StopTimer()
	b.ReportMetric(median(fwd.rates), "req/s")
	b.ReportMetric(median(direct.rates), "direct-req/s")
}

// median returns the median of xs, which it sorts.
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
