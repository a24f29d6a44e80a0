package agent

import (
	"errors"
	"fmt"
	"time"
)

// ErrUnauthorized means the server rejected the device (HTTP 401): it is
// pending, rejected or unknown. The agent drops its token, tells
// subscribers, and retries with backoff.
var ErrUnauthorized = errors.New("device not authorized")

// ErrBadRequest means the server refused the request as malformed (HTTP
// 400). It points at a bug or a broken identity; the agent retries slowly.
var ErrBadRequest = errors.New("auth request refused as malformed")

// RetryAfterError is a failure for which the server said when to try again
// (HTTP 429 or 503 with Retry-After). The agent waits at least After, for
// on-demand attempts too, but never longer than an hour (or BackoffMax when
// that is longer) so that a broken header cannot silence a device.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (server asks to retry in %s)", e.Err, e.After)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// ClockError marks a failure caused by a system clock that is not set yet
// (for example a TLS certificate that is "not yet valid" while the clock is
// before the build time). The agent retries on a short interval.
type ClockError struct {
	Err error
}

func (e *ClockError) Error() string { return "waiting for a valid system time: " + e.Err.Error() }

func (e *ClockError) Unwrap() error { return e.Err }
