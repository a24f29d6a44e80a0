package forwarder

import (
	"io"
	"net/http"
	"testing"
)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	_, _ = io.WriteString(w, `{"status":"ok"}`)
})

func benchGet(b *testing.B, c *http.Client, url string) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkForwarder measures small requests from a local consumer through
// the forwarder to a TLS server; compare with BenchmarkDirect.
func BenchmarkForwarder(b *testing.B) {
	p := newPKI(b)
	up := p.upstream(b, okHandler)
	f := startForwarder(b, p, Config{})
	if err := f.SetUpstream(up.URL); err != nil {
		b.Fatal(err)
	}
	benchGet(b, newClient(b), f.URL()+"/api/devices/v1/inventory/device/attributes")
}

// BenchmarkDirect measures the same requests sent straight to the TLS
// server with the server transport.
func BenchmarkDirect(b *testing.B) {
	p := newPKI(b)
	up := p.upstream(b, okHandler)
	benchGet(b, &http.Client{Transport: p.transport}, up.URL+"/api/devices/v1/inventory/device/attributes")
}
