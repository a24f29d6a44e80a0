package dbus

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mender-agent/mender-agent/agent"
)

// BenchmarkGetJwtToken measures GetJwtToken round trips from a consumer
// through a private dbus-daemon to the agent's object, reporting calls per
// second and the median and 99th-percentile latency.
func BenchmarkGetJwtToken(b *testing.B) {
	bus := startBus(b)
	sv := serve(b, bus, newFakeService())
	tok := testToken(b, "https://server.example", 1)
	sv.svc.complete(agent.Result{Token: tok})
	conn := dial(b, bus.Address)
	ctx := context.Background()

	lat := make([]time.Duration, 0, 100_000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		jwt, _, err := GetToken(ctx, conn)
		lat = append(lat, time.Since(start))
		if err != nil || jwt != tok.JWT() {
			b.Fatalf("GetJwtToken: %q, %v", jwt, err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
