package authapi

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mender-agent/mender-agent/agent"
)

// AuthPath is the Device Authentication endpoint, relative to a server's
// base URL.
const AuthPath = "/api/devices/v1/authentication/auth_requests"

// SignatureHeader carries the base64 signature over the request body.
const SignatureHeader = "X-MEN-Signature"

// RequestIDHeader is where the server puts the id of each request, which
// its own logs quote.
const RequestIDHeader = "X-MEN-RequestID"

// Log field names used by this package.
const (
	FieldServer    = "server"
	FieldStatus    = "status"
	FieldRequestID = "request_id"
	FieldDuration  = "duration"
)

// Config is what a Client needs. cmd builds it from the configuration, the
// key backend and the trust package.
type Config struct {
	// Servers are the base URLs (scheme and host, no trailing slash) tried
	// in order on each attempt. At least one is required.
	Servers []string
	// TenantToken identifies the tenant on hosted or multi-tenant
	// servers; empty for none. It is sent in the body only.
	TenantToken string
	// Tier is the device tier (DeviceTier); it is sent only when set and
	// not "standard".
	Tier string
	// Signer is the device key. It signs every request body.
	Signer crypto.Signer
	// Identity returns the device identity as the text of a JSON object
	// (the id_data). It is called once per Authenticate.
	Identity func(ctx context.Context) (string, error)
	// HTTPClient sends the requests; it carries the TLS trust settings and
	// proxy configuration. Required.
	HTTPClient *http.Client
	// UserAgent is sent as the User-Agent header, for example
	// "mender-agent/1.2.3". Empty means "mender-agent".
	UserAgent string
	// BuildTime is when the binary was built. A certificate validity error
	// while the clock reads earlier than this is reported as
	// *agent.ClockError. Zero disables the check.
	BuildTime time.Time
	// Logger receives debug lines per request (server, status, request_id,
	// duration). Nil discards them.
	Logger logrus.FieldLogger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Client authenticates the device with Mender servers. It implements
// agent.Authenticator. It holds no mutable state, so it is safe for
// concurrent use; it starts no goroutines.
//
// No Authorization header is sent: the server takes the tenant from the
// body and does not read that header on this endpoint.
type Client struct {
	cfg    Config
	pubPEM string
	log    logrus.FieldLogger
	now    func() time.Time
}

var _ agent.Authenticator = (*Client)(nil)

// New checks cfg and returns a Client. It does no I/O beyond asking the
// signer for its public key.
func New(cfg Config) (*Client, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("authapi: no server configured; set ServerURL or Servers")
	}
	servers := make([]string, len(cfg.Servers))
	for i, s := range cfg.Servers {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("authapi: server URL %q is not an http(s) URL with a host", s)
		}
		servers[i] = strings.TrimRight(s, "/")
	}
	cfg.Servers = servers
	if cfg.Signer == nil {
		return nil, errors.New("authapi: no device key (Signer)")
	}
	if cfg.Identity == nil {
		return nil, errors.New("authapi: no identity source (Identity)")
	}
	if cfg.HTTPClient == nil {
		return nil, errors.New("authapi: no HTTP client; build one from the trust settings")
	}
	pubPEM, err := PublicKeyPEM(cfg.Signer.Public())
	if err != nil {
		return nil, fmt.Errorf("authapi: %w", err)
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "mender-agent"
	}
	c := &Client{cfg: cfg, pubPEM: pubPEM, log: cfg.Logger, now: cfg.Now}
	if c.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		c.log = l
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// PublicKeyPEM returns the device public key as sent to the server.
func (c *Client) PublicKeyPEM() string { return c.pubPEM }

// Authenticate reads the identity, builds and signs one request body and
// posts it to each server in order until one answers 200. The returned
// Token's ServerURL is the server that accepted the device.
//
// When every server fails the error is a *ServersError listing each
// failure; it matches agent.ErrUnauthorized only when every server
// answered 401, agent.ErrBadRequest only when every server answered 400,
// *agent.RetryAfterError (with the longest delay asked) when any server
// sent Retry-After, and *agent.ClockError when a certificate validity
// failure happened while the clock was before BuildTime. With a single
// server the error is that server's error. Cancelling ctx aborts the
// attempt and returns ctx's error.
func (c *Client) Authenticate(ctx context.Context) (agent.Token, error) {
	idData, err := c.cfg.Identity(ctx)
	if err != nil {
		return agent.Token{}, fmt.Errorf("read device identity: %w", err)
	}
	body, err := BuildRequestBody(idData, c.pubPEM, c.cfg.TenantToken, c.cfg.Tier)
	if err != nil {
		return agent.Token{}, err
	}
	sig, err := Sign(c.cfg.Signer, body)
	if err != nil {
		return agent.Token{}, err
	}
	failures := make([]ServerError, 0, len(c.cfg.Servers))
	for _, server := range c.cfg.Servers {
		tok, err := c.post(ctx, server, body, sig)
		if err == nil {
			return tok, nil
		}
		if ctx.Err() != nil {
			return agent.Token{}, fmt.Errorf("auth request to %s: %w", server, ctx.Err())
		}
		failures = append(failures, ServerError{Server: server, Err: err})
	}
	if len(failures) == 1 {
		return agent.Token{}, &failures[0]
	}
	return agent.Token{}, newServersError(failures)
}

// post sends one signed request to server and interprets the answer.
func (c *Client) post(ctx context.Context, server string, body []byte, sig string) (agent.Token, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, server+AuthPath, bytes.NewReader(body))
	if err != nil {
		return agent.Token{}, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set(SignatureHeader, sig)
	req.Header.Set("User-Agent", c.cfg.UserAgent)

	start := time.Now()
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		c.log.WithField(FieldServer, server).WithField(FieldDuration, time.Since(start)).Debug("auth request failed to reach the server")
		return agent.Token{}, c.transportError(err)
	}
	defer resp.Body.Close()
	tok, rid, err := readResponse(resp, server, c.now())
	c.log.WithFields(logrus.Fields{
		FieldServer:    server,
		FieldStatus:    resp.StatusCode,
		FieldRequestID: rid,
		FieldDuration:  time.Since(start),
	}).Debug("auth request answered")
	return tok, err
}

// transportError keeps the cause (TLS and x509 errors stay reachable with
// errors.As) and marks certificate validity failures seen while the clock
// is before the build time as clock errors.
func (c *Client) transportError(err error) error {
	var invalid x509.CertificateInvalidError
	if !c.cfg.BuildTime.IsZero() && errors.As(err, &invalid) && invalid.Reason == x509.Expired && c.now().Before(c.cfg.BuildTime) {
		return &agent.ClockError{Err: fmt.Errorf("system clock %s is before the build time %s: %w",
			c.now().UTC().Format(time.RFC3339), c.cfg.BuildTime.UTC().Format(time.RFC3339), err)}
	}
	return err
}

// ServerError is one server's failure within an attempt.
type ServerError struct {
	Server string
	Err    error
}

func (e *ServerError) Error() string { return "auth request to " + e.Server + ": " + e.Err.Error() }

func (e *ServerError) Unwrap() error { return e.Err }

// ServersError reports an attempt in which every server failed. Failures
// lists them in the order tried. errors.Is and errors.As see the
// attempt's overall class (see Client.Authenticate), not each failure.
type ServersError struct {
	Failures []ServerError
	class    error
}

func newServersError(failures []ServerError) *ServersError {
	e := &ServersError{Failures: failures}
	var (
		allUnauthorized = true
		allBadRequest   = true
		longest         *agent.RetryAfterError
		clock           *agent.ClockError
	)
	for i := range failures {
		err := failures[i].Err
		allUnauthorized = allUnauthorized && errors.Is(err, agent.ErrUnauthorized)
		allBadRequest = allBadRequest && errors.Is(err, agent.ErrBadRequest)
		var ra *agent.RetryAfterError
		if errors.As(err, &ra) && (longest == nil || ra.After > longest.After) {
			longest = ra
		}
		var ce *agent.ClockError
		if clock == nil && errors.As(err, &ce) {
			clock = ce
		}
	}
	switch {
	case allUnauthorized:
		e.class = agent.ErrUnauthorized
	case longest != nil:
		e.class = &agent.RetryAfterError{After: longest.After, Err: errors.New("every server failed")}
	case clock != nil:
		e.class = clock
	case allBadRequest:
		e.class = agent.ErrBadRequest
	}
	return e
}

func (e *ServersError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "all %d servers failed: ", len(e.Failures))
	for i := range e.Failures {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Failures[i].Error())
	}
	return b.String()
}

// Unwrap returns the attempt's class: agent.ErrUnauthorized,
// *agent.RetryAfterError, *agent.ClockError, agent.ErrBadRequest, or nil
// for a plain transient failure.
func (e *ServersError) Unwrap() error { return e.class }
