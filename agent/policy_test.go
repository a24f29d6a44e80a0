package agent

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRenewAt(t *testing.T) {
	iat := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		policy renewPolicy
		life   time.Duration
		want   time.Duration // after iat
	}{
		{name: "week token at 75%", policy: renewPolicy{atFraction: 0.75, margin: 5 * time.Minute},
			life: 7 * 24 * time.Hour, want: 126 * time.Hour},
		{name: "margin binds", policy: renewPolicy{atFraction: 0.99, margin: time.Hour},
			life: 10 * time.Hour, want: 9 * time.Hour},
		{name: "margin exactly at fraction", policy: renewPolicy{atFraction: 0.75, margin: 15 * time.Minute},
			life: time.Hour, want: 45 * time.Minute},
		{name: "short token renewed at half-life", policy: renewPolicy{atFraction: 0.75, margin: 5 * time.Minute},
			life: 6 * time.Minute, want: 3 * time.Minute},
		{name: "margin longer than lifetime", policy: renewPolicy{atFraction: 0.75, margin: time.Hour},
			life: time.Minute, want: 30 * time.Second},
		{name: "fraction one with margin", policy: renewPolicy{atFraction: 1, margin: time.Minute},
			life: time.Hour, want: 59 * time.Minute},
		{name: "no lifetime", policy: renewPolicy{atFraction: 0.75, margin: time.Minute},
			life: 0, want: 0},
		{name: "exp before iat", policy: renewPolicy{atFraction: 0.75, margin: time.Minute},
			life: -time.Hour, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.policy.renewAt(iat, iat.Add(tt.life))
			assert.Equal(t, tt.want, got.Sub(iat))
		})
	}
}

func TestRenewDeadlineJitterBounds(t *testing.T) {
	iat := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		policy    renewPolicy
		life      time.Duration
		earliest  time.Duration
		latest    time.Duration
		atUZero   time.Duration
		atUAlmost time.Duration
	}{
		{name: "hour token, 10% jitter", policy: renewPolicy{atFraction: 0.75, jitterFraction: 0.1, margin: time.Minute},
			life: time.Hour, earliest: 39 * time.Minute, latest: 45 * time.Minute,
			atUZero: 45 * time.Minute, atUAlmost: 39 * time.Minute},
		{name: "jitter never before iat", policy: renewPolicy{atFraction: 0.1, jitterFraction: 0.5, margin: time.Minute},
			life: time.Hour, earliest: 0, latest: 6 * time.Minute,
			atUZero: 6 * time.Minute, atUAlmost: 0},
		{name: "no jitter", policy: renewPolicy{atFraction: 0.5, margin: time.Minute},
			life: time.Hour, earliest: 30 * time.Minute, latest: 30 * time.Minute,
			atUZero: 30 * time.Minute, atUAlmost: 30 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp := iat.Add(tt.life)
			assert.Equal(t, tt.atUZero, tt.policy.renewDeadline(iat, exp, 0).Sub(iat))
			assert.InDelta(t, float64(tt.atUAlmost), float64(tt.policy.renewDeadline(iat, exp, 0.999999).Sub(iat)), float64(time.Second))
			for i := range 100 {
				u := float64(i) / 100
				d := tt.policy.renewDeadline(iat, exp, u).Sub(iat)
				assert.GreaterOrEqual(t, d, tt.earliest, "u=%v", u)
				assert.LessOrEqual(t, d, tt.latest, "u=%v", u)
				assert.LessOrEqual(t, d, tt.life-tt.policy.margin, "margin must hold, u=%v", u)
			}
		})
	}
}

func TestBackoffDelay(t *testing.T) {
	b := backoffPolicy{min: 10 * time.Second, max: 5 * time.Minute}
	tests := []struct {
		name     string
		failures int
		failing  time.Duration
		u        float64
		want     time.Duration
	}{
		{name: "first failure low", failures: 1, u: 0, want: 10 * time.Second},
		{name: "first failure high", failures: 1, u: 0.999999, want: 20 * time.Second},
		{name: "first failure middle", failures: 1, u: 0.5, want: 15 * time.Second},
		{name: "zero failures treated as first", failures: 0, u: 0.5, want: 15 * time.Second},
		{name: "second failure soon after the first", failures: 2, failing: 10 * time.Second, u: 1, want: 20 * time.Second},
		{name: "second failure, window as wide as the failing time", failures: 2, failing: 20 * time.Second, u: 1, want: 30 * time.Second},
		{name: "second failure long after the first: doubling binds", failures: 2, failing: 2 * time.Minute, u: 1, want: 40 * time.Second},
		{name: "third failure, failing time binds", failures: 3, failing: 50 * time.Second, u: 1, want: time.Minute},
		{name: "third failure, failing time binds, middle", failures: 3, failing: 50 * time.Second, u: 0.5, want: 35 * time.Second},
		{name: "third failure long after the first: doubling binds", failures: 3, failing: time.Hour, u: 1, want: 80 * time.Second},
		{name: "fifth failure after an hour capped", failures: 5, failing: time.Hour, u: 1, want: 5 * time.Minute},
		{name: "failing time below the cap", failures: 5, failing: 230 * time.Second, u: 1, want: 240 * time.Second},
		{name: "many failures capped", failures: 1000, failing: 1000 * time.Hour, u: 1, want: 5 * time.Minute},
		{name: "many failures keep the floor", failures: 1000, failing: time.Hour, u: 0, want: 10 * time.Second},
		{name: "many failures in no time stay narrow", failures: 1000, failing: 0, u: 1, want: 20 * time.Second},
		{name: "negative failing time counts as none", failures: 3, failing: -time.Hour, u: 1, want: 20 * time.Second},
		{name: "huge failing time does not overflow", failures: 10, failing: 1<<63 - 1, u: 1, want: 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := b.delay(tt.failures, tt.failing, tt.u)
			assert.InDelta(t, float64(tt.want), float64(got), float64(time.Millisecond))
		})
	}
	t.Run("growth at the top of the window", func(t *testing.T) {
		// u near 1: 20s, 30s, 60s, 120s, 240s, then capped at 300s.
		var (
			failing time.Duration
			got     []time.Duration
		)
		for n := 1; n <= 8; n++ {
			d := b.delay(n, failing, 1).Round(time.Second)
			got = append(got, d)
			failing += d
		}
		want := []time.Duration{20, 30, 60, 120, 240, 300, 300, 300}
		for i := range want {
			want[i] *= time.Second
		}
		assert.Equal(t, want, got)
	})
	t.Run("floor equals ceiling", func(t *testing.T) {
		fixed := backoffPolicy{min: time.Minute, max: time.Minute}
		assert.Equal(t, time.Minute, fixed.delay(3, time.Hour, 0.7))
	})
}

// TestBackoffRetryAfterOutage checks the promise of the failing-time bound:
// a device that fails from the start of an outage of any length retries
// within max(outage, min) + min of the server's return, and never later
// than max, whatever the jitter draws.
func TestBackoffRetryAfterOutage(t *testing.T) {
	b := backoffPolicy{min: 10 * time.Second, max: 5 * time.Minute}
	rng := rand.New(rand.NewPCG(4, 4))
	tests := []struct {
		name   string
		outage time.Duration
	}{
		{name: "shorter than the floor", outage: 5 * time.Second},
		{name: "half a minute", outage: 30 * time.Second},
		{name: "a minute", outage: time.Minute},
		{name: "two minutes", outage: 2 * time.Minute},
		{name: "five minutes", outage: 5 * time.Minute},
		{name: "an hour", outage: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bound := min(max(tt.outage, b.min)+b.min, b.max)
			worst := time.Duration(0)
			for range 2000 {
				var at time.Duration // time of the latest failed attempt
				n := 0
				for at < tt.outage {
					n++
					at += b.delay(n, at, rng.Float64())
				}
				worst = max(worst, at-tt.outage)
			}
			assert.LessOrEqual(t, worst, bound)
			assert.Greater(t, worst, bound/2, "the jitter uses the window")
		})
	}
}
