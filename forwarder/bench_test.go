package forwarder

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
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

// benchConcurrent sends b.N requests from benchConsumers consumers at once
// and reports the requests per second of them all.
func benchConcurrent(b *testing.B, c *http.Client, url string) {
	b.Helper()
	b.ReportAllocs()
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		failed atomic.Pointer[error]
	)
	b.ResetTimer()
	for range benchConsumers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := get(c, url); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkForwarderRealistic measures what a device's consumers get
// through the forwarder: benchConsumers of them at once, the trust store's
// transport to the server, and a server benchServerLatency away. Compare
// with BenchmarkDirectRealistic.
func BenchmarkForwarderRealistic(b *testing.B) {
	p := newPKI(b)
	up := p.upstream(b, slowHandler)
	tr := storeTransport(b, p)
	f, err := New(Config{Transport: tr})
	if err != nil {
		b.Fatal(err)
	}
	runForwarder(b, f)
	if err := f.SetUpstream(up.URL); err != nil {
		b.Fatal(err)
	}
	benchConcurrent(b, newClient(b), f.URL()+benchPath)
}

// BenchmarkDirectRealistic sends the same load straight to the server with
// the trust store's transport.
func BenchmarkDirectRealistic(b *testing.B) {
	p := newPKI(b)
	up := p.upstream(b, slowHandler)
	benchConcurrent(b, &http.Client{Transport: storeTransport(b, p)}, up.URL+benchPath)
}
