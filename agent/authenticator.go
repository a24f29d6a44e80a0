package agent

import "context"

// Authenticator performs one authentication attempt against the configured
// servers (trying each in order) and returns the token the first accepting
// server issued. It is the agent's only way to the server; the edge that
// implements it owns the wire format, the identity data and the signature.
//
// Errors wrap ErrUnauthorized, ErrBadRequest, *RetryAfterError or
// *ClockError where those apply; anything else is treated as a transient
// failure. Authenticate must honour ctx cancellation.
type Authenticator interface {
	Authenticate(ctx context.Context) (Token, error)
}

// Result is the outcome of one completed authentication attempt, delivered
// to subscribers whoever started the attempt. On success Token is set and
// Err is nil; on failure Token is the zero Token and Err says why.
type Result struct {
	Token Token
	Err   error
}
