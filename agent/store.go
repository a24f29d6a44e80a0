package agent

// TokenStore keeps the current token across restarts so that a reboot costs
// no auth request. The store is bound by its constructor to the
// configuration the token was issued for (server URLs, tenant token, device
// key) and must not return a token issued under another binding.
//
// The agent calls a TokenStore only from Run, so implementations need not be
// safe for concurrent use by the agent alone.
type TokenStore interface {
	// Load returns the stored token, or the zero Token and a nil error when
	// nothing is stored. A stored token that is corrupt, bound to another
	// configuration or expired is discarded and reported as an error saying
	// why; the agent then authenticates as if nothing were stored.
	Load() (Token, error)
	// Save replaces the stored token.
	Save(Token) error
	// Clear removes the stored token; clearing an empty store is not an
	// error.
	Clear() error
}
