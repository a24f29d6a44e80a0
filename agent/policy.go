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
// jitter between a floor and a ceiling, and never a wait much longer than
// the time already spent failing.
type backoffPolicy struct {
	min, max time.Duration
}

// delay reports how long to wait after the failures-th consecutive failure
// (1 for the first), failing after the first failure of the streak, given u
// uniformly drawn from [0, 1). The wait is drawn uniformly from
// [min, ceil], where ceil is the smallest of
//
//   - min·2^failures: the window doubles with every failure, so the first
//     retry waits between min and 2·min;
//   - min + max(min, failing): the jitter window is never wider than the
//     time already spent failing;
//   - max, the ceiling.
//
// Full jitter keeps a fleet that failed together from retrying together.
// The second bound keeps the waits proportional to an outage: a device that
// had been failing for D when the server came back retries within
// max(D, min) + min of its return (or max, if smaller), whereas the
// exponential alone lets a few unlucky devices draw ceiling-long waits
// after a one-minute outage. A fleet then returns over a window
// proportional to the outage, at a rate that falls off evenly instead of a
// burst followed by a long, thin tail. With u near 1 the waits are 2·min,
// then each about as long as all the failing before it, until they reach
// max.
func (b backoffPolicy) delay(failures int, failing time.Duration, u float64) time.Duration {
	if failures < 1 {
		failures = 1
	}
	ceil := b.max
	// min·2^failures, stopping once it passes max (and before it overflows).
	if window := b.min; window > 0 {
		for i := 0; i < failures && window < b.max; i++ {
			window *= 2
		}
		ceil = min(ceil, window)
	}
	// failing is clamped to max so that the sum cannot overflow.
	ceil = min(ceil, b.min+max(b.min, min(failing, b.max)))
	if ceil <= b.min {
		return b.min
	}
	return b.min + time.Duration(float64(ceil-b.min)*u)
}
