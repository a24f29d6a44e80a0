package agent

import "time"

// renewPolicy decides when a token is renewed. It is a value so that the
// decision is a pure function of its inputs and can be table-tested.
type renewPolicy struct {
	// atFraction is the fraction of the token's lifetime after which it is
	// renewed, in (0, 1].
	atFraction float64
	// jitterFraction is the width of the random window before the renewal
	// time, as a fraction of the lifetime, in [0, 1).
	jitterFraction float64
	// margin is how long before exp renewal happens at the latest.
	margin time.Duration
}

// renewAt reports when a token valid over [iat, exp) is due for renewal: at
// atFraction of its lifetime, and never later than margin before exp.
//
// A token whose lifetime is shorter than twice the margin cannot honour the
// margin without being renewed almost as soon as it arrives, which would
// turn a short-lived token into a request storm; such a token is renewed at
// half its lifetime instead. A token with no lifetime is due at iat.
func (p renewPolicy) renewAt(iat, exp time.Time) time.Time {
	life := exp.Sub(iat)
	if life <= 0 {
		return iat
	}
	at := iat.Add(time.Duration(float64(life) * p.atFraction))
	if latest := exp.Add(-p.margin); at.After(latest) {
		at = latest
		if half := iat.Add(life / 2); at.Before(half) {
			at = half
		}
	}
	return at
}

// renewDeadline is renewAt moved earlier by a random share u in [0, 1) of
// the jitter window, so that devices that authenticated together (a fleet
// after an outage) spread their renewals. Jitter only ever moves renewal
// earlier, so the margin before exp holds; it never moves it before iat.
func (p renewPolicy) renewDeadline(iat, exp time.Time, u float64) time.Time {
	at := p.renewAt(iat, exp)
	life := exp.Sub(iat)
	if life <= 0 {
		return at
	}
	d := at.Add(-time.Duration(float64(life) * p.jitterFraction * u))
	if d.Before(iat) {
		return iat
	}
	return d
}

// backoffPolicy spaces retries after failed attempts: exponential with full
// jitter between a floor and a ceiling.
type backoffPolicy struct {
	min, max time.Duration
}

// delay reports how long to wait after the failures-th consecutive failure
// (1 for the first), given u uniformly drawn from [0, 1). The wait is drawn
// uniformly from [min, min(max, min·2^failures)], so the first retry waits
// between min and 2·min and the window doubles until it reaches max. Full
// jitter keeps a fleet that failed together from retrying together.
func (b backoffPolicy) delay(failures int, u float64) time.Duration {
	if failures < 1 {
		failures = 1
	}
	ceil := b.max
	// min·2^failures, stopping once it passes max (and before it overflows).
	if window := b.min; window > 0 {
		for i := 0; i < failures && window < b.max; i++ {
			window *= 2
		}
		if window < ceil {
			ceil = window
		}
	}
	if ceil <= b.min {
		return b.min
	}
	return b.min + time.Duration(float64(ceil-b.min)*u)
}
