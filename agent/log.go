package agent

// Log field names used by the agent. They are constants so that every log
// line spells a field the same way and operators can filter on it. No field
// ever carries a token, a key or a tenant token.
const (
	logServerURL  = "server_url"
	logExpires    = "expires"
	logRenewAt    = "renew_at"
	logRetryIn    = "retry_in"
	logFailures   = "failures"
	logSystemTime = "system_time"
	logBuildTime  = "build_time"
	logDropped    = "dropped"
)
