// Package authapi is the device side of the Mender Device Authentication
// API: it builds the auth request body, signs exactly those bytes with the
// device key, sends them to each configured server in turn and turns the
// answer into an agent.Token or one of the agent's semantic errors
// (agent.ErrUnauthorized, agent.ErrBadRequest, *agent.RetryAfterError,
// *agent.ClockError). *Client implements agent.Authenticator.
//
// It owns the wire format of POST /api/devices/v1/authentication/auth_requests
// and nothing else: the key arrives as a crypto.Signer (file or TPM), the
// transport and trust as an *http.Client, the identity as a function. It
// imports the agent package (types and errors), net/http, logrus and the
// standard library; it must not import the key backends, the trust package,
// godbus or go-tpm, so that cmd stays the only place that wires them.
//
// Secrets never leave this package in a log line or an error message: not
// the JWT, not the tenant token, not the private key.
package authapi
