// Package agent is the core of mender-agent: it owns the device's
// authentication token and its lifecycle. It decides when to authenticate
// (at start, before expiry, after a consumer reports a 401), backs off
// politely after failures, merges concurrent refresh requests into one
// attempt, and tells subscribers about every completed attempt.
//
// One goroutine, Agent.Run, owns the token; readers get it through
// Agent.Current, a lock-free load that never blocks. The renewal and
// backoff decisions are pure functions of time (policy.go). Tokens may be
// kept across restarts through a TokenStore (see agent/tokencache).
//
// The package talks to the server only through the Authenticator interface
// it declares; the wire format, keys, TLS and D-Bus live at the edges. It
// imports the standard library and logrus only, and must never import
// godbus, go-tpm or net/http (enforced by TestAgentHasNoEdgeDeps and by the
// linter's depguard rule).
package agent
